"""`tenantry admin …`: operators create and maintain platform administrators, without a
terminal (as in CI), and every change is in the platform audit log."""

from __future__ import annotations

import asyncio
import io
import re
import sys

import pytest

from app.cli import main
from app.core.db import Database
from app.core.settings import Settings
from app.mfa import crypto
from tests.app_fixtures import GraphQL
from tests.conftest import TestDatabase
from tests.platform.support import AUDIT, SIGN_IN, VIEWER, codes


@pytest.fixture
def operator_env(
    test_db: TestDatabase, app_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command configured like the test server: same database, same MFA key file."""
    monkeypatch.setenv("DATABASE_URL", test_db.urls.app)
    monkeypatch.setenv("MIGRATION_DATABASE_URL", test_db.urls.owner)
    monkeypatch.setenv("TENANTRY_DATA_DIR", str(app_settings.data_dir))
    monkeypatch.delenv("TENANTRY_MFA_KEYS_FILE", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # no terminal, nothing to read


async def tenantry(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    # The command runs its own event loop, so it gets a thread of its own.
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def secrets_of(out: str) -> tuple[str | None, str]:
    password = re.search(r"^password \(shown once\): (\S+)$", out, re.MULTILINE)
    secret = re.search(r"^TOTP secret \(shown once\): ([A-Z2-7]+)$", out, re.MULTILINE)
    assert secret is not None, out
    return (password.group(1) if password else None), secret.group(1)


def credentials(email: str, password: str, secret: str, offset: int = 0) -> dict[str, object]:
    code = crypto.code_at_step(secret, crypto.current_step() + offset)
    return {"input": {"email": email, "password": password, "code": code}}


async def test_create_sign_in_disable_and_reset(
    operator_env: None, capsys: pytest.CaptureFixture[str], gql: GraphQL, database: Database
) -> None:
    email = "ops-lead@platform.example"

    code, out, err = await tenantry(
        capsys, "admin", "create", email, "--name", "Ops Lead", "--all-permissions"
    )

    assert (code, err) == (0, "")
    assert (
        "permissions: platform:audit, tenant:create, tenant:delete, tenant:impersonate,"
        " tenant:read, tenant:suspend" in out
    )
    assert "otpauth://totp/Tenantry:platform%3Aops-lead%40platform.example?" in out
    password, secret = secrets_of(out)
    assert password is not None
    assert len(password) >= 20
    signed_in = (await gql.data(SIGN_IN, credentials(email, password, secret)))["platformSignIn"]
    token = signed_in["accessToken"]
    assert signed_in["admin"]["name"] == "Ops Lead"

    code, out, _ = await tenantry(capsys, "admin", "list")
    assert code == 0
    assert re.search(rf"^{re.escape(email)}  active  platform:audit,tenant:create", out, re.M)

    code, out, _ = await tenantry(capsys, "admin", "disable", email)
    assert (code, out.split("  ")[:2]) == (0, [email, "disabled"])
    assert codes(await gql(VIEWER, token=token)) == ["UNAUTHENTICATED"]
    assert codes(await gql(VIEWER, token=token)) == ["UNAUTHENTICATED"]
    assert (await tenantry(capsys, "admin", "enable", email))[0] == 0

    code, out, _ = await tenantry(capsys, "admin", "reset-mfa", email)
    assert code == 0
    no_password, new_secret = secrets_of(out)
    assert no_password is None
    assert new_secret != secret
    old = await gql(SIGN_IN, credentials(email, password, secret, 0))
    assert old["data"]["platformSignIn"]["errors"][0]["code"] == "INVALID_CREDENTIALS"
    new = (await gql.data(SIGN_IN, credentials(email, password, new_secret, 0)))["platformSignIn"]
    assert new["errors"] == []

    code, out, _ = await tenantry(capsys, "admin", "set-permissions", email, "tenant:read")
    assert code == 0
    assert "  tenant:read  " in out
    assert codes(await gql(AUDIT, token=new["accessToken"])) == ["FORBIDDEN"]

    # Every operator change is recorded, as the system, naming the command.
    await tenantry(capsys, "admin", "set-permissions", email, "platform:audit")
    entries = (await gql.data(AUDIT, token=new["accessToken"]))["platformAuditLog"]["nodes"]
    mine = [
        e["action"]
        for e in entries
        if e["targetId"] == signed_in["admin"]["id"] and e["action"].startswith("platform.admin.")
    ]
    assert mine == [
        "platform.admin.permissions_changed",
        "platform.admin.permissions_changed",
        "platform.admin.credentials_reset",
        "platform.admin.enabled",
        "platform.admin.disabled",
        "platform.admin.created",
    ]


async def test_a_password_from_standard_input(
    operator_env: None,
    capsys: pytest.CaptureFixture[str],
    gql: GraphQL,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    email = "stdin-admin@platform.example"
    monkeypatch.setattr(sys, "stdin", io.StringIO("a long chosen passphrase\n"))

    code, out, _ = await tenantry(
        capsys, "admin", "create", email, "--permission", "tenant:read", "--password-stdin"
    )

    assert code == 0
    password, secret = secrets_of(out)
    assert password is None  # chosen, so not printed
    body = await gql.data(SIGN_IN, credentials(email, "a long chosen passphrase", secret))
    assert body["platformSignIn"]["admin"]["permissions"] == ["tenant:read"]


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["bad@x.example"], "", "name what the administrator may do"),
        (["bad@x.example", "--permission", "project:read"], "", "Unknown platform permission"),
        (["not-an-email", "--all-permissions"], "", "`email` is not a valid email address"),
        (["bad@x.example", "--all-permissions", "--password-stdin"], "short\n", "at least 8"),
        (["bad@x.example", "--all-permissions", "--name", ""], "", "`name` must not be empty"),
    ],
)
async def test_bad_input_is_one_clear_line_and_creates_nothing(
    operator_env: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    stdin: str,
    message: str,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))

    code, _, err = await tenantry(capsys, "admin", "create", *argv)

    assert code == 2
    assert message in err, err
    assert err.count("\n") == 1, err
    assert "bad@x.example" not in (await tenantry(capsys, "admin", "list"))[1]


async def test_duplicates_and_unknown_admins_are_clear_errors(
    operator_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (await tenantry(capsys, "admin", "create", "dup@x.example", "--all-permissions"))[0] == 0

    code, _, err = await tenantry(capsys, "admin", "create", "DUP@x.example", "--all-permissions")
    assert (code, err) == (2, "error: An administrator with the email DUP@x.example exists\n")
    code, _, err = await tenantry(capsys, "admin", "disable", "nobody@x.example")
    assert (code, err) == (2, "error: No administrator with the email nobody@x.example\n")
