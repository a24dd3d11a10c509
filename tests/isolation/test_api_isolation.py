"""Cross-tenant isolation through the GraphQL API only, as a client of the real server sees it.

SECURITY.md: another tenant's global ids in `node`, in arguments or in mutations behave exactly
like random ids; DataLoaders and caches never hand one tenant's object to another; no response,
and no error text, reveals anything of another tenant.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from app.api.relay import decode_global_id, encode_global_id
from app.core.db import Database
from app.core.security import TokenService
from tests.app_fixtures import GraphQL, Org, new_org, without_cost
from tests.properties import examples

# --- Documents --------------------------------------------------------------------------------

USER_ERRORS = "errors { code message field }"
CREATE_PROJECT = f"""
mutation ($name: String!) {{
  createProject(input: {{name: $name}}) {{ project {{ id name }} {USER_ERRORS} }}
}}
"""
UPDATE_PROJECT = f"""
mutation ($id: ID!, $name: String!) {{
  updateProject(input: {{id: $id, name: $name}}) {{ project {{ id name }} {USER_ERRORS} }}
}}
"""
ARCHIVE_PROJECT = f"""
mutation ($id: ID!) {{ archiveProject(id: $id) {{ project {{ id status }} {USER_ERRORS} }} }}
"""
DELETE_PROJECT = f"""
mutation ($id: ID!) {{ deleteProject(id: $id) {{ deletedId {USER_ERRORS} }} }}
"""
CREATE_TASK = f"""
mutation ($projectId: ID!, $title: String!, $assigneeId: ID) {{
  createTask(input: {{projectId: $projectId, title: $title, assigneeId: $assigneeId}}) {{
    task {{ id title project {{ id }} }}
    {USER_ERRORS}
  }}
}}
"""
UPDATE_TASK = f"""
mutation ($id: ID!, $title: String!) {{
  updateTask(input: {{id: $id, title: $title, status: IN_PROGRESS}}) {{
    task {{ id title status }}
    {USER_ERRORS}
  }}
}}
"""
ASSIGN_TASK = f"""
mutation ($id: ID!, $assigneeId: ID) {{
  assignTask(input: {{id: $id, assigneeId: $assigneeId}}) {{
    task {{ id assignee {{ id }} }}
    {USER_ERRORS}
  }}
}}
"""
MOVE_TASK = f"""
mutation ($id: ID!, $projectId: ID, $afterId: ID) {{
  moveTask(input: {{id: $id, projectId: $projectId, afterId: $afterId}}) {{
    task {{ id project {{ id }} }}
    {USER_ERRORS}
  }}
}}
"""
DELETE_TASK = f"""
mutation ($id: ID!) {{ deleteTask(id: $id) {{ deletedId {USER_ERRORS} }} }}
"""
ADD_COMMENT = f"""
mutation ($taskId: ID!, $body: String!) {{
  addComment(input: {{taskId: $taskId, body: $body}}) {{
    comment {{ id body task {{ id }} }}
    {USER_ERRORS}
  }}
}}
"""
EDIT_COMMENT = f"""
mutation ($id: ID!, $body: String!) {{
  editComment(input: {{id: $id, body: $body}}) {{ comment {{ id body }} {USER_ERRORS} }}
}}
"""
DELETE_COMMENT = f"""
mutation ($id: ID!) {{ deleteComment(id: $id) {{ deletedId {USER_ERRORS} }} }}
"""
NODE = "query ($id: ID!) { node(id: $id) { id __typename } }"
PROJECT = "query ($id: ID!) { project(id: $id) { id name } }"
TASKS_OF_PROJECT = """
query ($projectId: ID!) { tasks(filter: {projectId: $projectId}) { totalCount nodes { id } } }
"""
TASKS_OF_ASSIGNEE = """
query ($assigneeId: ID) { tasks(filter: {assigneeId: $assigneeId}) { totalCount nodes { id } } }
"""
ASSIGNED_TASKS_OF_USER = """
query ($id: ID!) { node(id: $id) { ... on User { assignedTasks { totalCount } } } }
"""
# Everything a tenant can list, with the parent of each child.
EVERYTHING = """
{
  viewer { id email }
  tenant { id slug }
  users(first: 100) { totalCount nodes { id email } }
  projects(first: 100) { totalCount nodes { id name } }
  tasks(first: 100) {
    totalCount
    nodes { id title project { id } comments(first: 100) { totalCount nodes { id body } } }
  }
}
"""

NODE_TYPES = ("Tenant", "User", "Project", "Task", "Comment")


def _random_id(type_name: str) -> str:
    return encode_global_id(type_name, uuid4())


def _type_of(global_id: str) -> str:
    decoded = decode_global_id(global_id)
    assert decoded is not None
    return decoded[0]


# --- The model --------------------------------------------------------------------------------


@dataclass
class Tenant:
    """What one tenant must see: its rows, by global id."""

    org: Org
    projects: dict[str, str] = field(default_factory=dict)  # id -> name
    tasks: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (project, title)
    comments: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (task, body)

    @property
    def token(self) -> str:
        return self.org.token

    @property
    def fixed_ids(self) -> set[str]:
        """Ids that live as long as the tenant: itself and its users."""
        users = {encode_global_id("User", m.id) for m in self.org.members}
        return {encode_global_id("Tenant", self.org.id), *users}

    def owns(self, global_id: str) -> bool:
        """True when the id is one of this tenant's *live* objects."""
        return (
            global_id in self.fixed_ids
            or global_id in self.projects
            or global_id in self.tasks
            or global_id in self.comments
        )

    def delete_project(self, project: str) -> None:
        del self.projects[project]
        for task in [t for t, (p, _) in self.tasks.items() if p == project]:
            self.delete_task(task)

    def delete_task(self, task: str) -> None:
        del self.tasks[task]
        for comment in [c for c, (t, _) in self.comments.items() if t == task]:
            del self.comments[comment]


