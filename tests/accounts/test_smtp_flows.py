"""Account flows on a server configured for SMTP: real delivery, and a mail server that is down."""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace

import httpx
import pytest

from app.core.db import Database
from app.core.security import TokenService
from app.core.settings import Settings
from tests.accounts.support import (
    ACCEPT,
    INVITE,
    REQUEST_RESET,
    Inbox,
    audit,
    call,
    link_token,
    outbox,
    set_role,
    user_row,
)
from tests.app_fixtures import PASSWORD, GraphQL, Org, free_port, new_org, start_server, stop_server

ServerFactory = Callable[[str], AbstractAsyncContextManager[GraphQL]]


@pytest.fixture
def smtp_app(app_settings: Settings, database: Database) -> ServerFactory:
    """Starts a server of its own whose mail goes to the given SMTP URL."""

    @asynccontextmanager
    async def started(smtp_url: str) -> AsyncIterator[GraphQL]:
        settings = replace(app_settings, auth=replace(app_settings.auth, smtp_url=smtp_url))
        server, url = await start_server(settings, database)
        try:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                yield GraphQL(client)
        finally:
            await stop_server(server)

    return started


@pytest.fixture
async def owner_org(database: Database, tokens: TokenService) -> Org:
    org = await new_org(database, tokens, members=1, password=PASSWORD)
    await set_role(database, org.id, org.members[0].id, "owner")
    return org


async def test_an_invitation_is_delivered_by_smtp_and_accepted(
    smtp_app: ServerFactory,
    smtp_server: tuple[Inbox, int],
    owner_org: Org,
    database: Database,
) -> None:
    inbox, port = smtp_server

    async with smtp_app(f"smtp://127.0.0.1:{port}") as gql:
        invited = await call(
            gql, INVITE, "inviteUser", token=owner_org.token, input={"email": "zoe@example.com"}
        )
        assert invited["errors"] == []
        [(_, recipients, content)] = inbox.received
        mail = email.message_from_bytes(content, policy=email.policy.default)
        body = mail.get_body(("plain",))
        assert body is not None
        token = link_token(body.get_content(), "accept-invitation")
        accepted = await call(
            gql, ACCEPT, "acceptInvitation", input={"token": token, "password": "zoe's passphrase"}
        )

    assert recipients == ["zoe@example.com"]
    assert mail["Subject"] == f"You are invited to Org {owner_org.slug}"
    assert accepted["errors"] == []
    assert accepted["accessToken"]
    # SMTP mail is not kept in the outbox.
    assert await outbox(database, owner_org.id) == []


async def test_with_the_mail_server_down(
    smtp_app: ServerFactory, owner_org: Org, database: Database
) -> None:
    nothing_listens = free_port()
    member = owner_org.members[0]

    async with smtp_app(f"smtp://127.0.0.1:{nothing_listens}") as gql:
        invited = await call(
            gql, INVITE, "inviteUser", token=owner_org.token, input={"email": "amy@example.com"}
        )
        resets = [
            await call(
                gql,
                REQUEST_RESET,
                "requestPasswordReset",
                input={"tenant": owner_org.slug, "email": e},
            )
            for e in (member.email, "nobody@example.com")
        ]

    # The invitation is refused and undone as a whole...
    assert invited["user"] is None
    assert [e["code"] for e in invited["errors"]] == ["UNAVAILABLE"]
    assert await user_row(database, owner_org.id, "amy@example.com") is None
    assert await audit(database, owner_org.id, "invitation.") == []
    # ...while a reset request answers as always, so it reveals no account.
    assert resets == [{"ok": True, "errors": []}] * 2
