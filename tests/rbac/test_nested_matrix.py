"""Every role against every path of the read schema: a type is read through relations exactly
when the role's root fields would give it (issue 12 §3).

The paths are not listed by hand: `roots` and `_select` walk the SDL from the read roots
(every root field of a tenant user; `node(id:)` once per node type) down to DEPTH relations
below the root, through connections (`nodes`, `edges { cursor }`, `pageInfo`, `totalCount`)
and lists, selecting every scalar on the way. One document per role holds every path of the
roots the role may call (a refused root is non-null: it would erase its siblings), run
against one seeded tenant.

For each role (the system roles, a custom role with a single permission for each
permission, and no role at all):

1. Its root fields decide what it may read: `node(id:)` of one object of each node type
   (null: not readable), and each root field returning that type must agree (FORBIDDEN
   exactly when the type is not readable; `viewer` aside, which is the caller's own record).
   The platform's root fields are FORBIDDEN to every one of them.
2. Its answer to the deep document is compared with an owner's answer to the same document
   (`viewer` read as `node(id:)` of the role's user): where a field reaches a readable type,
   the same data; where not, null and a FORBIDDEN error at exactly that path; per-object
   rules (`@selfOnly`, `@selfOrPermission`) null without an error on other users' records.
   No other error.

Not vacuous: every field refused to some role was read with data by another, and every field
that some role reaches without reading what it reaches (found from the roles' root fields)
was refused.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from dataclasses import field as default
from typing import Any
from uuid import UUID

import httpx
import pytest
from graphql import (
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNonNull,
    GraphQLObjectType,
    StringValueNode,
    get_named_type,
)
from graphql import build_schema as from_sdl

from app.api.relay import encode_global_id
from app.core.db import Database
from app.core.security import TokenService
from app.core.settings import Limits, Settings
from app.rbac import service as rbac
from app.rbac.permissions import SYSTEM_ROLES, Permission
from app.schema import sdl
from app.tenants.service import create_tenant
from tests.app_fixtures import GraphQL, start_server, stop_server
from tests.factories import open_session

# Relations below the root field.
DEPTH = 3
PAGE = 2

# The contract as clients see it: the walk and the rules come from the SDL, what a role may
# read from its answers to the root fields; nothing here trusts the code under test.
SCHEMA = from_sdl(sdl())
PLATFORM_RULES = {"requiresPlatformPermission", "platformSignedIn"}
SELF_ONLY, SELF_OR_PERMISSION = "selfOnly", "selfOrPermission"
NODE_TYPES = sorted(
    name
    for name, t in SCHEMA.type_map.items()
    if isinstance(t, GraphQLObjectType) and any(i.name == "Node" for i in t.interfaces)
)
ACCESS_RULES = {
    "requiresPermission",
    "signedIn",
    "public",
    SELF_ONLY,
    SELF_OR_PERMISSION,
    *PLATFORM_RULES,
}


# --- the walk ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """A field's access rule as its SDL directive shows it."""

    kind: str
    permission: str | None = None

    @property
    def per_row(self) -> bool:
        return self.kind in (SELF_ONLY, SELF_OR_PERMISSION)


def _connection_part(graphql_type: Any) -> bool:
    fields = getattr(graphql_type, "fields", {})
    return {"nodes", "pageInfo"} <= set(fields) or {"node", "cursor"} <= set(fields)


def _rule(field: GraphQLField) -> Rule | None:
    assert field.ast_node is not None
    for directive in field.ast_node.directives or ():
        if directive.name.value in ACCESS_RULES:
            values = [a.value for a in directive.arguments or ()]
            permission = values[0].value if values else None
            assert permission is None or isinstance(values[0], StringValueNode)
            return Rule(directive.name.value, permission)
    return None