@dataclass
class World:
    """Three tenants, every id ever created (also deleted ones), and what may never leak."""

    tenants: list[Tenant]
    pool: dict[str, list[str]] = field(default_factory=lambda: {t: [] for t in NODE_TYPES})
    # Text that identifies a tenant: slug, ids (global and raw), emails, names it created.
    secrets: list[set[str]] = field(default_factory=list)
    steps: int = 0

    def __post_init__(self) -> None:
        for tenant in self.tenants:
            org = tenant.org
            self.secrets.append({org.slug, *(m.email for m in org.members)})
            for global_id in tenant.fixed_ids:
                self.remember(tenant, global_id)

    def remember(self, tenant: Tenant, global_id: str, *texts: str) -> None:
        self.pool[_type_of(global_id)].append(global_id)
        decoded = decode_global_id(global_id)
        assert decoded is not None
        self.secrets[self.tenants.index(tenant)].update({global_id, str(decoded[1]), *texts})

    def pick(self, type_name: str, n: int, *, of: Tenant | None = None) -> str:
        """The n-th id of that type: of tenant `of` (live ones) if it has any, else of anyone."""
        ids = [i for i in self.pool[type_name] if of is not None and of.owns(i)]
        ids = ids or self.pool[type_name]
        return ids[n % len(ids)] if ids else _random_id(type_name)

    def assert_nothing_leaks(self, actor: Tenant, body: dict[str, Any]) -> None:
        text = json.dumps(body, ensure_ascii=False)
        messages = [e["message"] for e in _all_errors(body)]
        me = self.tenants.index(actor)
        for i, secrets in enumerate(self.secrets):
            if i == me:
                continue
            for secret in secrets:
                assert secret not in text, (secret, body)
                for message in messages:
                    assert secret not in message, (secret, message)


def _all_errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Top-level GraphQL errors and every payload's `errors` list."""
    found: list[dict[str, Any]] = list(body.get("errors") or [])
    for payload in (body.get("data") or {}).values():
        if isinstance(payload, dict):
            found.extend(payload.get("errors") or [])
    return found


async def _snapshot(gql: GraphQL, tenant: Tenant) -> dict[str, Any]:
    return await gql.data(EVERYTHING, token=tenant.token)


