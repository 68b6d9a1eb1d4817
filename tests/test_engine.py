"""The pool pings only connections that sat idle, and replaces a dead one unnoticed."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gdpr_daemon.db.engine import make_engine


async def _backend_pid(engine) -> int:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_dead_idle_connection_is_replaced_before_use(db_url, pg):
    """A pooled connection killed while idle is found by the ping and replaced: the caller sees no error."""
    engine = make_engine(db_url, pool_size=1, ping_idle_after=0.2)
    try:
        old = await _backend_pid(engine)
        assert await pg.fetchval("SELECT pg_terminate_backend($1)", old)
        await asyncio.sleep(0.4)
        new = await _backend_pid(engine)
        assert new != old
    finally:
        await engine.dispose()


async def test_connection_in_steady_use_is_not_pinged(db_url, pg):
    """Within the idle bound no ping is spent: a connection killed meanwhile fails its next statement
    once (the caller retries), and the pool then hands out a fresh one."""
    engine = make_engine(db_url, pool_size=1, ping_idle_after=60)
    try:
        old = await _backend_pid(engine)
        assert await pg.fetchval("SELECT pg_terminate_backend($1)", old)
        await asyncio.sleep(0.1)
        with pytest.raises(DBAPIError) as err:
            await _backend_pid(engine)
        assert err.value.connection_invalidated
        assert await _backend_pid(engine) != old
    finally:
        await engine.dispose()
