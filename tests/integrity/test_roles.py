"""config/sql/roles.sql: each role can do its job and is refused what it must not do."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gdpr_daemon.db.engine import sqlalchemy_url
from gdpr_daemon.db.integrity import purge, verify_chains
from tests.helpers import insert_forget, insert_rectify, pii

ROLES_SQL = Path(__file__).resolve().parents[2] / "config" / "sql" / "roles.sql"
Denied = asyncpg.InsufficientPrivilegeError


@pytest.fixture
async def roles(pg: asyncpg.Connection) -> None:
    """Apply roles.sql to this test's database (twice: it must be idempotent)."""
    script = ROLES_SQL.read_text(encoding="utf-8")
    await pg.execute(script)
    await pg.execute(script)


async def as_role(db_url: str, role: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(db_url)
    await conn.execute(f"SET ROLE {role}")
    return conn


def engine_as(db_url: str, role: str) -> AsyncEngine:
    return create_async_engine(sqlalchemy_url(db_url), pool_size=3,
                               connect_args={"server_settings": {"role": role, "application_name": "gdpr-daemon"}})  # fmt: skip


@pytest.fixture
async def intake(roles: None, db_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await as_role(db_url, "gdpr_intake")
    yield conn
    await conn.close()


@pytest.fixture
async def daemon_conn(roles: None, db_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await as_role(db_url, "gdpr_daemon")
    yield conn
    await conn.close()


@pytest.fixture
async def auditor(roles: None, db_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await as_role(db_url, "gdpr_auditor")
    yield conn
    await conn.close()


async def test_intake_enters_reads_and_cancels(intake, pg):
    """gdpr_intake inserts requests, reads them and their history, and cancels through the function."""
    rid = await intake.fetchval(
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, external_ref, requested_by) "
        "VALUES ('forget', 1001, 'Contact', '003A', 'DSR-1', 'alice') RETURNING id"
    )
    assert await intake.fetchval("SELECT status FROM gdpr_requests WHERE id = $1", rid) == "pending"
    assert await intake.fetchval("SELECT count(*) FROM gdpr_request_log WHERE request_id = $1", rid) == 1
    await intake.execute("SELECT gdpr_cancel_request($1, 'alice', 'entered twice')", rid)
    row = await pg.fetchrow("SELECT to_status, actor, detail FROM gdpr_request_log WHERE request_id = $1 ORDER BY id DESC LIMIT 1", rid)
    assert dict(row) == {"to_status": "cancelled", "actor": "alice", "detail": "cancelled by the DPO: entered twice"}
    (sub,) = await insert_forget(pg, 1001)
    await pg.execute("UPDATE gdpr_requests SET status = 'submitted' WHERE id = $1", sub)
    with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError, match="only requests not yet submitted"):
        await intake.execute("SELECT gdpr_cancel_request($1)", sub)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE gdpr_requests SET status = 'submitted'",
        "UPDATE gdpr_requests SET status = 'cancelled'",
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, status) VALUES ('forget', 1, 'Contact', 'x', 'submitted')",
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, approved_by) VALUES ('forget', 1, 'Contact', 'x', 'bob')",
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, due_at) VALUES ('forget', 1, 'Contact', 'x', now() + interval '1 year')",
        "DELETE FROM gdpr_requests",
        "INSERT INTO gdpr_request_log (request_id, to_status, actor) VALUES (1, 'submitted', 'x')",
        "DELETE FROM gdpr_request_log",
        "SELECT * FROM audit_events",
        "SELECT gdpr_purge_chain('gdpr_request_log', now() - interval '10 years')",
        "CREATE TABLE mine (x int)",
    ],
)
async def test_intake_refused(intake, pg, sql):
    """gdpr_intake cannot set a status, approval or deadline, touch history or events, purge, or run DDL."""
    await insert_forget(pg, 1001)
    with pytest.raises(Denied):
        await intake.execute(sql)


