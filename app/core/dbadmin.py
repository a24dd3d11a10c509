"""Creating the roles and the database: the one step that needs an administrator.

Used by the embedded default, by the test suite on a real server, and by
`tenantry db bootstrap` for operators who prefer not to write the SQL themselves.
Migrations then run as the owner role and never need an administrator again.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

OWNER_ROLE = "tenantry_owner"
APP_ROLE = "tenantry_app"


@dataclass(frozen=True)
class DatabaseUrls:
    """Where the server (unprivileged role) and migrations (owner role) connect."""

    app: str
    owner: str


def with_user_and_database(url: str, user: str, database: str, password: str | None = None) -> str:
    """The same server as `url`, logged in as another role to another database."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    credentials = quote(user, safe="")
    if password:
        credentials += ":" + quote(password, safe="")
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("user", "dbname")]
    return urlunsplit(
        (parts.scheme, f"{credentials}@{host}", "/" + quote(database), urlencode(query), "")
    )


def bootstrap(
    admin_url: str,
    database: str,
    *,
    owner_password: str | None = None,
    app_password: str | None = None,
) -> DatabaseUrls:
    """Create the owner role, the server's role and the database, or finish what exists.

    Every step checks or repeats what it makes, so a run that stopped half-way completes on
    the next one. A given password is set (a role's password is left alone when None); the
    returned URLs carry the passwords given.
    """
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for role, password, extra in (
            (OWNER_ROLE, owner_password, sql.SQL("")),
            # The server's role: no way around row-level security, owns nothing.
            (APP_ROLE, app_password, sql.SQL(" NOINHERIT")),
        ):
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            verb = sql.SQL("ALTER") if exists else sql.SQL("CREATE")
            conn.execute(
                sql.SQL(
                    "{verb} ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB "
                    "NOCREATEROLE{extra}"
                ).format(verb=verb, role=sql.Identifier(role), extra=extra)
            )
            if password:
                _set_password(conn, role, password)
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone():
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {} ENCODING 'UTF8' TEMPLATE template0").format(
                    sql.Identifier(database), sql.Identifier(OWNER_ROLE)
                )
            )
    # The administrator again, in the new database: everything of `admin_url` but the
    # database name is kept (its password, TLS and other parameters).
    with psycopg.connect(make_conninfo(admin_url, dbname=database), autocommit=True) as conn:
        # PostgreSQL 15+ already owns `public` by the database owner; older clusters need it.
        conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(OWNER_ROLE)))
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(database), sql.Identifier(APP_ROLE)
            )
        )
        # Temporary tables have no row-level security and are searched before `public`:
        # nobody but the owner gets the default TEMPORARY privilege.
        conn.execute(
            sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database))
        )
    return DatabaseUrls(
        app=with_user_and_database(admin_url, APP_ROLE, database, app_password),
        owner=with_user_and_database(admin_url, OWNER_ROLE, database, owner_password),
    )


def _set_password(conn: psycopg.Connection[tuple[object, ...]], role: str, password: str) -> None:
    # The SCRAM verifier is computed here (libpq, as psql's \password does): the password
    # itself never reaches the server, its statement log or pg_stat_statements.
    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
    conn.execute(
        sql.SQL("ALTER ROLE {} PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(verifier.decode())
        )
    )


def drop_database(admin_url: str, database: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )
