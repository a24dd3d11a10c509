"""impersonateUser: break-glass impersonation of a tenant user by a platform administrator.

The token acts as the user (their tenant, their permissions) and names the administrator
in `act`; it is short, non-refreshable and dies with the administrator's platform session
or permission; every operation under it is in the tenant's audit log with both identities;
credentials, sessions, membership and security settings are refused under it (every such
field is found by walking the schema).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import graphql
import pytest
from joserfc import jwt

from app.api.relay import encode_global_id
from app.auth import sessions
from app.core.db import Database
from app.core.errors import ImpersonationRestricted
from app.core.request_meta import RequestMeta
from app.core.security import Impersonator, TokenService
from app.core.settings import MAX_IMPERSONATION_TTL_SECONDS, Settings
from app.core.store import Store
from app.platform import service as platform
from app.platform.models import AdminStatus
from app.schema import sdl
from app.tenants.models import TenantStatus
from tests.accounts.support import audit
from tests.app_fixtures import GRAPHQL_RESPONSE, PASSWORD, GraphQL, Org, new_org
from tests.factories import fingerprint, platform_fingerprint
from tests.platform.support import AUDIT, Admin, codes, new_admin
from tests.platform.support import sign_in as platform_sign_in
from tests.platform.test_separation import PLATFORM_FIELDS, document

IMPERSONATE = """
mutation ($input: ImpersonateUserInput!) {
  impersonateUser(input: $input) {
    accessToken tokenType expiresAt adminId
    user { id email displayName }
    tenant { slug }
    errors { code message field }
  }
}"""
VIEWER = "{ viewer { id email } }"
PROJECTS = "{ projects(first: 50) { nodes { name } } }"
CREATE_PROJECT = """
mutation ($name: String!) {
  createProject(input: {name: $name}) { project { id name } errors { code } }
}"""
TENANT_AUDIT = """
query ($action: String) {
  auditLog(first: 50, action: $action) {
    nodes { action outcome actorKind actorUserId impersonatorAdminId targetId metadata }
  }
}"""
SIGN_OUT = "mutation { signOut { revokedSessions errors { code } } }"

# Refused under impersonation: credentials, sessions, membership, roles, identity providers
# and the tenant's security settings, and every way to a session of the user's own. Reviewed
# by hand; the SDL must mark exactly these (test below).
SENSITIVE = {
    "signIn",
    "signUp",
    "refreshToken",
    "signOutEverywhere",
    "revokeSession",
    "verifyMfa",
    "startTotpEnrollment",
    "confirmTotpEnrollment",
    "regenerateRecoveryCodes",
    "disableMfa",
    "inviteUser",
    "acceptInvitation",
    "requestPasswordReset",
    "completePasswordReset",
    "changePassword",
    "changeEmail",
    "verifyEmail",
    "addIdentityProvider",
    "updateIdentityProvider",
    "removeIdentityProvider",
    "exchangeToken",
    "disableUser",
    "enableUser",
    "assignRole",
    "unassignRole",
    "createRole",
    "updateRole",
    "deleteRole",
    "updateTenantSettings",
    "setMfaRequired",
    "platformSignIn",
}
# The user's ordinary work, allowed under impersonation (with the user's own permissions).
# `signOut` ends the impersonation session itself, nothing of the user's.
ORDINARY = {
    "signOut",
    "createProject",
    "updateProject",
    "archiveProject",
    "unarchiveProject",
    "deleteProject",
    "createTask",
    "updateTask",
    "assignTask",
    "moveTask",
    "deleteTask",
    "addComment",
    "editComment",
    "deleteComment",
}
SCHEMA = graphql.build_schema(sdl())


def tid(org: Org) -> str:
    return encode_global_id("Tenant", org.id)


def uid(user_id: UUID) -> str:
    return encode_global_id("User", user_id)


@pytest.fixture
async def operator(gql: GraphQL, database: Database, app_settings: Settings) -> tuple[Admin, str]:
    admin = await new_admin(
        database, app_settings, permissions=["tenant:impersonate", "platform:audit"]
    )
    return admin, await platform_sign_in(gql, admin)


@pytest.fixture
async def customer(database: Database, tokens: TokenService) -> Org:
    """Two admins (not owners): members[1] is impersonated, members[0] reads the audit log."""
    return await new_org(database, tokens, members=2, password=PASSWORD)


async def impersonate(gql: GraphQL, token: str, **values: Any) -> dict[str, Any]:
    values.setdefault("reason", "ticket #4711: cannot see the Q3 project")
    body = await gql.data(IMPERSONATE, {"input": values}, token=token)
    payload: dict[str, Any] = body["impersonateUser"]
    return payload


async def started(gql: GraphQL, operator: tuple[Admin, str], org: Org, index: int = 1) -> str:
    payload = await impersonate(
        gql, operator[1], tenantId=tid(org), userId=uid(org.members[index].id)
    )
    assert payload["errors"] == [], payload
    token: str = payload["accessToken"]
    return token


async def platform_session_of(tokens: TokenService, platform_token: str) -> UUID:
    return tokens.verify_platform_token(platform_token).session_id


# --- success ---------------------------------------------------------------------------


async def test_the_token_acts_as_the_user_in_their_tenant_only(
    gql: GraphQL,
    tokens: TokenService,
    operator: tuple[Admin, str],
    customer: Org,
    other_org: Org,
) -> None:
    member = customer.members[1]
    await gql.data(CREATE_PROJECT, {"name": "Customer Q3"}, token=customer.token)
    await gql.data(CREATE_PROJECT, {"name": "Other secret"}, token=other_org.token)
    before = time.time()

    payload = await impersonate(gql, operator[1], tenantId=tid(customer), userId=uid(member.id))

    assert payload["errors"] == []
    assert payload["user"] == {"id": uid(member.id), "email": member.email, "displayName": "User 1"}
    assert payload["tenant"] == {"slug": customer.slug}
    assert payload["adminId"] == str(operator[0].id)
    assert payload["tokenType"] == "Bearer"
    expires = datetime.fromisoformat(payload["expiresAt"]).timestamp()
    assert before < expires <= time.time() + MAX_IMPERSONATION_TTL_SECONDS + 1
    token = payload["accessToken"]
    claims = tokens.verify_access_token(token)
    assert (claims.user_id, claims.tenant_id) == (member.id, customer.id)
    platform_session = await platform_session_of(tokens, operator[1])
    assert claims.impersonator == Impersonator(operator[0].id, platform_session)
    raw = jwt.decode(token, tokens._keys.key_set).claims
    assert raw["act"] == {"sub": str(operator[0].id), "sid": str(platform_session)}
    assert raw["exp"] == int(expires)

    viewer = (await gql.data(VIEWER, token=token))["viewer"]
    assert viewer == {"id": uid(member.id), "email": member.email}
    names = [p["name"] for p in (await gql.data(PROJECTS, token=token))["projects"]["nodes"]]
    assert names == ["Customer Q3"]
    created = await gql.data(CREATE_PROJECT, {"name": "Made by support"}, token=token)
    assert created["createProject"]["errors"] == []


async def test_the_user_can_be_named_by_email(
    gql: GraphQL, operator: tuple[Admin, str], customer: Org
) -> None:
    member = customer.members[1]

    payload = await impersonate(
        gql, operator[1], tenantId=tid(customer), email=member.email.upper()
    )

    assert payload["errors"] == []
    assert payload["user"]["email"] == member.email


async def test_the_token_never_outlives_the_platform_session(
    gql: GraphQL,
    database: Database,
    tokens: TokenService,
    operator: tuple[Admin, str],
    customer: Org,
) -> None:
    session_id = await platform_session_of(tokens, operator[1])
    async with database.transaction(None, platform=True) as session:
        ends = await session.fetchval(
            "UPDATE platform_sessions SET expires_at = now() + interval '120 seconds'"
            " WHERE id = $1 RETURNING expires_at",
            session_id,
        )

    payload = await impersonate(
        gql, operator[1], tenantId=tid(customer), userId=uid(customer.members[1].id)
    )

    assert payload["errors"] == []
    assert datetime.fromisoformat(payload["expiresAt"]) <= ends


# --- bad input and wrong targets -------------------------------------------------------


def error(payload: dict[str, Any]) -> tuple[str, str | None]:
    [found] = payload["errors"]
    assert payload["accessToken"] is None
    return found["code"], found["field"]


async def test_bad_input_and_wrong_targets_issue_nothing(
    gql: GraphQL,
    database: Database,
    tokens: TokenService,
    operator: tuple[Admin, str],
    customer: Org,
    other_org: Org,
) -> None:
    disabled = customer.members[0]
    async with database.transaction(customer.id) as session:
        await session.execute("UPDATE users SET status = 'disabled' WHERE id = $1", disabled.id)
    owners = await new_org(database, tokens, role="owner")
    target = uid(customer.members[1].id)
    token = operator[1]
    tenant_before = await fingerprint(database, customer.id)

    async def attempt(**values: Any) -> tuple[str, str | None]:
        return error(await impersonate(gql, token, **values))

    for reason in ("", "   ", "x" * 501):
        assert await attempt(tenantId=tid(customer), userId=target, reason=reason) == (
            "INVALID",
            "reason",
        )
    both = await attempt(tenantId=tid(customer), userId=target, email="a@b.example")
    assert both == ("INVALID", "userId")
    assert await attempt(tenantId=tid(customer)) == ("INVALID", "userId")
    assert await attempt(tenantId="eA", userId=target) == ("INVALID", "tenantId")
    assert await attempt(tenantId=tid(customer), userId="eA") == ("INVALID", "userId")
    unknown_tenant = encode_global_id("Tenant", uuid4())
    assert await attempt(tenantId=unknown_tenant, userId=target) == ("NOT_FOUND", "tenantId")
    # Unknown, disabled, and another tenant's user: one answer, one message.
    messages = set()
    for user in (uuid4(), disabled.id, other_org.members[0].id):
        payload = await impersonate(gql, token, tenantId=tid(customer), userId=uid(user))
        assert error(payload) == ("NOT_FOUND", "userId")
        messages.add(payload["errors"][0]["message"])
    other_email = other_org.members[0].email
    assert await attempt(tenantId=tid(customer), email=other_email) == ("NOT_FOUND", "email")
    assert len(messages) == 1
    assert other_org.slug not in messages.pop()
    owner = await attempt(tenantId=tid(owners), userId=uid(owners.members[0].id))
    assert owner == ("FORBIDDEN", "userId")
    # A missing reason does not even validate.
    inline = (
        f'mutation {{ impersonateUser(input: {{tenantId: "{tid(customer)}", userId: "{target}"}})'
        " { accessToken } }"
    )
    body = await gql(inline, token=token)
    assert body.get("data") is None
    assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"]

    assert await fingerprint(database, customer.id) == tenant_before
    assert await audit(database, owners.id, "impersonation") == []


async def test_a_suspended_or_deleted_tenant_cannot_be_entered(
    gql: GraphQL,
    database: Database,
    operator: tuple[Admin, str],
    customer: Org,
) -> None:
    target = uid(customer.members[1].id)
    for status in (TenantStatus.SUSPENDED, TenantStatus.DELETED):
        async with database.transaction(customer.id) as session:
            await session.execute(
                "UPDATE tenants SET status = $1,"
                " deleted_at = CASE WHEN $1 = 'deleted' THEN now() END",
                status.value,
            )

        payload = await impersonate(gql, operator[1], tenantId=tid(customer), userId=target)

        assert error(payload) == ("TENANT_SUSPENDED", "tenantId")
    assert await audit(database, customer.id, "impersonation") == []


async def test_only_platform_administrators_with_the_permission_may_impersonate(
    gql: GraphQL,
    database: Database,
    app_settings: Settings,
    tokens: TokenService,
    customer: Org,
) -> None:
    owners = await new_org(database, tokens, role="owner")
    lacking = await new_admin(
        database, app_settings, permissions=["tenant:read", "tenant:suspend", "platform:audit"]
    )
    variables = {
        "input": {"tenantId": tid(customer), "userId": uid(customer.members[1].id), "reason": "x"}
    }
    tenant_before = await fingerprint(database, customer.id)

    assert codes(await gql(IMPERSONATE, variables, token=owners.token)) == ["FORBIDDEN"]
    lacking_token = await platform_sign_in(gql, lacking)
    assert codes(await gql(IMPERSONATE, variables, token=lacking_token)) == ["FORBIDDEN"]
    assert codes(await gql(IMPERSONATE, variables)) == ["UNAUTHENTICATED"]

    assert await fingerprint(database, customer.id) == tenant_before


# --- audit -----------------------------------------------------------------------------


async def test_both_logs_record_the_start_and_every_operation_names_both(
    gql: GraphQL,
    database: Database,
    operator: tuple[Admin, str],
    customer: Org,
) -> None:
    admin, platform_token = operator
    member = customer.members[1]
    reason = "ticket #4711: cannot see the Q3 project"

    token = await started(gql, operator, customer)
    await gql.data("query Mine { viewer { email } }", token=token)
    await gql.data(CREATE_PROJECT, {"name": "By support"}, token=token)
    refused = await gql("mutation { signOutEverywhere { revokedSessions } }", token=token)
    assert codes(refused) == ["IMPERSONATION_RESTRICTED"]
    await gql.data(SIGN_OUT, token=token)

    platform_log = await gql.data(AUDIT, {"action": "impersonation.started"}, token=platform_token)
    # The platform's log is shared by every test: this tenant's entry.
    [entry] = [
        e
        for e in platform_log["platformAuditLog"]["nodes"]
        if e["metadata"]["tenant_id"] == str(customer.id)
    ]
    assert entry["actorAdminId"] == str(admin.id)
    assert entry["metadata"]["reason"] == reason
    assert entry["metadata"]["user_id"] == str(member.id)
    assert entry["metadata"]["tenant_id"] == str(customer.id)

    # The tenant's own admins read it all in their log.
    log = await gql.data(TENANT_AUDIT, token=customer.token)
    entries = [e for e in log["auditLog"]["nodes"] if e["impersonatorAdminId"] is not None]
    actions = [e["action"] for e in reversed(entries)]
    assert actions == [
        "impersonation.started",
        "impersonation.operation",
        "impersonation.operation",
        "impersonation.operation",
        "impersonation.operation",
        "session.revoked",
    ]
    assert {e["impersonatorAdminId"] for e in entries} == {str(admin.id)}
    start = entries[-1]
    assert start["actorKind"] == "PLATFORM"
    assert start["metadata"]["reason"] == reason
    assert start["metadata"]["admin_email"] == admin.email
    operations = [e for e in reversed(entries) if e["action"] == "impersonation.operation"]
    assert {e["actorUserId"] for e in operations} == {str(member.id)}
    assert [(e["metadata"]["operation"], e["metadata"]["fields"]) for e in operations] == [
        ("query", ["viewer"]),
        ("mutation", ["createProject"]),
        ("mutation", ["signOutEverywhere"]),
        ("mutation", ["signOut"]),
    ]
    assert operations[0]["targetId"] == "Mine"
    # The user's own operations name no administrator.
    own = await audit(database, customer.id, "impersonation")
    assert len(own) == 5


async def test_a_mismatch_under_the_token_names_the_administrator(
    gql: GraphQL,
    database: Database,
    operator: tuple[Admin, str],
    customer: Org,
    other_org: Org,
) -> None:
    token = await started(gql, operator, customer)

    response = await gql.http.post(
        "/graphql",
        json={"query": "{ viewer { id } }"},
        headers={"authorization": f"Bearer {token}", "x-tenant": other_org.slug},
    )

    assert response.status_code == 403
    async with database.transaction(customer.id, readonly=True) as session:
        row = await session.fetchrow(
            "SELECT actor_id, impersonator_id FROM audit_log WHERE action = 'tenant.mismatch'"
        )
    assert row is not None
    assert (row["actor_id"], row["impersonator_id"]) == (customer.members[1].id, operator[0].id)


# --- refused under impersonation -------------------------------------------------------


def marked() -> set[str]:
    assert SCHEMA.mutation_type is not None
    found = set()
    for root in (SCHEMA.query_type, SCHEMA.mutation_type):
        assert root is not None
        for name, field in root.fields.items():
            assert field.ast_node is not None
            if "refusedWhileImpersonating" in {d.name.value for d in field.ast_node.directives}:
                found.add(name)
    return found


def test_the_schema_marks_exactly_the_sensitive_fields_and_every_mutation_is_decided() -> None:
    assert SCHEMA.mutation_type is not None
    platform = {name for _, name in PLATFORM_FIELDS}
    undecided = set(SCHEMA.mutation_type.fields) - SENSITIVE - ORDINARY - platform

    assert marked() == SENSITIVE
    assert undecided == set(), "decide: add to SENSITIVE (and mark the field) or ORDINARY"


async def test_every_sensitive_and_platform_field_is_refused_under_impersonation(
    gql: GraphQL,
    database: Database,
    operator: tuple[Admin, str],
    customer: Org,
) -> None:
    token = await started(gql, operator, customer)

    def content(prints: dict[str, str]) -> dict[str, str]:
        # The audit log grows by one entry per operation; nothing else may change.
        return {t: d for t, d in prints.items() if t != "public.audit_log"}

    tenant_before = content(await fingerprint(database, customer.id))
    platform_before = await platform_fingerprint(database)

    for name in sorted(SENSITIVE):
        text, variables = document("Mutation", name)
        body = await gql(text, variables, token=token)
        assert body.get("data") in (None, {name: None}), (name, body)
        assert codes(body) == ["IMPERSONATION_RESTRICTED"], (name, body)
    for root, name in PLATFORM_FIELDS:
        text, variables = document(root, name)
        assert codes(await gql(text, variables, token=token)) == ["FORBIDDEN"], name

    assert content(await fingerprint(database, customer.id)) == tenant_before
    assert await platform_fingerprint(database) == platform_before
    # Each attempt is on record, refused ones included.
    recorded = await audit(database, customer.id, "impersonation.operation")
    assert len(recorded) == len(SENSITIVE) + len(PLATFORM_FIELDS)
    # The ordinary work of the user still works under the same token.
    created = await gql.data(CREATE_PROJECT, {"name": "Still fine"}, token=token)
    assert created["createProject"]["errors"] == []


async def test_services_refuse_credential_changes_in_an_impersonated_transaction(
    database: Database,
    tokens: TokenService,
    app_settings: Settings,
    customer: Org,
) -> None:
    # The second line behind the field directive: whatever field reaches these services.
    user = customer.members[1].id
    # The sessions the members' tokens belong to: none is added, none ended.
    async with database.transaction(customer.id, readonly=True) as session:
        before = await session.fetch("SELECT id, revoked_at FROM auth_sessions ORDER BY id")
    async with database.transaction(customer.id, impersonator_id=uuid4()) as session:
        with pytest.raises(ImpersonationRestricted):
            await sessions.start_session(
                session, tokens, app_settings, RequestMeta.none(), user_id=user, aal=1, amr=()
            )
        with pytest.raises(ImpersonationRestricted):
            await sessions.revoke_user_sessions(
                session,
                tokens,
                Store.from_url(None),
                RequestMeta.none(),
                user_id=user,
                actor_id=user,
                reason="x",
            )
    async with database.transaction(customer.id, readonly=True) as session:
        after = await session.fetch("SELECT id, revoked_at FROM auth_sessions ORDER BY id")
    assert after == before


# --- not refreshable, and dead with the administrator ----------------------------------


async def test_the_token_cannot_be_refreshed(
    gql: GraphQL,
    database: Database,
    tokens: TokenService,
    operator: tuple[Admin, str],
    customer: Org,
) -> None:
    payload_type = SCHEMA.get_type("ImpersonateUserPayload")
    assert isinstance(payload_type, graphql.GraphQLObjectType)
    assert not {f for f in payload_type.fields if "refresh" in f.lower()}

    token = await started(gql, operator, customer)
    session_id = tokens.verify_access_token(token).session_id

    async with database.transaction(customer.id, readonly=True) as session:
        held = await session.fetchval(
            "SELECT count(*) FROM refresh_tokens WHERE session_id = $1", session_id
        )
    assert held == 0
    body = await gql(
        "mutation ($t: String!) { refreshToken(refreshToken: $t) { accessToken } }",
        {"t": token},
        token=token,
    )
    assert codes(body) == ["IMPERSONATION_RESTRICTED"]


@pytest.mark.parametrize("ending", ["sign_out", "disable", "permission", "user_disabled"])
async def test_the_token_dies_with_the_administrator_at_the_next_request(
    gql: GraphQL,
    database: Database,
    operator: tuple[Admin, str],
    customer: Org,
    ending: str,
) -> None:
    admin, platform_token = operator
    token = await started(gql, operator, customer)
    assert (await gql.data(VIEWER, token=token))["viewer"] is not None
    meta = RequestMeta.none()

    if ending == "sign_out":
        assert (await gql.data("mutation { platformSignOut { signedOut } }", token=platform_token))[
            "platformSignOut"
        ]["signedOut"]
    elif ending == "disable":
        await platform.set_status(database, meta, email=admin.email, status=AdminStatus.DISABLED)
    elif ending == "permission":
        await platform.set_permissions(
            database, meta, email=admin.email, permissions=["tenant:read"]
        )
    else:
        async with database.transaction(customer.id) as session:
            await session.execute(
                "UPDATE users SET status = 'disabled' WHERE id = $1", customer.members[1].id
            )

    response = await gql.post(VIEWER, token=token, headers=GRAPHQL_RESPONSE)
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # The tenant's other users are unaffected.
    assert (await gql.data(VIEWER, token=customer.token))["viewer"] is not None


async def test_signing_out_ends_only_the_impersonation(
    gql: GraphQL, tokens: TokenService, operator: tuple[Admin, str], customer: Org
) -> None:
    token = await started(gql, operator, customer)

    assert (await gql.data(SIGN_OUT, token=token))["signOut"] == {
        "revokedSessions": 1,
        "errors": [],
    }

    assert (await gql.post(VIEWER, token=token, headers=GRAPHQL_RESPONSE)).status_code == 401
    # The administrator's own session carries on, and so can a new impersonation.
    again = await started(gql, operator, customer)
    assert (await gql.data(VIEWER, token=again))["viewer"] is not None