def _assert_snapshot_matches(snapshot: dict[str, Any], tenant: Tenant) -> None:
    org = tenant.org
    users = {encode_global_id("User", m.id): m.email for m in org.members}
    assert snapshot["viewer"] == {
        "id": encode_global_id("User", org.members[0].id),
        "email": org.members[0].email,
    }
    assert snapshot["tenant"] == {"id": encode_global_id("Tenant", org.id), "slug": org.slug}
    assert {u["id"]: u["email"] for u in snapshot["users"]["nodes"]} == users
    projects = snapshot["projects"]
    assert {p["id"]: p["name"] for p in projects["nodes"]} == tenant.projects
    assert projects["totalCount"] == len(tenant.projects)
    tasks = snapshot["tasks"]
    assert {t["id"]: (t["project"]["id"], t["title"]) for t in tasks["nodes"]} == tenant.tasks
    assert tasks["totalCount"] == len(tenant.tasks)
    comments = {
        c["id"]: (t["id"], c["body"]) for t in tasks["nodes"] for c in t["comments"]["nodes"]
    }
    assert comments == tenant.comments


# --- One step of the property ---------------------------------------------------------------

Op = tuple[str, int, bool, int]  # (kind, acting tenant, prefer its own ids, which id)

KINDS = {
    # kind: (document, type of the targeted id, the variable holding it)
    "updateProject": (UPDATE_PROJECT, "Project", "id"),
    "deleteProject": (DELETE_PROJECT, "Project", "id"),
    "createTask": (CREATE_TASK, "Project", "projectId"),
    "updateTask": (UPDATE_TASK, "Task", "id"),
    "addComment": (ADD_COMMENT, "Task", "taskId"),
    "project": (PROJECT, "Project", "id"),
}


