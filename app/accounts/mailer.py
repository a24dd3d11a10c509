"""Sending account mail: a small protocol with a development and an SMTP implementation.

`send` takes the action's database session. The development mailer writes the message to
the tenant's `outbox` table in that same transaction, so an action that rolls back has
sent nothing (and tests read what was "sent" there); in development also to a file. The
SMTP mailer delivers at once, with the standard library off the event loop; services call
it as their last step, after every write that could still fail.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from app.accounts import queries
from app.accounts.models import MailMessage
from app.core.db import Session
from app.core.errors import Unavailable
from app.core.settings import Settings

logger = logging.getLogger("tenantry.mail")


class MailDeliveryFailed(Unavailable):
    """The mail server could not be reached or refused the message."""


class Mailer(Protocol):
    async def send(self, session: Session, message: MailMessage) -> None:
        """Send `message` as part of the action running in `session`."""
        ...


class DevelopmentMailer:
    """Keeps each message in the tenant's outbox table (no mail leaves) and logs that it did.

    The body holds a live secret link, so it never reaches a log line, where more people
    than the recipient read it (docs/observability.md). In development, with `outbox_dir`,
    the whole message is also written there as a file only its owner may read, once the
    action's transaction has committed, so a developer can follow the link by hand.
    """

    def __init__(self, *, outbox_dir: Path | None = None) -> None:
        self.outbox_dir = outbox_dir

    async def send(self, session: Session, message: MailMessage) -> None:
        await queries.insert_outbox(session, message)
        if self.outbox_dir is None:
            logger.info(
                "mail %s to %s kept in the outbox",
                message.kind,
                message.recipient,
                extra={"event": "mail", "kind": message.kind},
            )
            return
        path = self.outbox_dir / f"{_stamp()}-{message.kind}-{secrets.token_hex(4)}.txt"
        logger.info(
            "mail %s to %s kept in the outbox: %s",
            message.kind,
            message.recipient,
            path,
            extra={"event": "mail", "kind": message.kind},
        )

        async def write() -> None:
            await asyncio.to_thread(_write_private, path, _as_text(message))

        # Never for an action that rolled back: it sent nothing.
        session.after_commit(write)


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def _as_text(message: MailMessage) -> str:
    return f"To: {message.recipient}\nSubject: {message.subject}\n\n{message.body}"


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(text)


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    # "plain", "starttls" (upgrade after connecting) or "tls" (smtps://, TLS from the start).
    security: str
    username: str | None
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> SmtpConfig:
        """`smtp://[user:pass@]host[:port][?starttls=true]` or `smtps://…` (implicit TLS)."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("the SMTP URL must look like smtp://host:port or smtps://host:port")
        starttls = parse_qs(parts.query).get("starttls", ["false"])[-1].lower() in ("1", "true")
        security = "tls" if parts.scheme == "smtps" else "starttls" if starttls else "plain"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if security == "tls" else 587 if starttls else 25),
            security=security,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


class SmtpMailer:
    """Delivers by SMTP with smtplib, in a worker thread so the event loop never blocks."""

    def __init__(self, config: SmtpConfig, *, sender: str, timeout_seconds: float = 10) -> None:
        self.config = config
        self.sender = sender
        self.timeout_seconds = timeout_seconds

    async def send(self, session: Session, message: MailMessage) -> None:
        mail = self._compose(message)
        try:
            await asyncio.to_thread(self._deliver, mail)
        except (smtplib.SMTPException, OSError) as exc:
            logger.error("mail %s to %s failed: %r", message.kind, message.recipient, exc)
            raise MailDeliveryFailed("The mail could not be sent; try again later") from exc
        logger.info("mail %s sent to %s", message.kind, message.recipient)

    def _compose(self, message: MailMessage) -> EmailMessage:
        mail = EmailMessage()
        # The email package refuses CR/LF in headers, so no input can inject headers.
        mail["From"] = self.sender
        mail["To"] = Address(addr_spec=message.recipient)
        mail["Subject"] = message.subject
        mail["Message-ID"] = make_msgid(domain=_domain(self.sender))
        mail["X-Tenantry-Kind"] = message.kind
        mail.set_content(message.body)
        return mail

    def _deliver(self, mail: EmailMessage) -> None:
        c = self.config
        smtp: smtplib.SMTP
        if c.security == "tls":
            smtp = smtplib.SMTP_SSL(
                c.host, c.port, timeout=self.timeout_seconds, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(c.host, c.port, timeout=self.timeout_seconds)
        with smtp:
            if c.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if c.username is not None:
                smtp.login(c.username, c.password or "")
            smtp.send_message(mail)


def _domain(sender: str) -> str:
    address = sender.rsplit("<", 1)[-1].rstrip(">").strip()
    return address.rsplit("@", 1)[-1] or "localhost"


def mailer_for(settings: Settings) -> Mailer:
    """SMTP when `TENANTRY_SMTP_URL` is set, the development outbox otherwise."""
    if settings.auth.smtp_url:
        return SmtpMailer(
            SmtpConfig.from_url(settings.auth.smtp_url), sender=settings.auth.mail_from
        )
    development = settings.environment == "development"
    return DevelopmentMailer(outbox_dir=settings.data_dir / "outbox" if development else None)