@dataclass
class Selection:
    """One field of the generated document, with what the oracle needs to judge it."""

    name: str
    alias: str
    arguments: str = ""
    # The type whose object holds this field (for per-object rules: the record it is on).
    parent: str = ""
    # The node type a field reaches (through a list or connection); None for scalars and
    # other objects.
    reaches: str | None = None
    rule: Rule | None = None
    children: list[Selection] | None = None
    # Under `... on <type>` (for `node`).
    on: str | None = None

    def render(self) -> str:
        head = self.name if self.alias == self.name else f"{self.alias}: {self.name}"
        if self.children is None:
            return f"{head}{self.arguments}"
        inner = " ".join(c.render() for c in self.children)
        if self.on is not None:
            inner = f"... on {self.on} {{ {inner} }}"
        return f"{head}{self.arguments} {{ {inner} }}"


def _readable_type(graphql_type: Any) -> str | None:
    """The node type a field of this (named) type reaches, connections unwrapped."""
    if _connection_part(graphql_type):
        items = graphql_type.fields.get("nodes") or graphql_type.fields["node"]
        return _readable_type(get_named_type(items.type))
    return graphql_type.name if graphql_type.name in NODE_TYPES else None


def _select(graphql_type: GraphQLObjectType, depth: int) -> list[Selection]:
    """Every field of `graphql_type`, relations down to DEPTH."""
    chosen = []
    for name, field in graphql_type.fields.items():
        if any(isinstance(a.type, GraphQLNonNull) for a in field.args.values()):
            continue  # only roots take required arguments (given by `roots`)
        named = get_named_type(field.type)
        arguments = f"(first: {PAGE})" if "first" in field.args else ""
        if not isinstance(named, GraphQLObjectType):
            chosen.append(Selection(name, name, arguments, graphql_type.name, rule=_rule(field)))
            continue
        hop = not _connection_part(graphql_type)
        if _connection_part(graphql_type) and name == "node":
            continue  # an edge's node: the same objects as `nodes`, behind the same rule
        if hop and depth >= DEPTH:
            continue
        children = _select(named, depth + 1 if hop else depth)
        if children:
            chosen.append(
                Selection(
                    name,
                    name,
                    arguments,
                    graphql_type.name,
                    _readable_type(named),
                    _rule(field),
                    children,
                )
            )
    return chosen


def roots(ids: dict[str, str]) -> tuple[dict[str, Selection], list[Selection]]:
    """The read roots of a tenant user, each with its tree, by alias; and the platform
    roots (refused to every tenant user). `ids` holds one global id per type a root takes
    an id of (every node type)."""
    query = SCHEMA.query_type
    assert query is not None
    found: dict[str, Selection] = {}
    platform = []
    for name, field in query.fields.items():
        rule = _rule(field)
        assert rule is not None, name
        named = get_named_type(field.type)
        if isinstance(named, GraphQLInterfaceType):  # node(id:): once per node type
            for type_name in NODE_TYPES:
                node_type = SCHEMA.type_map[type_name]
                assert isinstance(node_type, GraphQLObjectType)
                alias = f"node_{type_name}"
                found[alias] = Selection(
                    name,
                    alias,
                    f'(id: "{ids[type_name]}")',
                    "Query",
                    type_name,
                    rule,
                    _select(node_type, 0),
                    on=type_name,
                )
            continue
        arguments = f'(id: "{ids[named.name]}")' if "id" in field.args else ""
        arguments = f"(first: {PAGE})" if "first" in field.args else arguments
        children = _select(named, 0) if isinstance(named, GraphQLObjectType) else None
        selection = Selection(name, name, arguments, "Query", _readable_type(named), rule, children)
        if rule.kind in PLATFORM_RULES:
            platform.append(selection)
        else:
            found[name] = selection
    return found, platform


def document(selections: list[Selection]) -> str:
    return "{ " + " ".join(s.render() for s in selections) + " }"


# --- the roles and their tenant ---------------------------------------------------------------

ROLES: list[tuple[str, list[str]]] = [
    *((key, []) for key in SYSTEM_ROLES),
    *((f"custom {p.value}", [p.value]) for p in Permission),
    ("no role", []),
]


@dataclass
class Reader:
    name: str
    user_id: UUID
    token: str

    @property
    def gid(self) -> str:
        return encode_global_id("User", self.user_id)


@dataclass
class World:
    tenant_id: UUID
    reference: Reader
    readers: dict[str, Reader]
    # One global id per node type.
    ids: dict[str, str] = default(default_factory=dict)


