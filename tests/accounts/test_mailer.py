"""Mailers: the development outbox follows the action's transaction; SMTP really delivers."""

from __future__ import annotations

import email
import email.policy
import logging
from pathlib import Path
from typing import Any

import pytest

from app.accounts.mailer import DevelopmentMailer, SmtpConfig, SmtpMailer, mailer_for
from app.accounts.models import MailMessage
from app.core.db import Database
from app.core.settings import AuthSettings, Settings
from tests.accounts.support import Inbox
from tests.factories import seed_tenant

MESSAGE = MailMessage(
    kind="invitation",
    recipient="ada@example.com",
    subject="You are invited to Ünïcode Org",
    body="Follow this link:\nhttp://127.0.0.1:8000/accept-invitation?token=inv.x.y\n",
)


async def outbox(database: Database, tenant_id: Any) -> list[dict[str, Any]]:
    async with database.transaction(tenant_id, readonly=True) as session:
        rows = await session.fetch(
            "SELECT kind, recipient, subject, body FROM outbox ORDER BY created_at, id"
        )
    return [dict(r) for r in rows]


async def test_development_mailer_writes_the_outbox_in_the_actions_transaction(
    database: Database,
) -> None:
    tenant = await seed_tenant(database)

    async with database.transaction(tenant) as session:
        await DevelopmentMailer().send(session, MESSAGE)

    assert await outbox(database, tenant) == [
        {
            "kind": "invitation",
            "recipient": "ada@example.com",
            "subject": MESSAGE.subject,
            "body": MESSAGE.body,
        }
    ]


async def test_an_aborted_action_sends_nothing(database: Database) -> None:
    tenant = await seed_tenant(database)

    async def invite_then_fail() -> None:
        async with database.transaction(tenant) as session:
            await DevelopmentMailer().send(session, MESSAGE)
            raise RuntimeError("action failed")

    with pytest.raises(RuntimeError, match="action failed"):
        await invite_then_fail()

    assert await outbox(database, tenant) == []


async def test_smtp_mailer_delivers_to_a_real_smtp_server(
    smtp_server: tuple[Inbox, int], database: Database
) -> None:
    inbox, port = smtp_server
    settings = Settings(
        auth=AuthSettings(
            smtp_url=f"smtp://127.0.0.1:{port}", mail_from="Tenantry <no-reply@tenantry.test>"
        )
    )
    mailer = mailer_for(settings)
    assert isinstance(mailer, SmtpMailer)
    tenant = await seed_tenant(database)

    async with database.transaction(tenant) as session:
        await mailer.send(session, MESSAGE)

    assert len(inbox.received) == 1
    sender, recipients, content = inbox.received[0]
    assert sender == "no-reply@tenantry.test"
    assert recipients == ["ada@example.com"]
    parsed = email.message_from_bytes(content, policy=email.policy.default)
    assert parsed["Subject"] == MESSAGE.subject
    assert parsed["To"] == "ada@example.com"
    assert parsed["X-Tenantry-Kind"] == "invitation"
    body = parsed.get_body(("plain",))
    assert body is not None
    assert body.get_content().replace("\r\n", "\n") == MESSAGE.body
    # SMTP mail is not kept in the outbox.
    assert await outbox(database, tenant) == []


async def test_smtp_mailer_refuses_header_injection(smtp_server: tuple[Inbox, int]) -> None:
    inbox, port = smtp_server
    mailer = SmtpMailer(SmtpConfig.from_url(f"smtp://127.0.0.1:{port}"), sender="a@b.test")
    evil = MailMessage("invitation", "ada@example.com", "Hi\r\nBcc: eve@evil.test", "body")

    with pytest.raises(ValueError, match=r"linefeed|carriage"):
        await mailer.send(None, evil)  # type: ignore[arg-type]

    assert inbox.received == []


def test_development_mailer_without_an_smtp_url(tmp_path: Path) -> None:
    development = mailer_for(Settings(data_dir=tmp_path))
    production = mailer_for(Settings(environment="production", data_dir=tmp_path))

    assert isinstance(development, DevelopmentMailer)
    assert development.outbox_dir == tmp_path / "outbox"
    assert isinstance(production, DevelopmentMailer)
    assert production.outbox_dir is None


async def test_no_log_line_ever_holds_the_link(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = await seed_tenant(database)
    caplog.set_level(logging.DEBUG, logger="tenantry.mail")

    async with database.transaction(tenant) as session:
        await mailer_for(Settings(environment="production")).send(session, MESSAGE)
        await mailer_for(Settings(data_dir=tmp_path)).send(session, MESSAGE)

    production, development = (r.getMessage() for r in caplog.records)
    for line in (production, development):
        assert "inv.x.y" not in line
        assert "ada@example.com kept in the outbox" in line
    # In development the message waits in a file only its owner can read.
    [written] = (tmp_path / "outbox").iterdir()
    assert str(written) in development
    assert written.read_text() == (
        f"To: ada@example.com\nSubject: {MESSAGE.subject}\n\n{MESSAGE.body}"
    )
    assert written.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "outbox").stat().st_mode & 0o777 == 0o700


async def test_a_rolled_back_action_writes_no_mail_file(database: Database, tmp_path: Path) -> None:
    tenant = await seed_tenant(database)

    async def mail_then_fail() -> None:
        async with database.transaction(tenant) as session:
            await mailer_for(Settings(data_dir=tmp_path)).send(session, MESSAGE)
            raise RuntimeError("action failed")

    with pytest.raises(RuntimeError, match="action failed"):
        await mail_then_fail()

    assert not (tmp_path / "outbox").exists()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.test", SmtpConfig("mail.test", 25, "plain", None, None)),
        (
            "smtp://u%40x:p%2Fw@mail.test:2525?starttls=true",
            SmtpConfig("mail.test", 2525, "starttls", "u@x", "p/w"),
        ),
        ("smtp://mail.test?starttls=1", SmtpConfig("mail.test", 587, "starttls", None, None)),
        ("smtps://u:p@mail.test", SmtpConfig("mail.test", 465, "tls", "u", "p")),
    ],
)
def test_smtp_urls(url: str, expected: SmtpConfig) -> None:
    assert SmtpConfig.from_url(url) == expected


@pytest.mark.parametrize("url", ["http://mail.test", "smtp://", "mail.test:25"])
def test_bad_smtp_urls(url: str) -> None:
    with pytest.raises(ValueError, match="SMTP URL"):
        SmtpConfig.from_url(url)
