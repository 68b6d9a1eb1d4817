"""The DPO's tools work for the intake role of config/sql/roles.sql, which may not UPDATE requests."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gdpr_daemon.commands.common import sync_intake_settings
from gdpr_daemon.config import load_settings
from gdpr_daemon.db.deadlines import extend_deadline
from gdpr_daemon.db.engine import sqlalchemy_url
from gdpr_daemon.db.intake_settings import write_intake_settings
from gdpr_daemon.db.requests import approve_requests, cancel_request, retry_request
from gdpr_daemon.dpo.imports import import_csv
from gdpr_daemon.runtime import open_runtime
from tests.dpo.support import csv_bytes, forget

ROLES_SQL = Path(__file__).resolve().parents[2] / "config" / "sql" / "roles.sql"
# What roles.sql grants the intake role for these tools (the lead adds these lines there).
DPO_GRANTS = """
GRANT EXECUTE ON FUNCTION gdpr_approve_requests(bigint[], text), gdpr_extend_deadline(bigint, integer, text, text),
    gdpr_retry_request(bigint, text) TO gdpr_intake;
"""


@pytest.fixture
async def intake_engine(pg: asyncpg.Connection, db_url: str) -> AsyncIterator[AsyncEngine]:
    if not ROLES_SQL.is_file():
        pytest.skip("config/sql/roles.sql is not there")
    await pg.execute(ROLES_SQL.read_text(encoding="utf-8"))
    await pg.execute(DPO_GRANTS)
    eng = create_async_engine(sqlalchemy_url(db_url), pool_size=2,
                              connect_args={"server_settings": {"role": "gdpr_intake"}})  # fmt: skip
    yield eng
    await eng.dispose()


async def test_intake_role_runs_every_dpo_action(intake_engine, engine, pg):
    """As gdpr_intake: import, approve, extend, retry and cancel work; writing the settings is refused, and a command goes on without."""
    await write_intake_settings(engine, require_approval=True, holidays=None, authoritative=True)

    async def no_services() -> list[int]:
        return []

    data = csv_bytes([forget("1001", "003A", "R-1"), forget("1002", "003B", "R-2"), forget("1003", "003C", "R-3")])
    outcome = await import_csv(intake_engine, io.BytesIO(data), actor="alice", service_ids=no_services)
    assert outcome.inserted is not None and outcome.inserted.awaiting_approval == 3
    assert await approve_requests(intake_engine, [1, 2, 3], actor="bob") == [1, 2, 3]
    ext = await extend_deadline(intake_engine, 1, months=2, reason="complex", actor="alice")
    assert ext.due_at > ext.original_due_at
    await pg.execute("UPDATE gdpr_requests SET status = 'failed' WHERE id = 2")
    await retry_request(intake_engine, 2, actor="alice")
    await cancel_request(intake_engine, 3, actor="alice", reason="duplicate")
    states = dict(await pg.fetch("SELECT id, status FROM gdpr_requests ORDER BY id"))
    assert states == {1: "pending", 2: "pending", 3: "cancelled"}
    with pytest.raises(Exception, match="permission denied"):
        await write_intake_settings(intake_engine, require_approval=True, holidays=None, authoritative=False)
    settings = load_settings(None, environ={}, intake_require_approval=True)
    async with open_runtime(settings, engine=intake_engine) as rt:
        await sync_intake_settings(rt)