async def _step(gql: GraphQL, world: World, op: Op) -> None:
    kind, actor_index, prefer_own, pick = op
    actor = world.tenants[actor_index]
    mine = actor if prefer_own else None
    world.steps += 1
    text = f"{kind} {world.steps} of {actor.org.slug}"

    if kind == "createProject":
        body = await gql(CREATE_PROJECT, {"name": text}, token=actor.token)
        world.assert_nothing_leaks(actor, body)
        project = body["data"]["createProject"]["project"]
        assert project["name"] == text
        actor.projects[project["id"]] = text
        world.remember(actor, project["id"], text)
        return

    if kind == "node":
        type_name = NODE_TYPES[pick % len(NODE_TYPES)]
        target = world.pick(type_name, pick // len(NODE_TYPES), of=mine)
        document, variable = NODE, "id"
    else:
        document, type_name, variable = KINDS[kind]
        target = world.pick(type_name, pick, of=mine)
    variables = {variable: target, "name": text, "title": text, "body": text}
    variables = {k: v for k, v in variables.items() if f"${k}" in document}

    body = await gql(document, variables, token=actor.token)
    world.assert_nothing_leaks(actor, body)
    result = body["data"][next(iter(body["data"]))]

    event(f"{kind} of {'own' if actor.owns(target) else 'foreign or deleted'} id")
    if not actor.owns(target):
        # Another tenant's id (or a deleted one) is indistinguishable from a random one.
        random_body = await gql(
            document, {**variables, variable: _random_id(type_name)}, token=actor.token
        )
        assert body == random_body
        if kind in ("node", "project"):
            assert result is None
        else:
            assert result["errors"] == [
                {
                    "code": "NOT_FOUND",
                    "message": f"{'Task' if type_name == 'Task' else 'Project'} not found",
                    "field": variable,
                }
            ]
        return

    assert "errors" not in body, body
    if kind in ("node", "project"):
        assert result["id"] == target
        return
    assert result["errors"] == []
    if kind == "updateProject":
        assert result["project"] == {"id": target, "name": text}
        actor.projects[target] = text
    elif kind == "deleteProject":
        assert result["deletedId"] == target
        actor.delete_project(target)
    elif kind == "createTask":
        task = result["task"]
        assert (task["title"], task["project"]["id"]) == (text, target)
        actor.tasks[task["id"]] = (target, text)
        world.remember(actor, task["id"], text)
    elif kind == "updateTask":
        assert result["task"] == {"id": target, "title": text, "status": "IN_PROGRESS"}
        actor.tasks[target] = (actor.tasks[target][0], text)
    elif kind == "addComment":
        comment = result["comment"]
        assert (comment["body"], comment["task"]["id"]) == (text, target)
        actor.comments[comment["id"]] = (target, text)
        world.remember(actor, comment["id"], text)


OPERATIONS = st.tuples(
    # Creations weigh more, so later steps find ids of every type in the pool.
    st.sampled_from(
        ["createProject"] * 3
        + ["createTask"] * 3
        + ["addComment"] * 2
        + ["updateProject", "deleteProject", "updateTask", "node", "node", "project"]
    ),
    st.integers(min_value=0, max_value=2),  # which of the three tenants acts
    st.booleans(),  # True: one of its own live ids if it has any; False: any id ever made
    st.integers(min_value=0, max_value=999),  # which id
)


@settings(max_examples=examples(30))
@given(ops=st.lists(OPERATIONS, min_size=4, max_size=20))
async def test_random_operations_of_three_tenants_never_cross(
    gql: GraphQL,
    database: Database,
    tokens: TokenService,
    examples_run: list[int],
    ops: list[Op],
) -> None:
    examples_run.append(1)
    # Fresh tenants per example: each starts empty, so the model is exact.
    world = World([Tenant(await new_org(database, tokens)) for _ in range(3)])
    for op in ops:
        await _step(gql, world, op)
        for tenant in world.tenants:
            snapshot = await _snapshot(gql, tenant)
            world.assert_nothing_leaks(tenant, snapshot)
            _assert_snapshot_matches(snapshot, tenant)


async def test_the_property_checks_can_fail(
    gql: GraphQL, database: Database, tokens: TokenService
) -> None:
    # given two tenants, one with a project
    world = World([Tenant(await new_org(database, tokens)) for _ in range(2)])
    a, b = world.tenants
    await _step(gql, world, ("createProject", 0, True, 0))
    [project] = a.projects

    # when the model wrongly claims B sees A's project, or A's data is treated as B's secret
    b.projects[project] = a.projects[project]
    snapshot = await _snapshot(gql, a)
    world.secrets[1].add(a.org.slug)

    # then both checks fire
    with pytest.raises(AssertionError):
        _assert_snapshot_matches(await _snapshot(gql, b), b)
    with pytest.raises(AssertionError):
        world.assert_nothing_leaks(a, snapshot)


# --- Fixed cases: two tenants with one object of every type -----------------------------------


@dataclass(frozen=True)
class Objects:
    org: Org
    ids: dict[str, str]  # node type -> global id

    @property
    def token(self) -> str:
        return self.org.token


async def _populate(gql: GraphQL, org: Org) -> Objects:
    """A project, a task assigned to the first member, and a comment, made through the API."""
    token = org.token
    user = encode_global_id("User", org.members[0].id)
    project = (await gql.data(CREATE_PROJECT, {"name": f"P {org.slug}"}, token=token))[
        "createProject"
    ]["project"]["id"]
    task = (
        await gql.data(
            CREATE_TASK,
            {"projectId": project, "title": f"T {org.slug}", "assigneeId": user},
            token=token,
        )
    )["createTask"]["task"]["id"]
    comment = (await gql.data(ADD_COMMENT, {"taskId": task, "body": f"C {org.slug}"}, token=token))[
        "addComment"
    ]["comment"]["id"]
    ids = {
        "Tenant": encode_global_id("Tenant", org.id),
        "User": user,
        "Project": project,
        "Task": task,
        "Comment": comment,
    }
    return Objects(org, ids)


@pytest.fixture
async def a(gql: GraphQL, org: Org) -> Objects:
    return await _populate(gql, org)


@pytest.fixture
async def b(gql: GraphQL, other_org: Org) -> Objects:
    return await _populate(gql, other_org)


def _secrets_of(objects: Objects) -> set[str]:
    org = objects.org
    raw = {str(decode_global_id(i)[1]) for i in objects.ids.values()}  # type: ignore[index]
    return {org.slug, *(m.email for m in org.members), *objects.ids.values(), *raw}


def _assert_no_trace_of(objects: Objects, body: dict[str, Any]) -> None:
    text = json.dumps(body, ensure_ascii=False)
    for secret in _secrets_of(objects):
        assert secret not in text, (secret, body)


@pytest.mark.parametrize("type_name", NODE_TYPES)
async def test_node_of_another_tenant_is_null_like_a_random_id(
    gql: GraphQL, a: Objects, b: Objects, type_name: str
) -> None:
    # when A asks for its own object, B's, and a random one of the same type
    own = await gql(NODE, {"id": a.ids[type_name]}, token=a.token)
    foreign = await gql(NODE, {"id": b.ids[type_name]}, token=a.token)
    random = await gql(NODE, {"id": _random_id(type_name)}, token=a.token)

    # then
    assert without_cost(own) == {
        "data": {"node": {"id": a.ids[type_name], "__typename": type_name}}
    }
    assert without_cost(foreign) == without_cost(random) == {"data": {"node": None}}


async def test_project_of_another_tenant_is_null_like_a_random_id(
    gql: GraphQL, a: Objects, b: Objects
) -> None:
    # when
    own = await gql.data(PROJECT, {"id": a.ids["Project"]}, token=a.token)
    foreign = await gql(PROJECT, {"id": b.ids["Project"]}, token=a.token)
    random = await gql(PROJECT, {"id": _random_id("Project")}, token=a.token)

    # then
    assert own["project"]["id"] == a.ids["Project"]
    assert without_cost(foreign) == without_cost(random) == {"data": {"project": None}}


FILTER_CASES = {
    # name: (document, variable, type of its id, answer for A's own id, answer finding nothing)
    "tasks-by-project": (
        TASKS_OF_PROJECT,
        "projectId",
        "Project",
        lambda a: {"tasks": {"totalCount": 1, "nodes": [{"id": a.ids["Task"]}]}},
        {"tasks": {"totalCount": 0, "nodes": []}},
    ),
    "tasks-by-assignee": (
        TASKS_OF_ASSIGNEE,
        "assigneeId",
        "User",
        lambda a: {"tasks": {"totalCount": 1, "nodes": [{"id": a.ids["Task"]}]}},
        {"tasks": {"totalCount": 0, "nodes": []}},
    ),
    "assigned-tasks-of-user": (
        ASSIGNED_TASKS_OF_USER,
        "id",
        "User",
        lambda a: {"node": {"assignedTasks": {"totalCount": 1}}},
        {"node": None},
    ),
}


@pytest.mark.parametrize("case", list(FILTER_CASES))
async def test_filters_by_another_tenants_id_find_nothing_like_a_random_id(
    gql: GraphQL, a: Objects, b: Objects, case: str
) -> None:
    # given
    document, variable, type_name, own_answer, nothing = FILTER_CASES[case]

    # when
    own = await gql.data(document, {variable: a.ids[type_name]}, token=a.token)
    foreign = await gql.data(document, {variable: b.ids[type_name]}, token=a.token)
    random = await gql.data(document, {variable: _random_id(type_name)}, token=a.token)

    # then: A's own id finds A's task (the filter works); B's id finds what a random id finds
    assert own == own_answer(a)
    assert foreign == random == nothing


# Each case: a document and its variables; ("A"|"B"|"random", type) is replaced by that id.
IdRef = tuple[str, str]
ARGUMENT_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "updateProject": (UPDATE_PROJECT, {"id": ("B", "Project"), "name": "x"}),
    "archiveProject": (ARCHIVE_PROJECT, {"id": ("B", "Project")}),
    "deleteProject": (DELETE_PROJECT, {"id": ("B", "Project")}),
    "createTask.projectId": (CREATE_TASK, {"projectId": ("B", "Project"), "title": "x"}),
    "createTask.assigneeId": (
        CREATE_TASK,
        {"projectId": ("A", "Project"), "title": "x", "assigneeId": ("B", "User")},
    ),
    "updateTask": (UPDATE_TASK, {"id": ("B", "Task"), "title": "x"}),
    "assignTask.id": (ASSIGN_TASK, {"id": ("B", "Task"), "assigneeId": ("A", "User")}),
    "assignTask.assigneeId": (ASSIGN_TASK, {"id": ("A", "Task"), "assigneeId": ("B", "User")}),
    "moveTask.id": (MOVE_TASK, {"id": ("B", "Task")}),
    "moveTask.projectId": (MOVE_TASK, {"id": ("A", "Task"), "projectId": ("B", "Project")}),
    "moveTask.afterId": (MOVE_TASK, {"id": ("A", "Task"), "afterId": ("B", "Task")}),
    "deleteTask": (DELETE_TASK, {"id": ("B", "Task")}),
    "addComment": (ADD_COMMENT, {"taskId": ("B", "Task"), "body": "x"}),
    "editComment": (EDIT_COMMENT, {"id": ("B", "Comment"), "body": "x"}),
    "deleteComment": (DELETE_COMMENT, {"id": ("B", "Comment")}),
}


