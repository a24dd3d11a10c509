"""A production server refuses to start with what is convenient in development: keys the
data directory generated, the embedded database, GraphiQL or introspection on, demo data.
One line names each."""

from __future__ import annotations

from pathlib import Path

import httpx

from app.core.db import Database
from app.core.keys import KeyRing
from app.core.settings import Settings
from app.demo import seed_demo
from app.mfa.crypto import MfaKeys
from tests.app_fixtures import free_port
from tests.conftest import TestDatabase
from tests.deploy.serving import serving
from tests.deploy.test_config_errors import tenantry

KEYS_NOT_SET = (
    "configuration error: {} is not set: production uses keys you provide, never the ones"
    " development generates in the data directory"
)
GRAPHIQL_ON = "configuration error: TENANTRY_GRAPHIQL is on: production serves no GraphiQL"
INTROSPECTION_ON = (
    "configuration error: TENANTRY_INTROSPECTION is on: production answers no introspection"
    " (give clients schema.graphql)"
)
DEMO_FLAG = (
    "configuration error: --demo seeds a tenant whose password is published: never in production"
)
DEMO_DATA = (
    "configuration error: the database holds the demo tenant, whose password is published:"
    " delete and purge it (deleteTenant, purgeTenant) before serving production"
)


def key_files(directory: Path) -> dict[str, str]:
    """The operator's own key files, as a production server is given them."""
    signing, mfa = directory / "signing.json", directory / "mfa.json"
    KeyRing.from_file(signing, create=True)
    mfa.write_text(MfaKeys.generate().to_json(), encoding="utf-8")
    return {"TENANTRY_SIGNING_KEYS_FILE": str(signing), "TENANTRY_MFA_KEYS_FILE": str(mfa)}


def test_development_defaults_are_named_one_line_each(tmp_path: Path) -> None:
    ran = tenantry(
        tmp_path,
        "serve",
        "--demo",
        TENANTRY_ENV="production",
        TENANTRY_GRAPHIQL="true",
        TENANTRY_INTROSPECTION="on",
    )

    assert ran.code == 2
    assert ran.err.splitlines() == [
        "configuration error: DATABASE_URL is not set: production never runs the embedded"
        " PostgreSQL",
        KEYS_NOT_SET.format("TENANTRY_SIGNING_KEYS_FILE"),
        KEYS_NOT_SET.format("TENANTRY_MFA_KEYS_FILE"),
        GRAPHIQL_ON,
        INTROSPECTION_ON,
        DEMO_FLAG,
    ]
    assert ran.out == ""
    # Nothing was started or generated.
    assert not (tmp_path / "data").exists()


def test_development_keeps_its_conveniences() -> None:
    assert Settings.from_env({}).development_defaults() == []
    production = Settings.from_env({"TENANTRY_ENV": "production"})
    assert [p.split(" ")[0] for p in production.development_defaults()] == [
        "DATABASE_URL",
        "TENANTRY_SIGNING_KEYS_FILE",
        "TENANTRY_MFA_KEYS_FILE",
    ]


async def test_production_starts_without_demo_data_and_refuses_it_after(
    scratch_db: TestDatabase, tmp_path: Path
) -> None:
    # As compose.yaml runs it: the server's role only, never the owner's password (the
    # owner-only migration bookkeeping is not read; the migrate service ran before).
    env = {
        **key_files(tmp_path),
        "TENANTRY_ENV": "production",
        "DATABASE_URL": scratch_db.urls.app,
    }
    with serving(tmp_path / "data", env) as served:
        async with httpx.AsyncClient(base_url=served.base) as client:
            graphiql = await client.get("/static/graphiql/init.js")
    assert graphiql.status_code == 404  # production serves no GraphiQL
    assert "not checking for pending migrations" in served.output

    database = await Database.connect(
        scratch_db.urls.app, min_size=1, max_size=2, statement_timeout_ms=30_000
    )
    try:
        await seed_demo(database)
    finally:
        await database.close()
    ran = tenantry(tmp_path, "serve", "--port", str(free_port()), **env)

    assert (ran.code, ran.err.splitlines()) == (2, [DEMO_DATA])
    assert "Tenantry on" not in ran.out
