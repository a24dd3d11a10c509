"""Every system role against every permission-guarded operation, from one table.

Each case builds a small tenant of its own: a `boss` (owner) who made the content, the `actor`
holding the role under test (or no role at all), and a plain member `other`. The actor calls
one operation on that content. The operation is allowed exactly when the permission it needs
*for those objects* is among the role's effective permissions (app/rbac/permissions.py):

- allowed: the operation returns what it should (no FORBIDDEN anywhere), and a mutation meant
  to succeed changed the tenant's rows;
- denied: FORBIDDEN, top-level when the field's own `@requiresPermission` is missing (nothing
  ran), in the payload when the field's permission is held but not for the object (an `…:own`
  permission and someone else's object; a user holding a role the actor may not act on);
  `node(id:)` reads as null instead. Either way no row of the tenant changed.

Acting on a user needs what acting on each of their roles needs: every permission the role
grants, and for the owner role, being an owner. The world's owners (`boss`, a disabled
`former` owner, a `pending` owner's invitation) are what admins may not touch.

A new guarded root field fails `test_the_matrix_covers_every_guarded_root_field` until it is
added to OPERATIONS.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import graphql
import pytest

from app.api.relay import encode_global_id
from app.comments.service import add_comment
from app.core.db import Database
from app.core.request_meta import RequestMeta
from app.core.security import TokenService
from app.core.store import Store
from app.projects.service import create_project, set_archived
from app.rbac import queries as rbac_queries
from app.rbac import service as rbac
from app.rbac.permissions import SYSTEM_ROLES, Permission, effective
from app.schema import build_schema
from app.tasks.service import NewTask, create_task
from app.tenants.service import create_tenant
from app.users.service import create_user
from tests.app_fixtures import GraphQL, without_cost
from tests.factories import fingerprint, open_session, set_role

P = Permission
# The system roles, and None: a signed-in user of the tenant holding no role at all.
ROLES: list[str | None] = [*SYSTEM_ROLES, None]


@dataclass(frozen=True)
class World:
    """One case's tenant: global ids of its objects and the actor's access token."""

    tenant_id: UUID
    token: str
    boss: str
    actor: str
    other: str
    # `other`'s raw id, as the audit log records targets.
    other_pk: str
    # A disabled member, for enableUser.
    disabled: str
    project: str
    archived: str
    # Tasks assigned to the boss ("theirs") and to the actor ("mine").
    theirs: str
    mine: str
    # The boss's comment on `theirs` and the actor's comment on `mine`.
    boss_comment: str
    own_comment: str
    # Custom roles granting project:read: `custom` nobody holds, `held` is held by `other`
    # and by the boss.
    custom: str
    held: str
    # A disabled owner, and the email of an owner invited who has not accepted yet.
    former: str
    pending: str
    pending_email: str


async def build_world(database: Database, tokens: TokenService, role: str | None) -> World:
    slug = f"rbac-{secrets.token_hex(5)}"
    # Unlimited: the world's users and projects are no case of quotas.
    tenant = await create_tenant(database, slug=slug, name=f"Matrix {slug}", plan="enterprise")
    store = Store.from_url(None)
    meta = RequestMeta.none()
    try:
        async with database.transaction(tenant.id) as session:

            async def user(name: str, key: str) -> UUID:
                created = await create_user(
                    session,
                    email=f"{name}@{slug}.example",
                    display_name=name,
                    password=None,
                    role=key,
                )
                return created.id

            boss_id = await user("boss", "owner")
            actor_id = await user("actor", role or "viewer")
            other_id = await user("other", "member")
            disabled_id = await user("disabled", "member")
            former_id = await user("former", "owner")
            pending_id = await user("pending", "owner")
            for user_id, status in (
                (disabled_id, "disabled"),
                (former_id, "disabled"),
                (pending_id, "invited"),
            ):
                await session.execute("UPDATE users SET status = $2 WHERE id = $1", user_id, status)
            boss = await rbac.resolve(session, boss_id)

            project = await create_project(session, name="Main", description="", actor=boss)
            archived = await create_project(session, name="Old", description="", actor=boss)
            await set_archived(session, archived.id, archived=True, actor=boss)
            theirs = await create_task(
                session, NewTask(project.id, "Theirs", assignee_id=boss_id), actor=boss
            )
            mine = await create_task(
                session, NewTask(project.id, "Mine", assignee_id=actor_id), actor=boss
            )
            boss_comment = await add_comment(session, theirs.id, "The boss's", actor=boss)
            # Straight into the table: the actor's role may not allow writing one.
            own_comment: UUID = await session.fetchval(
                "INSERT INTO comments (tenant_id, task_id, body, author_id)"
                " VALUES ($1, $2, $3, $4) RETURNING id",
                tenant.id,
                mine.id,
                "The actor's",
                actor_id,
            )

            async def custom_role(name: str) -> UUID:
                created = await rbac.create_role(
                    session,
                    store,
                    meta,
                    actor=boss,
                    name=name,
                    description="",
                    permissions=[P.PROJECT_READ.value],
                )
                return created.id

            custom = await custom_role("Custom")
            held = await custom_role("Held")
            await rbac.assign_role(session, store, meta, actor=boss, user_id=other_id, role_id=held)
            # Straight into the table: the audit log's role.assigned entry stays `other`'s.
            await rbac_queries.assign(session, boss_id, held, None)
            token = await open_session(session, tokens, user_id=actor_id)
    finally:
        await store.close()
    if role is None:
        await set_role(database, tenant.id, actor_id, None)
    return World(
        tenant_id=tenant.id,
        token=token,
        boss=encode_global_id("User", boss_id),
        actor=encode_global_id("User", actor_id),
        other=encode_global_id("User", other_id),
        other_pk=str(other_id),
        disabled=encode_global_id("User", disabled_id),
        project=encode_global_id("Project", project.id),
        archived=encode_global_id("Project", archived.id),
        theirs=encode_global_id("Task", theirs.id),
        mine=encode_global_id("Task", mine.id),
        boss_comment=encode_global_id("Comment", boss_comment.id),
        own_comment=encode_global_id("Comment", own_comment),
        custom=encode_global_id("Role", custom),
        held=encode_global_id("Role", held),
        former=encode_global_id("User", former_id),
        pending=encode_global_id("User", pending_id),
        pending_email=f"pending@{slug}.example",
    )


# --- the operations --------------------------------------------------------------------------

Variables = Callable[[World], dict[str, Any]]
Expected = Callable[[World], Any]


@dataclass(frozen=True)
class Operation:
    """One root field called on the world's objects.

    `needs` is the permission the call needs for *those* objects (at least the field's own);
    `expect` gives the field's value when the call is allowed.
    """

    name: str
    document: str
    variables: Variables
    needs: Permission
    expect: Expected
    # The system role of the user the operation acts on, when it acts on one: the actor
    # must also be allowed to act on that role (its permissions; owners only by owners).
    acts_on: str | None = None

    @property
    def field(self) -> str:
        return self.name.split("(")[0]

    @property
    def is_mutation(self) -> bool:
        return self.document.lstrip().startswith("mutation")


def _none(w: World) -> dict[str, Any]:
    return {}


def _id(pick: Callable[[World], str]) -> Variables:
    return lambda w: {"id": pick(w)}


def _ok(key: str, value: Callable[[World], Any]) -> Expected:
    """A mutation payload that succeeded with `value` as its object."""
    return lambda w: {key: value(w), "errors": []}


def _deleted(pick: Callable[[World], str]) -> Expected:
    return lambda w: {"deletedId": pick(w), "errors": []}


def _not_found(key: str) -> Expected:
    """Authorized, but about an object that does not exist."""
    return lambda w: {key: None, "errors": [{"code": "NOT_FOUND"}]}


ERRORS = "errors { code }"
PROJECTS = "{ projects(orderBy: {field: NAME}) { totalCount nodes { id name } } }"
PROJECT = "query($id: ID!) { project(id: $id) { id name } }"
NODE = "query($id: ID!) { node(id: $id) { __typename id } }"
TASKS = "{ tasks { totalCount nodes { id title } } }"
USERS = "{ users(orderBy: {field: EMAIL}) { nodes { id } } }"
LIST_ROLES = "{ roles { key name } }"
AUDIT_LOG = '{ auditLog(action: "role.assigned") { nodes { action targetId } } }'
IDENTITY_PROVIDERS = "{ identityProviders { id } }"

CREATE_PROJECT = (
    f'mutation {{ createProject(input: {{name: "New"}}) {{ project {{ name status }} {ERRORS} }} }}'
)
UPDATE_PROJECT = (
    'mutation($id: ID!) { updateProject(input: {id: $id, name: "Renamed"})'
    f" {{ project {{ id name }} {ERRORS} }} }}"
)
ARCHIVE_PROJECT = (
    f"mutation($id: ID!) {{ archiveProject(id: $id) {{ project {{ id status }} {ERRORS} }} }}"
)
UNARCHIVE_PROJECT = (
    f"mutation($id: ID!) {{ unarchiveProject(id: $id) {{ project {{ id status }} {ERRORS} }} }}"
)
DELETE_PROJECT = f"mutation($id: ID!) {{ deleteProject(id: $id) {{ deletedId {ERRORS} }} }}"
CREATE_TASK = (
    'mutation($project: ID!) { createTask(input: {projectId: $project, title: "New"})'
    f" {{ task {{ title project {{ id }} }} {ERRORS} }} }}"
)
UPDATE_TASK = (
    'mutation($id: ID!) { updateTask(input: {id: $id, title: "Retitled"})'
    f" {{ task {{ id title }} {ERRORS} }} }}"
)
ASSIGN_TASK = (
    "mutation($id: ID!, $to: ID!) { assignTask(input: {id: $id, assigneeId: $to})"
    f" {{ task {{ id assignee {{ id }} }} {ERRORS} }} }}"
)
MOVE_TASK = (
    "mutation($id: ID!, $to: ID!) { moveTask(input: {id: $id, projectId: $to})"
    f" {{ task {{ id project {{ id }} }} {ERRORS} }} }}"
)
DELETE_TASK = f"mutation($id: ID!) {{ deleteTask(id: $id) {{ deletedId {ERRORS} }} }}"
ADD_COMMENT = (
    'mutation($task: ID!) { addComment(input: {taskId: $task, body: "Hello"})'
    f" {{ comment {{ body task {{ id }} author {{ id }} }} {ERRORS} }} }}"
)
EDIT_COMMENT = (
    'mutation($id: ID!) { editComment(input: {id: $id, body: "Edited"})'
    f" {{ comment {{ id body }} {ERRORS} }} }}"
)
DELETE_COMMENT = f"mutation($id: ID!) {{ deleteComment(id: $id) {{ deletedId {ERRORS} }} }}"
INVITE_USER = (
    "mutation($email: String!) { inviteUser(input: {email: $email, role: MEMBER})"
    f" {{ user {{ email status }} {ERRORS} }} }}"
)
DISABLE_USER = f"mutation($id: ID!) {{ disableUser(id: $id) {{ user {{ id status }} {ERRORS} }} }}"
ENABLE_USER = f"mutation($id: ID!) {{ enableUser(id: $id) {{ user {{ id status }} {ERRORS} }} }}"
CREATE_ROLE = (
    'mutation { createRole(input: {name: "Auditor", permissions: ["project:read"]})'
    f" {{ role {{ name permissions }} {ERRORS} }} }}"
)
UPDATE_ROLE = (
    'mutation($id: ID!) { updateRole(input: {id: $id, name: "Renamed"})'
    f" {{ role {{ id name }} {ERRORS} }} }}"
)
DELETE_ROLE = f"mutation($id: ID!) {{ deleteRole(id: $id) {{ deletedId {ERRORS} }} }}"
ASSIGN_ROLE = (
    "mutation($user: ID!, $role: ID!) { assignRole(input: {userId: $user, roleId: $role})"
    f" {{ user {{ id roles {{ name }} }} {ERRORS} }} }}"
)
UNASSIGN_ROLE = (
    "mutation($user: ID!, $role: ID!) { unassignRole(input: {userId: $user, roleId: $role})"
    f" {{ user {{ id roles {{ name }} }} {ERRORS} }} }}"
)
SET_MFA_REQUIRED = (
    f"mutation {{ setMfaRequired(required: true) {{ tenant {{ mfaRequired }} {ERRORS} }} }}"
)
UPDATE_TENANT_SETTINGS = (
    "mutation { updateTenantSettings(input: {defaultTaskStatus: IN_PROGRESS})"
    f" {{ tenant {{ defaultTaskStatus }} {ERRORS} }} }}"
)
ADD_IDENTITY_PROVIDER = (
    'mutation { addIdentityProvider(input: {name: "SSO", issuer: "https://idp.example/",'
    ' audience: "tenantry", jwksUrl: "https://idp.example/jwks"})'
    f" {{ identityProvider {{ issuer enabled }} {ERRORS} }} }}"
)
UPDATE_IDENTITY_PROVIDER = (
    'mutation($id: ID!) { updateIdentityProvider(input: {id: $id, name: "Renamed"})'
    f" {{ identityProvider {{ id }} {ERRORS} }} }}"
)
REMOVE_IDENTITY_PROVIDER = (
    f"mutation($id: ID!) {{ removeIdentityProvider(id: $id) {{ deletedId {ERRORS} }} }}"
)


def _unknown_provider(w: World) -> dict[str, Any]:
    return {"id": encode_global_id("IdentityProvider", uuid4())}


def _task(pick: Callable[[World], str], **fields: Any) -> Expected:
    return _ok("task", lambda w: {"id": pick(w), **fields})


def _comment(pick: Callable[[World], str]) -> Expected:
    return _ok("comment", lambda w: {"id": pick(w), "body": "Edited"})


def _user_roles(*names: str, of: Callable[[World], str] = lambda w: w.other) -> Expected:
    return _ok("user", lambda w: {"id": of(w), "roles": [{"name": n} for n in names]})


OPERATIONS: list[Operation] = [
    # Queries.
    Operation(
        "projects",
        PROJECTS,
        _none,
        P.PROJECT_READ,
        lambda w: {
            "totalCount": 2,
            "nodes": [{"id": w.project, "name": "Main"}, {"id": w.archived, "name": "Old"}],
        },
    ),
    Operation(
        "project",
        PROJECT,
        _id(lambda w: w.project),
        P.PROJECT_READ,
        lambda w: {"id": w.project, "name": "Main"},
    ),
    # Not guarded itself (@signedIn): without the type's read permission the object is absent.
    Operation(
        "node(project)",
        NODE,
        _id(lambda w: w.project),
        P.PROJECT_READ,
        lambda w: {"__typename": "Project", "id": w.project},
    ),
    Operation(
        "tasks",
        TASKS,
        _none,
        P.PROJECT_READ,
        lambda w: {
            "totalCount": 2,
            "nodes": [{"id": w.theirs, "title": "Theirs"}, {"id": w.mine, "title": "Mine"}],
        },
    ),
    Operation(
        "users",
        USERS,
        _none,
        P.USER_READ,
        # By email: actor@, boss@, disabled@, former@, other@, pending@.
        lambda w: {
            "nodes": [
                {"id": i} for i in (w.actor, w.boss, w.disabled, w.former, w.other, w.pending)
            ]
        },
    ),
    Operation(
        "roles",
        LIST_ROLES,
        _none,
        P.USER_READ,
        lambda w: [
            {"key": "owner", "name": "Owner"},
            {"key": "admin", "name": "Admin"},
            {"key": "member", "name": "Member"},
            {"key": "viewer", "name": "Viewer"},
            {"key": None, "name": "Custom"},
            {"key": None, "name": "Held"},
        ],
    ),
    Operation(
        "auditLog",
        AUDIT_LOG,
        _none,
        P.AUDIT_READ,
        lambda w: {"nodes": [{"action": "role.assigned", "targetId": w.other_pk}]},
    ),
    Operation("identityProviders", IDENTITY_PROVIDERS, _none, P.TENANT_SETTINGS, lambda w: []),
    # Projects.
    Operation(
        "createProject",
        CREATE_PROJECT,
        _none,
        P.PROJECT_WRITE,
        _ok("project", lambda w: {"name": "New", "status": "ACTIVE"}),
    ),
    Operation(
        "updateProject",
        UPDATE_PROJECT,
        _id(lambda w: w.project),
        P.PROJECT_WRITE,
        _ok("project", lambda w: {"id": w.project, "name": "Renamed"}),
    ),
    Operation(
        "archiveProject",
        ARCHIVE_PROJECT,
        _id(lambda w: w.project),
        P.PROJECT_WRITE,
        _ok("project", lambda w: {"id": w.project, "status": "ARCHIVED"}),
    ),
    Operation(
        "unarchiveProject",
        UNARCHIVE_PROJECT,
        _id(lambda w: w.archived),
        P.PROJECT_WRITE,
        _ok("project", lambda w: {"id": w.archived, "status": "ACTIVE"}),
    ),
    Operation(
        "deleteProject",
        DELETE_PROJECT,
        _id(lambda w: w.project),
        P.PROJECT_WRITE,
        _deleted(lambda w: w.project),
    ),
    # Tasks: `task:write:own` covers creating and the actor's own task, `task:write` any task.
    Operation(
        "createTask",
        CREATE_TASK,
        lambda w: {"project": w.project},
        P.TASK_WRITE_OWN,
        _ok("task", lambda w: {"title": "New", "project": {"id": w.project}}),
    ),
    Operation(
        "updateTask(mine)",
        UPDATE_TASK,
        _id(lambda w: w.mine),
        P.TASK_WRITE_OWN,
        _task(lambda w: w.mine, title="Retitled"),
    ),
    Operation(
        "updateTask(theirs)",
        UPDATE_TASK,
        _id(lambda w: w.theirs),
        P.TASK_WRITE,
        _task(lambda w: w.theirs, title="Retitled"),
    ),
    Operation(
        "assignTask(mine)",
        ASSIGN_TASK,
        lambda w: {"id": w.mine, "to": w.other},
        P.TASK_WRITE_OWN,
        lambda w: {"task": {"id": w.mine, "assignee": {"id": w.other}}, "errors": []},
    ),
    Operation(
        "assignTask(theirs)",
        ASSIGN_TASK,
        lambda w: {"id": w.theirs, "to": w.other},
        P.TASK_WRITE,
        lambda w: {"task": {"id": w.theirs, "assignee": {"id": w.other}}, "errors": []},
    ),
    # To the top of the same project (afterId null): the row is rewritten even where the
    # position stays (updated_at).
    Operation(
        "moveTask(mine)",
        MOVE_TASK,
        lambda w: {"id": w.mine, "to": w.project},
        P.TASK_WRITE_OWN,
        lambda w: {"task": {"id": w.mine, "project": {"id": w.project}}, "errors": []},
    ),
    Operation(
        "moveTask(theirs)",
        MOVE_TASK,
        lambda w: {"id": w.theirs, "to": w.project},
        P.TASK_WRITE,
        lambda w: {"task": {"id": w.theirs, "project": {"id": w.project}}, "errors": []},
    ),
    Operation(
        "deleteTask(mine)",
        DELETE_TASK,
        _id(lambda w: w.mine),
        P.TASK_WRITE_OWN,
        _deleted(lambda w: w.mine),
    ),
    Operation(
        "deleteTask(theirs)",
        DELETE_TASK,
        _id(lambda w: w.theirs),
        P.TASK_WRITE,
        _deleted(lambda w: w.theirs),
    ),
    # Comments: `comment:write` covers adding and one's own, `comment:moderate` anyone's.
    Operation(
        "addComment",
        ADD_COMMENT,
        lambda w: {"task": w.theirs},
        P.COMMENT_WRITE,
        _ok(
            "comment",
            lambda w: {"body": "Hello", "task": {"id": w.theirs}, "author": {"id": w.actor}},
        ),
    ),
    Operation(
        "editComment(own)",
        EDIT_COMMENT,
        _id(lambda w: w.own_comment),
        P.COMMENT_WRITE,
        _comment(lambda w: w.own_comment),
    ),
    Operation(
        "editComment(boss's)",
        EDIT_COMMENT,
        _id(lambda w: w.boss_comment),
        P.COMMENT_MODERATE,
        _comment(lambda w: w.boss_comment),
    ),
    Operation(
        "deleteComment(own)",
        DELETE_COMMENT,
        _id(lambda w: w.own_comment),
        P.COMMENT_WRITE,
        _deleted(lambda w: w.own_comment),
    ),
    Operation(
        "deleteComment(boss's)",
        DELETE_COMMENT,
        _id(lambda w: w.boss_comment),
        P.COMMENT_MODERATE,
        _deleted(lambda w: w.boss_comment),
    ),
    # Users.
    Operation(
        "inviteUser",
        INVITE_USER,
        lambda w: {"email": "invitee@example.com"},
        P.USER_INVITE,
        _ok("user", lambda w: {"email": "invitee@example.com", "status": "INVITED"}),
    ),
    Operation(
        "disableUser",
        DISABLE_USER,
        _id(lambda w: w.other),
        P.USER_MANAGE,
        _ok("user", lambda w: {"id": w.other, "status": "DISABLED"}),
    ),
    Operation(
        "enableUser",
        ENABLE_USER,
        _id(lambda w: w.disabled),
        P.USER_MANAGE,
        _ok("user", lambda w: {"id": w.disabled, "status": "ACTIVE"}),
    ),
    # Acting on an owner: only owners may (an admin holds every permission, but not that).
    Operation(
        "disableUser(owner)",
        DISABLE_USER,
        _id(lambda w: w.boss),
        P.USER_MANAGE,
        _ok("user", lambda w: {"id": w.boss, "status": "DISABLED"}),
        acts_on="owner",
    ),
    Operation(
        "enableUser(owner)",
        ENABLE_USER,
        _id(lambda w: w.former),
        P.USER_MANAGE,
        _ok("user", lambda w: {"id": w.former, "status": "ACTIVE"}),
        acts_on="owner",
    ),
    Operation(
        "inviteUser(pending owner)",
        INVITE_USER,
        lambda w: {"email": w.pending_email},
        P.USER_INVITE,
        _ok("user", lambda w: {"email": w.pending_email, "status": "INVITED"}),
        acts_on="owner",
    ),
    # Roles (each custom role grants project:read, which owners and admins hold).
    Operation(
        "createRole",
        CREATE_ROLE,
        _none,
        P.ROLE_MANAGE,
        _ok("role", lambda w: {"name": "Auditor", "permissions": ["project:read"]}),
    ),
    Operation(
        "updateRole",
        UPDATE_ROLE,
        _id(lambda w: w.custom),
        P.ROLE_MANAGE,
        _ok("role", lambda w: {"id": w.custom, "name": "Renamed"}),
    ),
    Operation(
        "deleteRole",
        DELETE_ROLE,
        _id(lambda w: w.custom),
        P.ROLE_MANAGE,
        _deleted(lambda w: w.custom),
    ),
    Operation(
        "assignRole",
        ASSIGN_ROLE,
        lambda w: {"user": w.other, "role": w.custom},
        P.ROLE_MANAGE,
        _user_roles("Member", "Custom", "Held"),
    ),
    Operation(
        "unassignRole",
        UNASSIGN_ROLE,
        lambda w: {"user": w.other, "role": w.held},
        P.ROLE_MANAGE,
        _user_roles("Member"),
    ),
    Operation(
        "assignRole(owner)",
        ASSIGN_ROLE,
        lambda w: {"user": w.boss, "role": w.custom},
        P.ROLE_MANAGE,
        _user_roles("Owner", "Custom", "Held", of=lambda w: w.boss),
        acts_on="owner",
    ),
    Operation(
        "unassignRole(owner)",
        UNASSIGN_ROLE,
        lambda w: {"user": w.boss, "role": w.held},
        P.ROLE_MANAGE,
        _user_roles("Owner", of=lambda w: w.boss),
        acts_on="owner",
    ),
    # Tenant settings.
    Operation(
        "setMfaRequired",
        SET_MFA_REQUIRED,
        _none,
        P.TENANT_SETTINGS,
        _ok("tenant", lambda w: {"mfaRequired": True}),
    ),
    Operation(
        "updateTenantSettings",
        UPDATE_TENANT_SETTINGS,
        _none,
        P.TENANT_SETTINGS,
        _ok("tenant", lambda w: {"defaultTaskStatus": "IN_PROGRESS"}),
    ),
    Operation(
        "addIdentityProvider",
        ADD_IDENTITY_PROVIDER,
        _none,
        P.TENANT_SETTINGS,
        _ok("identityProvider", lambda w: {"issuer": "https://idp.example/", "enabled": True}),
    ),
    Operation(
        "updateIdentityProvider",
        UPDATE_IDENTITY_PROVIDER,
        _unknown_provider,
        P.TENANT_SETTINGS,
        _not_found("identityProvider"),
    ),
    Operation(
        "removeIdentityProvider",
        REMOVE_IDENTITY_PROVIDER,
        _unknown_provider,
        P.TENANT_SETTINGS,
        _not_found("deletedId"),
    ),
]


def guarded_fields() -> dict[str, Permission]:
    """Root Query and Mutation fields with their `@requiresPermission`, read from the SDL."""
    schema = graphql.build_schema(build_schema().as_str())
    guarded: dict[str, Permission] = {}
    for root in (schema.query_type, schema.mutation_type):
        assert root is not None
        for name, field in root.fields.items():
            assert field.ast_node is not None
            for directive in field.ast_node.directives:
                if directive.name.value == "requiresPermission":
                    [argument] = directive.arguments
                    assert isinstance(argument.value, graphql.StringValueNode)
                    assert name not in guarded, f"{name} is both a query and a mutation"
                    guarded[name] = Permission(argument.value.value)
    return guarded


GUARDED = guarded_fields()
# The root fields that act on an existing user of the tenant (their status, roles, pending
# invitation). Nothing else changes another user: credentials, MFA and sessions are only
# ever one's own (revokeSession of another user's session is NOT_FOUND).
ACTS_ON_USERS = {"disableUser", "enableUser", "assignRole", "unassignRole", "inviteUser"}
CASES = [
    pytest.param(role, op, id=f"{role or 'no-role'}-{op.name}")
    for role in ROLES
    for op in OPERATIONS
]


def held_by(role: str | None) -> frozenset[Permission]:
    return effective(SYSTEM_ROLES[role]) if role is not None else frozenset()


def allowed(role: str | None, op: Operation) -> bool:
    """Whether `role` may run `op` on the world's objects (the rule, stated once for tests)."""
    held = held_by(role)
    if op.needs not in held:
        return False
    if op.acts_on is None:
        return True
    return held_by(op.acts_on) <= held and (op.acts_on != "owner" or role == "owner")


def test_the_matrix_covers_every_guarded_root_field() -> None:
    covered = {op.field for op in OPERATIONS}
    assert set(GUARDED) <= covered, f"add to OPERATIONS: {sorted(set(GUARDED) - covered)}"
    assert len({op.name for op in OPERATIONS}) == len(OPERATIONS)
    for op in OPERATIONS:
        # What an operation needs for its objects is at least what its field needs.
        if op.field in GUARDED:
            assert GUARDED[op.field] in effective({op.needs}), op.name
    # The table exercises both outcomes of every operation.
    for op in OPERATIONS:
        outcomes = {allowed(role, op) for role in ROLES}
        assert outcomes == {True, False}, op.name
    # Every operation that acts on a user is also tried on an owner.
    on_owners = {op.field for op in OPERATIONS if op.acts_on == "owner"}
    assert on_owners == ACTS_ON_USERS, sorted(on_owners ^ ACTS_ON_USERS)


@pytest.mark.parametrize(("role", "op"), CASES)
async def test_role_against_operation(
    gql: GraphQL, database: Database, tokens: TokenService, role: str | None, op: Operation
) -> None:
    # given
    world = await build_world(database, tokens, role)
    before = await fingerprint(database, world.tenant_id)
    held = held_by(role)

    # when
    body = await gql(op.document, op.variables(world), token=world.token)

    # then
    after = await fingerprint(database, world.tenant_id)
    changed = sorted(t for t in before if before[t] != after[t])
    if allowed(role, op):
        assert without_cost(body) == {"data": {op.field: op.expect(world)}}
        if op.is_mutation and not body["data"][op.field]["errors"]:
            assert changed, "the mutation succeeded but changed nothing"
        else:
            assert changed == []
        return
    assert changed == [], "a refused operation changed the tenant's rows"
    field_permission = GUARDED.get(op.field)
    if field_permission is None:
        # node(id:): an object the caller may not read is absent, like another tenant's.
        assert without_cost(body) == {"data": {op.field: None}}
    elif field_permission in held:
        # The field's permission is held, but not for this object: an `…:own` permission and
        # someone else's object, or a user holding a role the actor may not act on.
        assert "errors" not in body, body
        payload = body["data"][op.field]
        assert payload["errors"] == [{"code": "FORBIDDEN"}]
        assert all(v is None for k, v in payload.items() if k != "errors"), payload
    else:
        [error] = body["errors"]
        assert error["extensions"]["code"] == "FORBIDDEN", error
        assert error["path"] == [op.field]
        assert body["data"] in (None, {op.field: None})