async def build_world(database: Database, tokens: TokenService) -> World:
    """One tenant: a reference owner who made everything, and one user per role, each with a
    session, and a task assigned to them and commented on."""
    slug = f"nested-{secrets.token_hex(5)}"
    tenant = await create_tenant(database, slug=slug, name=slug, plan="enterprise")
    async with database.transaction(tenant.id) as s:

        async def user(name: str, key: str | None) -> UUID:
            user_id: UUID = await s.fetchval(
                "INSERT INTO users (tenant_id, email, display_name) VALUES ($1, $2, $3)"
                " RETURNING id",
                tenant.id,
                f"{name.replace(' ', '-').replace(':', '-')}@{slug}.example",
                name,
            )
            if key is not None:
                await rbac.grant_system_role(s, user_id=user_id, key=key, granted_by=None)
            return user_id

        async def insert(sql: str, *args: Any) -> UUID:
            found: UUID = await s.fetchval(sql, tenant.id, *args)
            return found

        reference = await user("reference", "owner")
        readers = {}
        for name, permissions in ROLES:
            key = name if name in SYSTEM_ROLES else None
            readers[name] = await user(name, key)
            if permissions:
                role = await insert(
                    "INSERT INTO roles (tenant_id, name) VALUES ($1, $2) RETURNING id", name
                )
                for permission in permissions:
                    await s.execute(
                        "INSERT INTO role_permissions (tenant_id, role_id, permission)"
                        " VALUES ($1, $2, $3)",
                        tenant.id,
                        role,
                        permission,
                    )
                await s.execute(
                    "INSERT INTO user_roles (tenant_id, user_id, role_id) VALUES ($1, $2, $3)",
                    tenant.id,
                    readers[name],
                    role,
                )
        project = await insert(
            "INSERT INTO projects (tenant_id, name, created_by) VALUES ($1, 'Main', $2)"
            " RETURNING id",
            reference,
        )
        await insert(
            "INSERT INTO projects (tenant_id, name, created_by) VALUES ($1, 'Other', $2)"
            " RETURNING id",
            readers["member"],
        )
        task = comment = None
        for position, reader in enumerate(readers.values()):
            await s.execute(
                "INSERT INTO auth_sessions (tenant_id, user_id, aal, amr, expires_at, user_agent)"
                " VALUES ($1, $2, 1, '{pwd}', now() + interval '1 day', 'matrix')",
                tenant.id,
                reader,
            )
            task = await insert(
                "INSERT INTO tasks (tenant_id, project_id, title, position, assignee_id,"
                " created_by) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                project,
                f"Task {position}",
                float(position),
                reader,
                reference,
            )
            comment = await insert(
                "INSERT INTO comments (tenant_id, task_id, body, author_id)"
                " VALUES ($1, $2, 'Looks good', $3) RETURNING id",
                task,
                reference,
            )
        audit = await insert(
            "INSERT INTO audit_log (tenant_id, actor_kind, actor_id, action, outcome)"
            " VALUES ($1, 'user', $2, 'seed.event', 'success') RETURNING id",
            reference,
        )
        provider = await insert(
            "INSERT INTO identity_providers (tenant_id, name, issuer, audience, jwks_url)"
            " VALUES ($1, 'SSO', 'https://idp.example/', 'tenantry',"
            " 'https://idp.example/jwks') RETURNING id"
        )
        role_id: UUID = await s.fetchval("SELECT id FROM roles WHERE key = 'viewer'")

    async def reader(name: str, user_id: UUID) -> Reader:
        async with database.transaction(tenant.id) as session:
            return Reader(name, user_id, await open_session(session, tokens, user_id=user_id))

    assert task is not None
    assert comment is not None
    world = World(
        tenant.id,
        await reader("reference", reference),
        {n: await reader(n, u) for n, u in readers.items()},
    )
    for type_name, pk in {
        "AuditLogEntry": audit,
        "Comment": comment,
        "IdentityProvider": provider,
        "Project": project,
        "Role": role_id,
        "Task": task,
        "Tenant": tenant.id,
        "User": reference,
    }.items():
        world.ids[type_name] = encode_global_id(type_name, pk)
    # The platform's view of a tenant is named by the tenant's id.
    world.ids["PlatformTenant"] = world.ids["Tenant"]
    assert set(world.ids) - {"PlatformTenant"} == set(NODE_TYPES), "a new type needs an object"
    return world


