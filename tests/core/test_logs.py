"""Log lines: secrets shaped like tokens, link secrets and URL passwords never survive."""

from __future__ import annotations

import logging
import secrets
from uuid import uuid4

import pytest

from app.core.logs import redact
from app.core.security import new_opaque_token
from tests.logs import capture_logs

JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


@pytest.mark.parametrize(
    ("secret", "line"),
    [
        (JWT, f"rejected {JWT} from the header"),
        (JWT, f"Authorization: Bearer {JWT}"),
        ("SECRETVALUE", "authorization: bearer SECRETVALUE"),
        (
            (token := new_opaque_token("rt", uuid4()).token),
            f"refresh {token} reused",
        ),
        ("inv.x.y-secret", "http://127.0.0.1:8000/accept-invitation?token=inv.x.y-secret\n"),
        ("rst%2Eabc", "see https://app.example/reset?a=1&token=rst%2Eabc&b=2"),
        ("JBSWY3DPEHPK3PXP", "otpauth://totp/Tenantry:ada?secret=JBSWY3DPEHPK3PXP&issuer=T"),
        ("s3cr3t", "cannot reach postgresql://tenantry_app:s3cr3t@db:5432/tenantry"),
        ("p%40ss", "smtp://mailer:p%40ss@mail.example:587 refused"),
    ],
)
def test_secret_shapes_are_redacted(secret: str, line: str) -> None:
    assert secret in line
    assert secret not in redact(line)


def test_ordinary_text_is_left_alone() -> None:
    line = "POST /graphql 200 OK query Board 12.3 ms (3 SQL, 1.2 ms) user=ada@example.com"
    assert redact(line) == line


def test_both_formats_redact_the_message_and_the_traceback() -> None:
    secret = secrets.token_urlsafe(32)
    logger = logging.getLogger("tenantry.test")
    for log_format in ("json", "text"):
        with capture_logs(logger="tenantry.test", log_format=log_format) as captured:
            try:
                raise RuntimeError(f"postgresql://app:{secret}@db/x")
            except RuntimeError:
                logger.exception("failed with Bearer %s", secret)
        assert "RuntimeError" in captured.text
        assert secret not in captured.text
