"""The named GraphQL operations both benchmarks send, and how a response is judged.

Variables come from a seeded `random.Random`, so the sequence of ids and titles is the
same on every run. Each operation checks the data of its first response: a benchmark
that measures an error page would be worse than none.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.api.relay import encode_global_id

from ._dataset import PASSWORD, PROJECTS_PER_TENANT, TenantData

Variables = dict[str, Any] | None

VIEWER = "query Viewer { viewer { id email displayName } }"

PROJECTS = """
query Projects {
  projects(first: 20) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { id name status createdAt }
  }
}
"""

# 20 projects x 10 tasks x 3 comments, with assignee and author: the dashboard read.
PROJECT_PAGE = """
query ProjectPage {
  projects(first: 20) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes {
      id name status
      tasks(first: 10) {
        totalCount
        nodes {
          id title status priority dueDate
          assignee { id displayName }
          comments(first: 3) { nodes { id body createdAt author { id displayName } } }
        }
      }
    }
  }
}
"""

OPEN_TASKS = """
query OpenTasks {
  tasks(first: 50, filter: {status: [TODO, IN_PROGRESS]},
        orderBy: {field: PRIORITY, direction: DESC}) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { id title status priority dueDate }
  }
}
"""

NODE = """
query Node($id: ID!) {
  node(id: $id) { id ... on Task { title status priority project { id name } } }
}
"""

CREATE_TASK = """
mutation CreateTask($input: CreateTaskInput!) {
  createTask(input: $input) { task { id title position } errors { code field message } }
}
"""

SIGN_IN = """
mutation SignIn($input: SignInInput!) {
  signIn(input: $input) { accessToken expiresAt errors { code message } }
}
"""


def _no_variables(tenant: TenantData, rng: random.Random, i: int) -> Variables:
    return None


def _node_variables(tenant: TenantData, rng: random.Random, i: int) -> Variables:
    return {"id": encode_global_id("Task", rng.choice(tenant.task_ids))}


def _create_task_variables(tenant: TenantData, rng: random.Random, i: int) -> Variables:
    project = encode_global_id("Project", rng.choice(tenant.project_ids))
    return {"input": {"projectId": project, "title": f"Bench task {i}", "priority": "HIGH"}}


def _sign_in_variables(tenant: TenantData, rng: random.Random, i: int) -> Variables:
    email = rng.choice(tenant.emails)
    return {"input": {"tenant": tenant.slug, "email": email, "password": PASSWORD}}


def _unknown_account_variables(tenant: TenantData, rng: random.Random, i: int) -> Variables:
    # A real tenant, an email that exists nowhere: what an attacker probing accounts sends.
    email = f"nobody-{rng.getrandbits(64):016x}@bench.example"
    return {"input": {"tenant": tenant.slug, "email": email, "password": PASSWORD}}


class UnexpectedResponse(RuntimeError):
    """The server answered, but not with the data the operation must return."""


def _expect(condition: object, data: object) -> None:
    # Not `assert`: the checks must hold under `python -O` too.
    if not condition:
        raise UnexpectedResponse(str(data)[:1000])


def _check_viewer(data: dict[str, Any], tenant: TenantData) -> None:
    _expect(data["viewer"]["email"] == tenant.emails[0], data)


def _check_projects(data: dict[str, Any], tenant: TenantData) -> None:
    _expect(data["projects"]["totalCount"] == PROJECTS_PER_TENANT, data)
    _expect(len(data["projects"]["nodes"]) == 20, data)


def _check_project_page(data: dict[str, Any], tenant: TenantData) -> None:
    projects = data["projects"]["nodes"]
    _expect(len(projects) == 20, data)
    _expect(all(len(p["tasks"]["nodes"]) == 10 for p in projects), data)
    comments = [c for p in projects for t in p["tasks"]["nodes"] for c in t["comments"]["nodes"]]
    _expect(comments, "the seeded dataset has comments")
    _expect(all(c["author"]["displayName"] for c in comments), comments)


def _check_open_tasks(data: dict[str, Any], tenant: TenantData) -> None:
    nodes = data["tasks"]["nodes"]
    _expect(len(nodes) == 50, data)
    _expect({n["status"] for n in nodes} <= {"TODO", "IN_PROGRESS"}, data)
    rank = ["LOW", "MEDIUM", "HIGH", "URGENT"]
    ranks = [rank.index(n["priority"]) for n in nodes]
    _expect(ranks == sorted(ranks, reverse=True), ranks)


def _check_node(data: dict[str, Any], tenant: TenantData) -> None:
    _expect(data["node"]["title"], data)
    _expect(data["node"]["project"]["name"], data)


def _check_create_task(data: dict[str, Any], tenant: TenantData) -> None:
    _expect(data["createTask"]["errors"] == [], data)
    _expect(data["createTask"]["task"]["title"].startswith("Bench task"), data)


def _check_sign_in(data: dict[str, Any], tenant: TenantData) -> None:
    _expect(data["signIn"]["errors"] == [], data)
    _expect(data["signIn"]["accessToken"], data)


def _check_sign_in_refused(data: dict[str, Any], tenant: TenantData) -> None:
    _expect([e["code"] for e in data["signIn"]["errors"]] == ["INVALID_CREDENTIALS"], data)


@dataclass(frozen=True)
class Op:
    """One named operation: a GraphQL document, seeded variables, and a check of its data."""

    name: str
    document: str
    check: Callable[[dict[str, Any], TenantData], None]
    variables: Callable[[TenantData, random.Random, int], Variables] = _no_variables
    authenticated: bool = True
    mutation: bool = False
    # A payload `errors` entry is this operation's expected answer (its check verifies it).
    refused: bool = False

    def body(self, variables: Variables) -> bytes:
        payload: dict[str, Any] = {"query": self.document}
        if variables is not None:
            payload["variables"] = variables
        return json.dumps(payload).encode()


OPS = {
    op.name: op
    for op in (
        Op("viewer", VIEWER, _check_viewer),
        Op("projects(first:20)", PROJECTS, _check_projects),
        Op("project page nested", PROJECT_PAGE, _check_project_page),
        Op("tasks filtered+ordered", OPEN_TASKS, _check_open_tasks),
        Op("node(id:)", NODE, _check_node, _node_variables),
        Op("createTask", CREATE_TASK, _check_create_task, _create_task_variables, mutation=True),
        Op(
            "signIn",
            SIGN_IN,
            _check_sign_in,
            _sign_in_variables,
            authenticated=False,
            mutation=True,
        ),
        # Side by side with signIn: an unknown account must cost what a known one does.
        Op(
            "signIn unknown account",
            SIGN_IN,
            _check_sign_in_refused,
            _unknown_account_variables,
            authenticated=False,
            mutation=True,
            refused=True,
        ),
    )
}
NESTED = OPS["project page nested"]

# The load mix (weights in percent): read-heavy, with a trickle of writes. signIn is left
# out on purpose: one Argon2 verification (~tens of ms of CPU) would dominate every level.
LOAD_MIX = {
    "viewer": 20,
    "projects(first:20)": 20,
    "project page nested": 15,
    "tasks filtered+ordered": 20,
    "node(id:)": 20,
    "createTask": 5,
}


def op_rng(seed: int, op: Op) -> random.Random:
    """The variables' random source of one operation in the latency benchmark."""
    # A str seed is hashed with SHA-512: stable across runs and processes, unlike hash().
    return random.Random(f"{seed}:latency:{op.name}")


def failed(content: bytes) -> bool:
    """A GraphQL error anywhere: top-level `errors`, or a payload's non-empty `errors`."""
    if b'"errors"' not in content:  # cheap: most reads never mention it
        return False
    body = json.loads(content)
    if body.get("errors"):
        return True
    data = body.get("data") or {}
    return any(isinstance(v, dict) and v.get("errors") for v in data.values())