@pytest.fixture(scope="module")
async def world(database: Database, tokens: TokenService) -> World:
    return await build_world(database, tokens)


@pytest.fixture(scope="module")
async def deep(app_settings: Settings, database: Database) -> AsyncIterator[GraphQL]:
    """A server whose document limits admit the whole tree of a role (the limits have
    tests of their own; these documents are long, not costly: PAGE items per connection)."""
    limits = Limits(
        max_depth=40,
        max_aliases=100,
        max_tokens=100_000,
        max_fields=10_000,
        max_nodes=1_000_000,
        validation_budget=1_000_000,
    )
    server, url = await start_server(dataclasses.replace(app_settings, limits=limits), database)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            yield GraphQL(http)
    finally:
        await stop_server(server)


# --- the oracle ---------------------------------------------------------------------------------


Path = tuple[str | int, ...]


@dataclass
class Seen:
    """Over every role: per guarded field (`Parent.field`), the roles that read it with data
    and those refused it; per role, the types its root fields let it read."""

    given: dict[str, set[str]] = default(default_factory=dict)
    refused: dict[str, set[str]] = default(default_factory=dict)
    readable: dict[str, set[str]] = default(default_factory=dict)


@dataclass
class Judge:
    """Compares a role's answer with the reference's, field by field, collecting the errors
    the role's answer must carry."""

    reader: Reader
    readable: set[str]
    permissions: set[str]
    seen: Seen
    expected_errors: set[tuple[Path, str]] = default(default_factory=set)

    def allowed(self, selection: Selection, record: dict[str, Any]) -> bool:
        """What the role must get here: decided by the type the field reaches and the
        role's root fields, never by the field's own declaration, except for the declared
        per-object rules on a user's own data."""
        rule = selection.rule
        if selection.parent == "Query":
            # Only roots the role may call are in the document; `node` hides what it may not
            # read (as the role's probe showed).
            return selection.name != "node" or selection.reaches in self.readable
        if rule is not None and rule.per_row:
            mine = record["id"] == self.reader.gid
            return mine or (rule.kind == SELF_OR_PERMISSION and rule.permission in self.permissions)
        return selection.reaches is None or selection.reaches in self.readable

    def compare(
        self, selections: list[Selection], got: dict[str, Any], want: dict[str, Any], path: Path
    ) -> None:
        for selection in selections:
            here = (*path, selection.alias)
            value, expected = got[selection.alias], want[selection.alias]
            where = f"{selection.parent}.{selection.name}"
            guarded = selection.reaches is not None or (
                selection.rule is not None and selection.rule.per_row
            )
            if not self.allowed(selection, got):
                assert value is None, here
                silent = (selection.rule is not None and selection.rule.per_row) or (
                    selection.name == "node"
                )
                if not silent:
                    self.expected_errors.add((here, "FORBIDDEN"))
                self.seen.refused.setdefault(where, set()).add(self.reader.name)
                continue
            if guarded and value not in (None, []):
                self.seen.given.setdefault(where, set()).add(self.reader.name)
            if selection.parent != "Query" and selection.rule == Rule(SELF_ONLY):
                # The reference reads someone else's record here: only the shape compares.
                assert isinstance(value, list), here
            elif selection.children is None:
                assert value == expected, here
            else:
                self.compare_value(selection, value, expected, here)

    def compare_value(self, selection: Selection, value: Any, expected: Any, path: Path) -> None:
        assert selection.children is not None
        if expected is None:
            assert value is None, path
        elif isinstance(expected, list):
            assert isinstance(value, list), path
            assert len(value) == len(expected), path
            for i, (v, e) in enumerate(zip(value, expected, strict=True)):
                self.compare_value(selection, v, e, (*path, i))
        else:
            assert isinstance(value, dict), path
            self.compare(selection.children, value, expected, path)


