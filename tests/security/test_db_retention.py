"""Retention cannot be abused (issue 10, section 3), and the events' personal keys go with it (section 4).

The daemon's login may call the purge functions, but the database keeps at least the
retention floors of gdpr_daemon_settings, which only the schema owner may shorten.
"""

from __future__ import annotations

import json

import asyncpg
import pytest
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from gdpr_daemon.db import migrate
from gdpr_daemon.db.engine import make_engine
from gdpr_daemon.db.intake_settings import write_retention_floors
from gdpr_daemon.db.integrity import Anchor, purge, verify_chains
from gdpr_daemon.retention import run_purge
from tests.helpers import database_of, insert_forget, run_cli, with_db
from tests.integrity.support import backdate_history
from tests.security import db_logins
from tests.security.db_logins import connected

roles, login = db_logins.roles, db_logins.login  # fixtures
Denied = asyncpg.InsufficientPrivilegeError
GDPR_EVENT = ("INSERT INTO audit_events (event_id, created_at, key, parameters, raw, ingested_at) "
              "VALUES ($1, now() - $2::text::interval, 'gdpr.forget', $3::jsonb, $4::jsonb, now() - $2::text::interval)")  # fmt: skip


async def finished_with_old_history(pg: asyncpg.Connection, n: int, age: str) -> list[int]:
    ids = await insert_forget(pg, 1001, n)
    await backdate_history(pg, ids, age)
    await pg.execute("UPDATE gdpr_requests SET status = 'submitted', updated_at = now() - $2::text::interval "
                     "WHERE id = ANY($1)", ids, age)  # fmt: skip
    return ids


async def reports(engine: AsyncEngine, **kw: object) -> list:
    return await verify_chains(engine, **kw)  # type: ignore[arg-type]


async def test_daemon_cannot_purge_two_day_old_history(login, pg, db_url):
    """gdpr_purge_chain(…, now() - 25 hours, …) as the daemon's login deletes nothing younger than the floor (2190 days)."""
    ids = await finished_with_old_history(pg, 5, "2 days")
    async with connected(await login("gdpr_daemon")) as daemon:
        assert await daemon.fetchval("SELECT gdpr_purge_chain('gdpr_request_log', now() - interval '25 hours', 100000)") == 0
        assert await daemon.fetchval("SELECT gdpr_purge_personal_fields(1, 100000, 'daemon')") == 0
    assert await pg.fetchval("SELECT count(*) FROM gdpr_request_log") == 5
    assert sorted(r[0] for r in await pg.fetch("SELECT id FROM gdpr_requests WHERE record_id <> 'purged'")) == ids


async def test_daemon_purges_what_the_floor_allows(login, pg, db_url):
    """Past the floor the daemon's purge works as before: old history and events go, the chains verify."""
    ids = await finished_with_old_history(pg, 4, "7 years")
    engine = make_engine(await login("gdpr_daemon"), pool_size=1)
    try:
        result = await purge(engine, retention_days=365, history_days=1, actor="daemon")
        # The four old "received" rows go; the four purge notes just written stay.
        assert (result.requests_purged, result.history_deleted) == (4, 4)
        assert all(r.ok for r in await reports(engine))
    finally:
        await engine.dispose()
    assert await pg.fetchval("SELECT count(*) FROM gdpr_requests WHERE id = ANY($1) AND record_id = 'purged'", ids) == 4


