"""The one error boundary: expected failures of a mutation become payload errors in
`settle`, and database errors are translated once (app/core/errors.py), including
PostgreSQL's data-exception class (SQLSTATE 22xxx), at both boundaries: a mutation's
payload and any other GraphQL error. Driven by real errors of the real database."""

from __future__ import annotations

from uuid import UUID

import asyncpg
import pytest
from graphql import GraphQLError

from app.api.errors import to_client_error
from app.api.mutations import ErrorCode, settle
from app.core.db import Database, Session
from app.core.errors import Conflict
from tests.factories import seed_tenant

# Statements the server refuses with a data exception, each of another kind (SQLSTATE),
# with a value that must never reach the client.
DATA_EXCEPTIONS = [
    pytest.param("SELECT $1::text::int", "secret-41", "22P02", id="invalid_text_representation"),
    pytest.param("SELECT $1::text::int", "99999999999", "22003", id="numeric_value_out_of_range"),
    pytest.param("SELECT 1 / ($1::text::int - 7)", "7", "22012", id="division_by_zero"),
    pytest.param("SELECT $1::text::date", "2024-02-30", "22008", id="datetime_field_overflow"),
    pytest.param("SELECT $1::text::uuid", "not-a-uuid", "22P02", id="uuid_malformed"),
]


async def _fail(session: Session, sql: str, value: str) -> object:
    return await session.fetchval(sql, value)


@pytest.mark.parametrize(("sql", "value", "sqlstate"), DATA_EXCEPTIONS)
async def test_a_data_exception_is_a_payload_error_with_a_stable_code(
    database: Database, sql: str, value: str, sqlstate: str
) -> None:
    # Given the server's role in a tenant's transaction
    tenant = await seed_tenant(database)
    async with database.transaction(tenant) as session:
        # The statement really fails with that data exception (not some other error).
        with pytest.raises(asyncpg.DataError) as raised:
            async with session.atomic():
                await _fail(session, sql, value)
        assert raised.value.sqlstate == sqlstate

        # When a mutation's service runs it inside the boundary
        async def action() -> object:
            async with session.atomic():
                return await _fail(session, sql, value)

        outcome = await settle(action)

    # Then it is an expected failure with the INVALID code, and nothing of the SQL, the
    # value or the driver's text
    assert outcome.value is None
    [error] = outcome.errors
    assert error.code is ErrorCode.INVALID
    assert error.message == "A value is out of range or malformed"
    assert error.field is None
    assert value not in error.message
    assert str(raised.value) not in error.message


async def test_the_operation_goes_on_after_a_settled_data_exception(database: Database) -> None:
    # Given a tenant, and an operation whose first mutation fails with a data exception
    tenant = await seed_tenant(database)
    async with database.transaction(tenant) as session:

        async def bad() -> object:
            async with session.atomic():
                await session.execute(
                    "INSERT INTO projects (tenant_id, name) VALUES ($1, 'doomed')", tenant
                )
                return await session.fetchval("SELECT $1::text::int", "x")

        failed = await settle(bad)

        # When a later mutation of the same operation writes
        async def good() -> UUID:
            async with session.atomic():
                created: UUID = await session.fetchval(
                    "INSERT INTO projects (tenant_id, name) VALUES ($1, 'kept') RETURNING id",
                    tenant,
                )
                return created

        kept = await settle(good)

    # Then the failed one changed nothing and the later one committed
    assert [e.code for e in failed.errors] == [ErrorCode.INVALID]
    assert kept.errors == []
    async with database.transaction(tenant, readonly=True) as session:
        rows = await session.fetch("SELECT id, name FROM projects")
    assert [(r["id"], r["name"]) for r in rows] == [(kept.value, "kept")]


async def test_a_data_exception_outside_a_mutation_is_a_graphql_error_with_the_code(
    database: Database,
) -> None:
    # Given a data exception raised by the database in a field's resolver
    tenant = await seed_tenant(database)
    with pytest.raises(asyncpg.DataError) as raised:
        async with database.transaction(tenant, readonly=True) as session:
            await session.fetchval("SELECT $1::text::int", "secret-42")
    error = GraphQLError(str(raised.value), path=["viewer"], original_error=raised.value)

    # When the GraphQL boundary answers it
    client = to_client_error(error, "req-1").formatted

    # Then the client sees the code and a clear message, never the driver's text
    assert client["extensions"] == {"code": "INVALID"}
    assert client["message"] == "A value is out of range or malformed"
    assert "secret-42" not in str(client)


async def test_a_domain_error_keeps_its_code_and_field() -> None:
    async def action() -> None:
        raise Conflict("That slug is taken", field="slug")

    outcome = await settle(action)

    [error] = outcome.errors
    assert (error.code, error.message, error.field) == (
        ErrorCode.CONFLICT,
        "That slug is taken",
        "slug",
    )


async def test_an_unexpected_database_error_is_not_settled(database: Database) -> None:
    # An error without a domain meaning (here: a missing column, a bug) propagates, to be
    # masked and logged at the GraphQL boundary.
    tenant = await seed_tenant(database)
    async with database.transaction(tenant, readonly=True) as session:

        async def action() -> object:
            async with session.atomic():
                return await session.fetchval("SELECT no_such_column FROM projects")

        with pytest.raises(asyncpg.UndefinedColumnError):
            await settle(action)