def refusals(body: dict[str, Any]) -> set[tuple[Path, str]]:
    return {(tuple(e["path"]), e["extensions"]["code"]) for e in body.get("errors", [])}


def as_reference(selection: Selection, reader: Reader) -> Selection:
    """`viewer` for the reference: the same tree, read as `node(id:)` of the role's user."""
    if selection.name != "viewer":
        return selection
    return dataclasses.replace(selection, name="node", arguments=f'(id: "{reader.gid}")', on="User")


def _walk(selections: list[Selection]) -> Iterator[Selection]:
    for s in selections:
        yield s
        yield from _walk(s.children or [])


def _probe(selection: Selection) -> str:
    inner = " { __typename }" if selection.children is not None else ""
    return f"{{ {selection.alias}: {selection.name}{selection.arguments}{inner} }}"


async def check_role(deep: GraphQL, world: World, reader: Reader, seen: Seen) -> None:
    tree, platform = roots(world.ids)

    # 1. What the role's root fields give it: `node` of one object per type, and every root
    # field returning a node type agrees with it.
    probe = " ".join(f'{t}: node(id: "{world.ids[t]}") {{ id }}' for t in NODE_TYPES)
    nodes = await deep.data(f"{{ {probe} viewer {{ permissions }} }}", token=reader.token)
    readable = {t for t in NODE_TYPES if nodes[t] is not None}
    seen.readable[reader.name] = readable
    callable_roots = []
    for alias, selection in tree.items():
        refused = refusals(await deep(_probe(selection), token=reader.token))
        if selection.name in ("viewer", "node") or selection.reaches is None:
            assert refused == set(), (alias, refused)
        else:
            expected = set() if selection.reaches in readable else {((alias,), "FORBIDDEN")}
            assert refused == expected, alias
        if not refused:
            callable_roots.append(alias)
    for selection in platform:
        answer = await deep(_probe(selection), token=reader.token)
        assert refusals(answer) == {((selection.alias,), "FORBIDDEN")}, selection.alias

    # 2. Every path below those roots, against the reference's answer.
    chosen = [tree[alias] for alias in callable_roots]
    body = await deep(document(chosen), token=reader.token)
    reference = await deep.data(
        document([as_reference(s, reader) for s in chosen]), token=world.reference.token
    )
    judge = Judge(reader, readable, set(nodes["viewer"]["permissions"]), seen)
    judge.compare(chosen, body["data"], reference, ())
    assert refusals(body) == judge.expected_errors


def must_be_refused(seen: Seen) -> set[str]:
    """Guarded fields some role reaches (it reads their parent type) without reading what
    they reach; and the per-object fields of users (every role reading users reads others')."""
    below = [
        s
        for root in roots(dict.fromkeys([*NODE_TYPES, "PlatformTenant"], ""))[0].values()
        for s in _walk(root.children or [])
    ]
    found = set()
    for s in below:
        where = f"{s.parent}.{s.name}"
        if (s.rule is not None and s.rule.per_row) or (
            s.reaches is not None
            and any(
                s.parent in readable and s.reaches not in readable
                for readable in seen.readable.values()
            )
        ):
            found.add(where)
    return found


async def test_every_role_reads_through_relations_what_its_root_fields_give_it(
    deep: GraphQL, world: World
) -> None:
    seen = Seen()
    for name, _ in ROLES:
        try:
            await check_role(deep, world, world.readers[name], seen)
        except AssertionError as error:
            raise AssertionError(f"role {name!r}: {error}") from error

    # Not vacuous: every guarded field was read with data by some role, and refused to every
    # role that reached it without reading what it reaches, as the probe found.
    assert set(seen.refused) - set(seen.given) == set(), "never readable with data"
    refused = must_be_refused(seen)
    assert refused - set(seen.refused) == set(), "never refused"
    assert {
        "Task.assignee",
        "Task.createdBy",
        "Project.createdBy",
        "Comment.author",
        "User.assignedTasks",
        "User.roles",
        "User.sessions",
        "User.permissions",
    } <= refused
    # Roles differ in what they read: the system roles and single permissions are not all
    # alike (a broken probe would make them so).
    assert len({frozenset(r) for r in seen.readable.values()}) >= 4