def _resolve(variables: dict[str, Any], a: Objects, b: Objects, *, foreign: str) -> dict[str, Any]:
    """Fill the id references; B's ids become `foreign` ("B" or "random")."""
    resolved: dict[str, Any] = {}
    for name, value in variables.items():
        if isinstance(value, tuple):
            owner, type_name = value
            if owner == "A":
                value = a.ids[type_name]
            elif foreign == "B":
                value = b.ids[type_name]
            else:
                value = _random_id(type_name)
        resolved[name] = value
    return resolved


@pytest.mark.parametrize("case", list(ARGUMENT_CASES))
async def test_mutation_with_another_tenants_id_is_not_found_like_a_random_id(
    gql: GraphQL, a: Objects, b: Objects, case: str
) -> None:
    # given
    document, variables = ARGUMENT_CASES[case]
    a_before, b_before = await _snapshot_of(gql, a), await _snapshot_of(gql, b)

    # when
    foreign = await gql(document, _resolve(variables, a, b, foreign="B"), token=a.token)
    random = await gql(document, _resolve(variables, a, b, foreign="random"), token=a.token)

    # then
    assert foreign == random
    [payload] = foreign["data"].values()
    [error] = payload["errors"]
    assert error["code"] == "NOT_FOUND"
    _assert_no_trace_of(b, foreign)
    assert await _snapshot_of(gql, b) == b_before
    assert await _snapshot_of(gql, a) == a_before