async def test_daemon_login_cannot_shorten_a_floor(login, pg, settings_for):
    """The daemon's login may raise a retention floor, not shorten it; its purge job warns and keeps the floor."""
    async with connected(await login("gdpr_daemon")) as daemon:
        with pytest.raises(Denied, match=r"can be shortened .* only by the schema owner") as err:
            await daemon.execute("UPDATE gdpr_daemon_settings SET value = '30' WHERE key = 'retention_history_days'")
        assert err.value.constraint_name == "retention_floor_only_raised"
        with pytest.raises(Denied):
            await daemon.execute("INSERT INTO gdpr_daemon_settings (key, value) VALUES ('retention_days', '1') "
                                 "ON CONFLICT (key) DO UPDATE SET value = excluded.value")  # fmt: skip
        await daemon.execute("UPDATE gdpr_daemon_settings SET value = '3000' WHERE key = 'retention_history_days'")
    engine = make_engine(await login("gdpr_daemon"), pool_size=1)
    try:
        floors = await write_retention_floors(engine, retention_days=30, history_days=3000)
        assert (floors.retention_days, floors.retention_history_days, floors.kept) == (365, 3000, ("retention_days",))
        with structlog.testing.capture_logs() as logs:
            result = await run_purge(engine, settings_for(retention_days=30, retention_history_days=3000), actor="d")
        assert result is not None
    finally:
        await engine.dispose()
    (warning,) = [e for e in logs if e["event"] == "retention_floor_kept"]
    assert "retention_days stays 365 days (configured: 30 days)" in warning["floors"]


async def test_migrate_as_owner_writes_the_floors(pg, db_url, sim_url):
    """`gdpr-daemon migrate` (the owner's login) writes the configured retention periods as the floors."""
    code, _, err = await run_cli(db_url, sim_url, "migrate", GDPR_DAEMON_RETENTION_HISTORY_DAYS="30", GDPR_DAEMON_RETENTION_DAYS="0")
    assert code == 0, err
    floors = dict(await pg.fetch("SELECT key, value #>> '{}' FROM gdpr_daemon_settings WHERE key LIKE 'retention%'"))
    assert floors == {"retention_history_days": "30", "retention_days": "0"}


async def test_migrate_as_daemon_login_keeps_the_floors(login, pg, sim_url):
    """`gdpr-daemon migrate` run with the daemon's login cannot shorten the floors either, and says so."""
    code, out, err = await run_cli(await login("gdpr_daemon"), sim_url, "migrate", GDPR_DAEMON_RETENTION_HISTORY_DAYS="30")
    assert code == 0 and "is current" in out
    assert "keeps its retention floors: retention_history_days stays 2190 days (configured: 30 days)" in err
    assert await pg.fetchval("SELECT value #>> '{}' FROM gdpr_daemon_settings WHERE key = 'retention_history_days'") == "2190"


async def test_anchor_removed_by_the_purge_is_not_ok(engine, pg, db_url, sim_url):
    """`audit verify --anchor` of a head the purge removed says so and exits 1; the purge's own last row still compares."""
    first = await insert_forget(pg, 1001, 3)
    await backdate_history(pg, first, "7 years")
    (early,) = await reports(engine, chains=["gdpr_request_log"])
    early_anchor = early.summary().rsplit("head ", 1)[1]
    assert early_anchor.startswith("gdpr_request_log:3:")
    await backdate_history(pg, first + await insert_forget(pg, 1001, 3), "7 years")
    await insert_forget(pg, 1001, 2)
    result = await purge(engine, retention_days=0, history_days=2190, actor="t")
    assert result.history_deleted == 6
    (r,) = await reports(engine, chains=["gdpr_request_log"], anchors=[Anchor.parse(early_anchor)])
    assert r.ok is False and r.broken is None
    assert "chain_seq 3 was removed by the retention purge on" in r.summary() and "ANCHOR NOT CHECKED" in r.summary()
    code, out, _ = await run_cli(db_url, sim_url, "audit", "verify", "--chain", "gdpr_request_log", "--anchor", early_anchor)
    assert code == 1 and "ANCHOR NOT CHECKED" in out
    # An anchor exactly at the purge's last row compares against the hash the checkpoint kept.
    base = await pg.fetchval("SELECT encode(base_hash, 'hex') FROM integrity_chains WHERE chain = 'gdpr_request_log'")
    (r,) = await reports(engine, chains=["gdpr_request_log"], anchors=[Anchor("gdpr_request_log", 6, base)])
    assert r.ok
    (r,) = await reports(engine, chains=["gdpr_request_log"], anchors=[Anchor("gdpr_request_log", 6, "0" * 64)])
    assert r.broken is not None and "rewritten before that purge" in r.broken.reason
    code, out, _ = await run_cli(db_url, sim_url, "audit", "verify", "--chain", "gdpr_request_log", "--anchor",
                                 f"gdpr_request_log:6:{'0' * 64}")  # fmt: skip
    assert code == 1 and "BROKEN" in out


