"""A platform session is checked on every operation: signing out, disabling the
administrator, expiry and permission changes apply to the very next request."""

from __future__ import annotations

from app.core.db import Database
from app.core.request_meta import RequestMeta
from app.core.settings import Settings
from app.platform.models import AdminStatus
from app.platform.service import set_permissions, set_status
from tests.app_fixtures import GraphQL
from tests.platform.support import AUDIT, SIGN_OUT, VIEWER, codes, new_admin, sign_in


async def test_signing_out_ends_the_token_at_once(
    gql: GraphQL, database: Database, app_settings: Settings
) -> None:
    admin = await new_admin(database, app_settings)
    token = await sign_in(gql, admin)
    other = await sign_in(gql, admin)

    signed_out = await gql.data(SIGN_OUT, token=token)

    assert signed_out == {"platformSignOut": {"signedOut": True, "errors": []}}
    assert codes(await gql(VIEWER, token=token)) == ["UNAUTHENTICATED"]
    # Only that session: the administrator's other sign-in goes on.
    assert (await gql.data(VIEWER, token=other))["platformViewer"]["email"] == admin.email
    entries = (await gql.data(AUDIT, {"action": "platform.sign_out"}, token=other))[
        "platformAuditLog"
    ]["nodes"]
    assert [e["actorAdminId"] for e in entries].count(str(admin.id)) == 1


async def test_disabling_an_admin_ends_their_tokens_at_once(
    gql: GraphQL, database: Database, app_settings: Settings
) -> None:
    admin = await new_admin(database, app_settings)
    token = await sign_in(gql, admin)

    await set_status(database, RequestMeta.none(), email=admin.email, status=AdminStatus.DISABLED)

    assert codes(await gql(VIEWER, token=token)) == ["UNAUTHENTICATED"]
    assert codes(await gql(SIGN_OUT, token=token)) == ["UNAUTHENTICATED"]
    # Enabling again does not revive an ended session.
    await set_status(database, RequestMeta.none(), email=admin.email, status=AdminStatus.ACTIVE)
    assert codes(await gql(VIEWER, token=token)) == ["UNAUTHENTICATED"]


async def test_an_expired_session_is_refused(
    gql: GraphQL, database: Database, app_settings: Settings
) -> None:
    admin = await new_admin(database, app_settings)
    token = await sign_in(gql, admin)
    async with database.transaction(None, platform=True) as session:
        await session.execute(
            "UPDATE platform_sessions SET expires_at = now() - interval '1 second'"
            " WHERE admin_id = $1",
            admin.id,
        )

    assert codes(await gql(VIEWER, token=token)) == ["UNAUTHENTICATED"]


async def test_permissions_are_read_per_operation_not_frozen_in_the_token(
    gql: GraphQL, database: Database, app_settings: Settings
) -> None:
    admin = await new_admin(database, app_settings, permissions=["platform:audit"])
    token = await sign_in(gql, admin)
    assert "errors" not in await gql(AUDIT, token=token)

    await set_permissions(database, RequestMeta.none(), email=admin.email, permissions=[])

    body = await gql(AUDIT, token=token)
    assert codes(body) == ["FORBIDDEN"]
    assert body["data"] == {"platformAuditLog": None}
    viewer = (await gql.data(VIEWER, token=token))["platformViewer"]
    assert viewer["permissions"] == []

    await set_permissions(
        database, RequestMeta.none(), email=admin.email, permissions=["platform:audit"]
    )
    assert "errors" not in await gql(AUDIT, token=token)


async def test_the_audit_log_needs_platform_audit(
    gql: GraphQL, database: Database, app_settings: Settings
) -> None:
    admin = await new_admin(database, app_settings, permissions=["tenant:read", "tenant:create"])
    token = await sign_in(gql, admin)

    body = await gql(AUDIT, token=token)

    assert codes(body) == ["FORBIDDEN"]
    assert body["errors"][0]["message"] == "This needs the platform:audit permission"
