"""The hash chains cannot be steered, held hostage or raced into a unique violation (issue 10, section 2).

Every attack runs as a real login of a role of config/sql/roles.sql.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from gdpr_daemon.db.engine import make_engine
from gdpr_daemon.db.integrity import verify_chains
from tests.helpers import insert_forget
from tests.security import db_logins
from tests.security.db_logins import connected

roles, login = db_logins.roles, db_logins.login  # fixtures
Denied = asyncpg.InsufficientPrivilegeError
REQUEST = ("INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id) "
           "VALUES ('forget', 1001, 'Contact', $1) RETURNING id")  # fmt: skip
HISTORY = "INSERT INTO gdpr_request_log (request_id, to_status, detail, actor) VALUES ($1, 'pending', 'note', 'd')"
OLD_LOCKS = (0x6764_7072_636C, 0x6764_7072_6365)  # the advisory lock keys of migration 0004


async def verified(db_url: str) -> bool:
    engine = make_engine(db_url, pool_size=1)
    try:
        return all(r.ok for r in await verify_chains(engine))
    finally:
        await engine.dispose()


async def seqs(pg: asyncpg.Connection) -> list[int]:
    return [r[0] for r in await pg.fetch("SELECT chain_seq FROM gdpr_request_log ORDER BY chain_seq")]


@pytest.mark.parametrize("group", ["gdpr_intake", "gdpr_daemon"])
async def test_chain_setting_does_not_steer_chain_seq(group, login, pg, db_url):
    """set_config('gdpr_daemon.chain_gdpr_request_log', ...) before an insert no longer makes chain_seq jump."""
    (rid,) = await insert_forget(pg, 1001)
    async with connected(await login(group)) as conn, conn.transaction():
        await conn.execute("SELECT set_config('gdpr_daemon.chain_gdpr_request_log', "
                           "pg_current_xact_id()::text || ':1000000:' || encode(sha256('x'), 'hex'), true)")  # fmt: skip
        if group == "gdpr_intake":
            await conn.fetchval(REQUEST, "003STEER")
        else:
            await conn.execute(HISTORY, rid)
    assert await seqs(pg) == [1, 2]
    assert await verified(db_url)


async def test_readers_cannot_take_the_chain_lock(login, pg):
    """An auditor holding the old advisory keys blocks no insert, and cannot lock what the chain waits on."""
    async with connected(await login("gdpr_auditor")) as auditor, connected(await login("gdpr_intake")) as intake:
        for key in OLD_LOCKS:
            await auditor.execute("SELECT pg_advisory_lock($1)", key)
        await asyncio.wait_for(intake.fetchval(REQUEST, "003LOCK"), 30)
        for sql in ("SELECT 1 FROM integrity_chains FOR UPDATE", "SELECT 1 FROM integrity_chains FOR KEY SHARE",
                    "LOCK TABLE integrity_chains IN SHARE MODE", "LOCK TABLE gdpr_request_log IN SHARE MODE",
                    "LOCK TABLE audit_events IN SHARE MODE"):  # fmt: skip
            async with auditor.transaction():
                with pytest.raises(Denied):
                    await auditor.execute(sql)
    assert await seqs(pg) == [1]


async def test_a_writer_holding_the_chain_makes_others_wait_a_bounded_time(login, pg, db_url):
    """A login idling in a transaction after writing history makes other inserts fail after 5 s with 40001, not hang."""
    (rid,) = await insert_forget(pg, 1001)
    async with connected(await login("gdpr_intake")) as holder, connected(await login("gdpr_intake")) as other, \
            connected(await login("gdpr_daemon")) as daemon:  # fmt: skip
        tx = holder.transaction()
        await tx.start()
        await holder.fetchval(REQUEST, "003HOLD")
        with pytest.raises(asyncpg.SerializationError, match="hash chain stayed locked by another transaction") as err:
            await asyncio.wait_for(other.fetchval(REQUEST, "003WAIT"), 30)
        assert err.value.sqlstate == "40001" and "idle in transaction" in (err.value.hint or "")
        with pytest.raises(asyncpg.SerializationError):
            await asyncio.wait_for(daemon.execute(HISTORY, rid), 30)
        await tx.commit()
        await asyncio.wait_for(other.fetchval(REQUEST, "003WAIT"), 30)  # the retry goes through
    assert await seqs(pg) == [1, 2, 3]
    assert await verified(db_url)


@pytest.mark.parametrize("isolation", ["repeatable_read", "serializable"])
async def test_snapshot_isolation_race_is_retryable_not_a_unique_violation(isolation, login, pg, db_url):
    """An intake insert in REPEATABLE READ or SERIALIZABLE racing another gets 40001 (then succeeds), never 23505."""
    async with connected(await login("gdpr_intake")) as first, connected(await login("gdpr_intake")) as second:
        # The other commits after this transaction's snapshot was taken.
        async with first.transaction(isolation=isolation):
            await first.fetchval("SELECT count(*) FROM gdpr_requests")
            await second.fetchval(REQUEST, "003B")
            with pytest.raises(asyncpg.SerializationError):
                await first.fetchval(REQUEST, "003A")
        # The other still holds the chain when this one inserts, and commits while it waits.
        tx = second.transaction()
        await tx.start()
        await second.fetchval(REQUEST, "003C")
        async with first.transaction(isolation=isolation):
            await first.fetchval("SELECT count(*) FROM gdpr_requests")
            waiting = asyncio.ensure_future(first.fetchval(REQUEST, "003A"))
            await asyncio.sleep(0.3)  # let it reach the lock; the outcome is the same if it is later
            await tx.commit()
            with pytest.raises(asyncpg.SerializationError):
                await asyncio.wait_for(waiting, 30)
        async with first.transaction(isolation=isolation):  # retried: it goes in
            await first.fetchval(REQUEST, "003A")
    assert await seqs(pg) == [1, 2, 3]
    assert await verified(db_url)


async def test_history_time_is_the_databases_clock(login, pg, db_url):
    """A daemon login inserting history with `at` in 2001 gets the database's time instead."""
    (rid,) = await insert_forget(pg, 1001)
    async with connected(await login("gdpr_daemon")) as daemon:
        await daemon.execute("INSERT INTO gdpr_request_log (request_id, at, to_status, detail, actor) "
                             "VALUES ($1, '2001-01-01', 'pending', 'backdated?', 'd')", rid)  # fmt: skip
    first, forged = [r[0] for r in await pg.fetch("SELECT at FROM gdpr_request_log ORDER BY chain_seq")]
    assert forged >= first and forged.year != 2001
    assert await verified(db_url)