async def test_events_scrubbed_after_retention_still_verify(login, pg, db_url):
    """Past retention_days the purge puts record ids of stored events in digest form; the chain verifies, also for the auditor."""
    params = {"request_id": 5, "record_id": "003SUBJECT", "nested": {"value": "new@example.org"}}
    raw = {"event_id": 1, "key": "gdpr.forget", "parameters": params}
    await pg.execute(GDPR_EVENT, 1, "400 days", json.dumps(params), json.dumps(raw))
    await pg.execute(GDPR_EVENT, 2, "1 day", json.dumps(params), json.dumps({**raw, "event_id": 2}))
    masked_before = await pg.fetch("SELECT parameters, raw FROM audit_events_masked ORDER BY event_id")
    engine = make_engine(await login("gdpr_daemon"), pool_size=1)
    try:
        result = await purge(engine, retention_days=365, history_days=0, actor="daemon")
        assert result.events_scrubbed == 1
        assert (await purge(engine, retention_days=365, history_days=0, actor="daemon")).events_scrubbed == 0
    finally:
        await engine.dispose()
    old, recent = [json.loads(r[0]) for r in await pg.fetch("SELECT parameters FROM audit_events ORDER BY event_id")]
    assert old["record_id"].startswith("sha256:") and old["nested"]["value"].startswith("sha256:")
    assert old["request_id"] == 5 and recent == params
    assert "003SUBJECT" not in await pg.fetchval("SELECT raw::text FROM audit_events WHERE event_id = 1")
    assert await pg.fetch("SELECT parameters, raw FROM audit_events_masked ORDER BY event_id") == masked_before
    auditor = make_engine(await login("gdpr_auditor"), pool_size=1)
    try:
        assert all(r.ok for r in await reports(auditor))
    finally:
        await auditor.dispose()


async def test_migration_rehashes_stored_events_with_personal_keys(pg, db_url):
    """Upgrading from 0004 with record ids in stored events re-hashes the chain from there and records it."""
    name = f"{database_of(db_url)}_0004"
    await pg.execute(f'CREATE DATABASE "{name}"')
    url = with_db(db_url, name)
    eng = make_engine(url, pool_size=1)
    try:
        await migrate.upgrade(eng, "0004")
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("INSERT INTO audit_events (event_id, created_at, key, parameters, raw) "
                               "SELECT g, now(), 'user.login', '{}', jsonb_build_object('event_id', g) "
                               "FROM generate_series(1, 3) g")  # fmt: skip
            await conn.execute("INSERT INTO audit_events (event_id, created_at, key, parameters, raw) VALUES "
                               "(4, now(), 'gdpr.forget', '{\"record_id\": \"003X\"}', '{\"event_id\": 4}'), "
                               "(5, now(), 'user.login', '{}', '{\"event_id\": 5}')")  # fmt: skip
            seq, head = await conn.fetchrow("SELECT chain_seq, encode(row_hash, 'hex') FROM audit_events "
                                            "ORDER BY chain_seq DESC LIMIT 1")  # fmt: skip
            await migrate.upgrade(eng)
            cp = await conn.fetchrow("SELECT kind, from_seq, to_seq FROM integrity_checkpoints")
            assert tuple(cp) == ("rehash", 3, 5)
        finally:
            await conn.close()
        assert all(r.ok for r in await verify_chains(eng))
        anchor = Anchor("audit_events", seq, head)
        (r,) = await verify_chains(eng, ["audit_events"], anchors=[anchor])
        assert r.broken is not None and "migration 0005 re-hashed chain_seq 4 to 5" in r.broken.reason
    finally:
        await eng.dispose()
        await pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
