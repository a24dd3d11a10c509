"""The conditional UPDATEs that make a TOTP step and a recovery code single use, raced
deterministically: the second transaction waits on the first's row lock, then re-checks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from uuid import UUID

from app.core.db import Database, Session
from app.core.security import TokenService
from app.core.settings import Settings
from app.mfa import crypto, queries
from tests.app_fixtures import new_org
from tests.mfa.helpers import seed_totp

Use = Callable[[Session], Awaitable[bool]]


async def _race(database: Database, tenant_id: UUID, use: Use) -> tuple[bool, bool]:
    """`use(session)` in two transactions: the second starts while the first holds its lock."""
    async with database.transaction(tenant_id) as first:
        first_result = await use(first)
        second = asyncio.create_task(_in_transaction(database, tenant_id, use))
        # The first commits only once the second is blocked on the row lock it holds.
        while not await _someone_waits_for_a_lock(database):
            assert not second.done(), "the second transaction did not wait for the lock"
            await asyncio.sleep(0.01)
    return first_result, await second


async def _someone_waits_for_a_lock(database: Database) -> bool:
    async with database.transaction(None, readonly=True) as session:
        waiting = await session.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE 'UPDATE mfa_%'"
        )
    return bool(waiting)


async def _in_transaction(database: Database, tenant_id: UUID, use: Use) -> bool:
    async with database.transaction(tenant_id) as session:
        return bool(await use(session))


async def test_a_totp_step_is_used_once_by_racing_transactions(
    database: Database, tokens: TokenService, app_settings: Settings
) -> None:
    org = await new_org(database, tokens)
    user_id = org.members[0].id
    await seed_totp(database, app_settings, tenant_id=org.id, user_id=user_id)
    async with database.transaction(org.id, readonly=True) as session:
        factor = await queries.totp_factor(session, user_id)
    assert factor is not None
    step = crypto.current_step()

    results = await _race(
        database, org.id, lambda s: queries.use_totp_step(s, user_id, factor.id, step)
    )

    assert results == (True, False)
    async with database.transaction(org.id) as session:
        assert await queries.use_totp_step(session, user_id, factor.id, step - 1) is False
        assert await queries.use_totp_step(session, user_id, factor.id, step + 1) is True


async def test_a_recovery_code_is_used_once_by_racing_transactions(
    database: Database, tokens: TokenService
) -> None:
    org = await new_org(database, tokens)
    user_id = org.members[0].id
    digest = crypto.recovery_code_digest(
        crypto.new_recovery_codes(1)[0], tenant_id=org.id, user_id=user_id
    )
    assert digest is not None
    async with database.transaction(org.id) as session:
        await queries.replace_recovery_codes(session, user_id, [digest])

    results = await _race(database, org.id, lambda s: queries.use_recovery_code(s, user_id, digest))

    assert results == (True, False)
    async with database.transaction(org.id, readonly=True) as session:
        assert await queries.unused_recovery_codes(session, user_id) == 0