async def _snapshot_of(gql: GraphQL, objects: Objects) -> dict[str, Any]:
    return await gql.data(EVERYTHING, token=objects.token)


async def test_concurrent_requests_of_two_tenants_each_see_only_their_own(
    gql: GraphQL, a: Objects, b: Objects
) -> None:
    # given one document asking for every object of both tenants, batched by the loaders
    ids = [i for pair in zip(a.ids.values(), b.ids.values(), strict=True) for i in pair]
    names = [f"n{i}" for i in range(len(ids))]
    document = (
        "query ("
        + ", ".join(f"${n}: ID!" for n in names)
        + ") { "
        + " ".join(f"{n}: node(id: ${n}) {{ id }}" for n in names)
        + " }"
    )
    variables = dict(zip(names, ids, strict=True))

    def expected(objects: Objects) -> dict[str, Any]:
        own = set(objects.ids.values())
        return {n: ({"id": i} if i in own else None) for n, i in variables.items()}

    # when both tenants ask at the same time, several times over
    rounds = 5
    answers = await asyncio.gather(
        *(gql.data(document, variables, token=t.token) for _ in range(rounds) for t in (a, b))
    )

    # then
    assert answers == [expected(a), expected(b)] * rounds


async def test_a_tenant_never_lists_another_tenants_objects(
    gql: GraphQL, a: Objects, b: Objects
) -> None:
    # when
    seen_by_a = await _snapshot_of(gql, a)

    # then
    assert {p["id"] for p in seen_by_a["projects"]["nodes"]} == {a.ids["Project"]}
    assert {t["id"] for t in seen_by_a["tasks"]["nodes"]} == {a.ids["Task"]}
    _assert_no_trace_of(b, seen_by_a)