async def test_daemon_role_runs_the_queue_purge_and_verify(daemon_for, roles, db_url, sim, settings_for, pg):
    """The daemon, connected as gdpr_daemon, submits requests, stores events, purges and verifies."""
    ids = await insert_forget(pg, 1001, 3)
    value = pii("role")
    rid = await insert_rectify(pg, 1002, value)
    engine = engine_as(db_url, "gdpr_daemon")
    try:
        report = await (await daemon_for(settings_for(), engine=engine)).run_once()
        assert report.submitted == 4
        assert await pg.fetchval("SELECT value FROM gdpr_requests WHERE id = $1", rid) is None
        async with engine.begin() as conn:
            raw = await conn.get_raw_connection()
            await raw.driver_connection.execute(
                "INSERT INTO audit_events (event_id, created_at, raw) VALUES (1, now(), $1::jsonb) "
                "ON CONFLICT (event_id) DO NOTHING", json.dumps({"event_id": 1}))  # fmt: skip
            await raw.driver_connection.execute(
                "INSERT INTO event_cursors (account, last_event_id) VALUES ('a', 1) "
                "ON CONFLICT (account) DO UPDATE SET last_event_id = excluded.last_event_id")  # fmt: skip
        await pg.execute("UPDATE gdpr_requests SET updated_at = now() - interval '400 days' WHERE id = ANY($1)", ids)
        result = await purge(engine, retention_days=365, history_days=2190, actor="daemon")
        assert result.requests_purged == 3
        assert all(r.ok for r in await verify_chains(engine))
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE gdpr_request_log SET detail = 'x'",
        "DELETE FROM gdpr_request_log",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
        "UPDATE gdpr_requests SET service_id = 1002",
        "UPDATE gdpr_requests SET external_ref = 'mine'",
        "UPDATE gdpr_requests SET approved_by = 'daemon'",
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id) VALUES ('forget', 1, 'Contact', 'x')",
        "DELETE FROM gdpr_requests",
        "UPDATE integrity_chains SET base_seq = 1",
        "CREATE TABLE mine (x int)",
        "DROP TABLE gdpr_request_log",
        "ALTER TABLE gdpr_request_log DISABLE TRIGGER USER",
    ],
)
async def test_daemon_role_refused(daemon_conn, pg, sql):
    """gdpr_daemon cannot change or delete history, change what a DPO entered, move a chain, or run DDL."""
    await insert_forget(pg, 1001)
    with pytest.raises(Denied):
        await daemon_conn.execute(sql)


async def test_auditor_reads_history_events_and_verifies(roles, auditor, db_url, pg):
    """gdpr_auditor reads the history, the events and the non-personal request columns, and can verify."""
    await insert_forget(pg, 1001, 2)
    await pg.execute("INSERT INTO audit_events (event_id, created_at, raw) VALUES (1, now(), '{}')")
    assert await auditor.fetchval("SELECT count(*) FROM gdpr_request_log") == 2
    assert await auditor.fetchval("SELECT count(*) FROM audit_events") == 1
    rows = await auditor.fetch("SELECT id, external_ref, request_type, service_id, status, received_at, due_at, "
                               "submitted_at, confirmed_at, ownbackup_request_id, attempts FROM gdpr_requests")  # fmt: skip
    assert len(rows) == 2
    engine = engine_as(db_url, "gdpr_auditor")
    try:
        assert all(r.ok for r in await verify_chains(engine))
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT record_id FROM gdpr_requests",
        "SELECT value FROM gdpr_requests",
        "SELECT comment FROM gdpr_requests",
        "SELECT * FROM gdpr_requests",
        "INSERT INTO gdpr_request_log (request_id, to_status, actor) VALUES (1, 'x', 'x')",
        "UPDATE audit_events SET key = 'x'",
        "DELETE FROM audit_events",
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id) VALUES ('forget', 1, 'Contact', 'x')",
        "SELECT gdpr_cancel_request(1)",
        "CREATE TABLE mine (x int)",
    ],
)
async def test_auditor_refused(auditor, pg, sql):
    """gdpr_auditor reads no personal request column and changes nothing."""
    await insert_forget(pg, 1001)
    with pytest.raises(Denied):
        await auditor.execute(sql)
