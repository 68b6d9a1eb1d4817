"""The event pull against the simulator and a real Postgres: paging, cursor, quarantine, lock."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import asyncpg
import pytest
import structlog

from gdpr_daemon.audit import AccountMismatch, PullJob
from gdpr_daemon.audit.parse import parse_created_at
from gdpr_daemon.db.audit import EVENTS_PULL_LOCK
from gdpr_daemon.db.engine import make_engine
from gdpr_daemon.simulator import FaultConfig
from tests.helpers import wait_until

from .conftest import puller_for


async def stored_ids(pg: asyncpg.Connection) -> list[int]:
    return [r[0] for r in await pg.fetch("SELECT event_id FROM audit_events ORDER BY event_id")]


async def test_empty_history(history, engine, pg):
    """An empty history: one call without `from`, nothing stored, no cursor row, no error."""
    _sim, url, source = await history(synthetic_events=0)
    result = await puller_for(engine, source, url).pull()
    assert (result.pages, result.stored, result.quarantined, result.cursor) == (1, 0, 0, None)
    assert source.froms == [None]
    assert await pg.fetchval("SELECT count(*) FROM event_cursors") == 0


@pytest.mark.parametrize(("count", "froms"), [(999, [None]), (1000, [None, 1000]), (2001, [None, 1000, 2000])])
async def test_page_sizes(history, engine, pg, count, froms):
    """Pages of 1000 follow the cursor until a shorter page (999: one call; exactly 1000: a second, empty one)."""
    _sim, url, source = await history(synthetic_events=count)
    result = await puller_for(engine, source, url).pull()
    assert source.froms == froms
    assert result.stored == count and result.cursor == count and result.duplicates == 0
    assert await stored_ids(pg) == list(range(1, count + 1))
    row = await pg.fetchrow("SELECT account, last_event_id FROM event_cursors")
    assert (row["account"], row["last_event_id"]) == (url, count)


async def test_next_pull_resumes_from_the_cursor(history, engine, pg):
    """A second pull asks from the stored cursor and stores only the new events."""
    sim, url, source = await history(synthetic_events=1500)
    await puller_for(engine, source, url).pull()
    sim.state.add_events(700)
    source.froms.clear()
    result = await puller_for(engine, source, url).pull()
    assert source.froms == [1500]
    assert (result.stored, result.cursor) == (700, 2200)
    assert await stored_ids(pg) == list(range(1, 2201))


@pytest.mark.parametrize("date_format", ["rfc1123", "iso", "mixed"])
async def test_both_date_formats_stored_as_utc(history, engine, pg, date_format):
    """created_at in RFC 1123, ISO 8601 or both mixed is stored as the same UTC instant the API meant; raw is kept."""
    sim, url, source = await history(synthetic_events=1200, date_format=date_format)
    await puller_for(engine, source, url).pull()
    rows = await pg.fetch("SELECT event_id, created_at, raw FROM audit_events ORDER BY event_id")
    assert len(rows) == 1200
    for row in rows[::97]:
        served = sim.state.events.get(row["event_id"])
        assert row["created_at"] == parse_created_at(served["created_at"])
        assert json.loads(row["raw"]) == served
    rfc_seen = {json.loads(r["raw"])["created_at"].endswith(" GMT") for r in rows[:4]}
    assert rfc_seen == {"rfc1123": {True}, "iso": {False}, "mixed": {True, False}}[date_format]


async def test_columns_come_from_the_event(history, engine, pg):
    """Each column holds the event's field; service_id is null when the event has none."""
    sim, url, source = await history(synthetic_events=300)
    await puller_for(engine, source, url).pull()
    rows = {r["event_id"]: r for r in await pg.fetch("SELECT * FROM audit_events")}
    for event_id in (1, 2, 3, 150, 300):
        served, row = sim.state.events.get(event_id), rows[event_id]
        assert row["key"] == served["key"] and row["source"] == served["source"]
        assert row["user_email"] == served["user_email"] and row["user_id"] == str(served["user_id"])
        assert row["ip_address"] == served["ip_address"] and row["service_id"] == served.get("service_id")
        assert json.loads(row["parameters"]) == served["parameters"]
    assert any(r["service_id"] is None for r in rows.values()) and any(r["service_id"] for r in rows.values())


@pytest.mark.parametrize("kind", ["missing_event_id", "bad_created_at", "not_object"])
async def test_each_malformed_case_is_quarantined_and_the_pull_goes_on(history, engine, pg, kind):
    """A malformed event goes to audit_quarantine with its raw JSON and reason, is counted, and every other event is stored."""
    sim, url, source = await history(synthetic_events=2500)
    sim.state.inject_malformed_event(1500, kind)
    result = await puller_for(engine, source, url).pull()
    assert result.quarantined == 1 and result.stored == 2499 and result.cursor == 2500
    assert await stored_ids(pg) == [i for i in range(1, 2501) if i != 1500]
    q = await pg.fetchrow("SELECT * FROM audit_quarantine")
    assert q["account"] == url and q["after_event_id"] == 1499
    assert q["event_id"] == (1500 if kind == "bad_created_at" else None)
    expected = {"missing_event_id": "no event_id", "bad_created_at": "created_at", "not_object": "not an object"}[kind]
    assert expected in q["reason"]
    served = sim.state.events.get(1500)
    assert json.loads(q["raw"]) == served


async def test_trailing_malformed_event_is_quarantined_once(history, engine, pg):
    """A last event without event_id is served again by every pull, and still quarantined only once."""
    sim, url, source = await history(synthetic_events=1200)
    sim.state.inject_malformed_event(1200, "missing_event_id")
    first = await puller_for(engine, source, url).pull()
    second = await puller_for(engine, source, url).pull()
    assert (first.quarantined, first.cursor) == (1, 1199)
    assert (second.quarantined, second.stored, second.cursor) == (0, 0, 1199)
    sim.state.add_events(5)
    third = await puller_for(engine, source, url).pull()
    assert (third.quarantined, third.stored, third.cursor) == (0, 5, 1205)
    assert await pg.fetchval("SELECT count(*) FROM audit_quarantine") == 1


async def test_a_full_page_without_ids_stalls_instead_of_looping(history, engine, pg):
    """A whole page of items without event_id cannot move the cursor: the pull stops, flags it, quarantines them."""
    sim, url, source = await history(synthetic_events=1500)
    for i in range(1, 1001):
        sim.state.inject_malformed_event(i, "not_object")
    result = await puller_for(engine, source, url).pull()
    assert result.stalled and result.stored == 0 and result.quarantined == 1000
    assert source.froms == [None]


async def test_events_served_again_are_not_stored_twice(history, engine, pg):
    """Re-reading an old stretch (cursor moved back) stores nothing twice and counts duplicates."""
    _sim, url, source = await history(synthetic_events=1800)
    await puller_for(engine, source, url).pull()
    await pg.execute("UPDATE event_cursors SET last_event_id = 500")
    result = await puller_for(engine, source, url).pull()
    assert (result.stored, result.duplicates, result.cursor) == (0, 1300, 1800)
    assert await pg.fetchval("SELECT count(*) FROM audit_events") == 1800


async def test_another_accounts_history_is_refused(history, engine, pg):
    """A database whose cursor belongs to another base URL is refused with a clear error; nothing is fetched."""
    _sim, url, source = await history(synthetic_events=10)
    await pg.execute("INSERT INTO event_cursors (account, last_event_id) VALUES ('https://emea1.owndata.com', 77)")
    with pytest.raises(AccountMismatch, match=r"emea1\.owndata\.com.*one database serves one account"):
        await puller_for(engine, source, url).pull()
    assert source.froms == []
    assert await pg.fetchval("SELECT count(*) FROM audit_events") == 0


async def test_lock_held_elsewhere_skips_without_error(history, engine, db_url):
    """While another session holds the pull lock, a pull skips at once; when that session dies, the next pull runs."""
    _sim, url, source = await history(synthetic_events=20)
    other = await asyncpg.connect(db_url)
    assert await other.fetchval("SELECT pg_try_advisory_lock($1)", EVENTS_PULL_LOCK)
    result = await puller_for(engine, source, url).pull()
    assert result.skipped_locked and source.froms == []
    other.terminate()  # a crashed replica: no unlock, the connection just goes away
    await asyncio.sleep(0)
    for _ in range(100):  # the server notices the closed socket at once, but asynchronously
        result = await puller_for(engine, source, url).pull()
        if not result.skipped_locked:
            break
        await asyncio.sleep(0.05)
    assert result.stored == 20


async def test_two_pullers_at_once_store_each_event_once(history, db_url, pg):
    """Two replicas pulling at the same moment: one pulls, the other skips; every event stored once."""
    sim, url, source = await history(synthetic_events=5000)
    sim.faults = FaultConfig(latency_ms=30)
    engines = [make_engine(db_url, pool_size=2) for _ in range(2)]
    try:
        results = await asyncio.gather(*(puller_for(e, source, url).pull() for e in engines))
    finally:
        for e in engines:
            await e.dispose()
    assert sorted(r.skipped_locked for r in results) == [False, True]
    assert sum(r.stored for r in results) == 5000
    assert await pg.fetchval("SELECT count(*) FROM audit_events") == 5000


async def test_stop_ends_at_a_page_boundary_and_the_next_pull_finishes(history, engine, pg):
    """Setting stop ends the pull after a stored page; the cursor matches what is stored, and the next pull completes."""
    sim, url, source = await history(synthetic_events=6000)
    sim.faults = FaultConfig(latency_ms=40)
    stop = asyncio.Event()

    def on_page(result):
        if result.pages == 2:
            stop.set()

    first = await puller_for(engine, source, url, progress=on_page).pull(stop)
    assert first.stopped and first.cursor == 2000
    assert await stored_ids(pg) == list(range(1, 2001))
    sim.faults = FaultConfig()
    second = await puller_for(engine, source, url).pull()
    assert second.stored == 4000 and await stored_ids(pg) == list(range(1, 6001))


async def test_api_errors_leave_stored_pages_and_raise(history, engine, pg):
    """An API failure mid-pull raises; the pages stored before it stay, and the next pull resumes."""
    from gdpr_daemon.ownbackup import OwnBackupError

    _sim, url, source = await history(synthetic_events=3500)
    calls = 0
    real = source.events

    async def flaky(from_id=None):
        nonlocal calls
        calls += 1
        if calls == 3:
            raise OwnBackupError("the API is down")
        return await real(from_id)

    source.events = flaky
    with pytest.raises(OwnBackupError):
        await puller_for(engine, source, url).pull()
    stored = await pg.fetchval("SELECT last_event_id FROM event_cursors")
    assert stored in (1000, 2000) and await pg.fetchval("SELECT count(*) FROM audit_events") == stored
    source.events = real
    result = await puller_for(engine, source, url).pull()
    assert result.cursor == 3500 and await stored_ids(pg) == list(range(1, 3501))


async def test_scheduled_job_honours_stop_and_is_drained(history, engine, pg):
    """The daemon's job: stop abandons the fetch in flight, drain waits for it, and nothing half-stored remains."""
    sim, url, source = await history(synthetic_events=20_000)
    sim.faults = FaultConfig(latency_ms=150)
    stop = asyncio.Event()
    job = PullJob(puller_for(engine, source, url), stop)
    task = asyncio.create_task(job.run())
    await wait_until(lambda: pg.fetchval("SELECT count(*) > 0 FROM event_cursors"), what="a first page")
    stop.set()
    await job.drain(10)
    assert task.done() and job.last is not None and job.last.stopped
    cursor = await pg.fetchval("SELECT last_event_id FROM event_cursors")
    assert await pg.fetchval("SELECT count(*) FROM audit_events") == cursor < 20_000
    assert await job.run() is None, "a stopped daemon's job does nothing"


async def test_scheduled_job_logs_errors_instead_of_raising(history, engine):
    """A failing scheduled pull is logged (the next round retries) and does not raise into the scheduler."""
    from gdpr_daemon.ownbackup import ServerError

    _sim, url, source = await history(synthetic_events=5)

    async def down(from_id=None):
        raise ServerError("OwnBackup answered 503 Service Unavailable to events", status=503)

    source.events = down
    with structlog.testing.capture_logs() as logs:
        assert await PullJob(puller_for(engine, source, url), asyncio.Event()).run() is None
    failed = [e for e in logs if e["event"] == "events_pull_failed"]
    assert failed and "503" in failed[0]["error"]


async def test_job_runs_under_apscheduler(history, engine, pg):
    """Scheduled as the daemon schedules it (AsyncIOScheduler, interval, first run at once), the job pulls."""
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    _sim, url, source = await history(synthetic_events=1500)
    job = PullJob(puller_for(engine, source, url), asyncio.Event())
    scheduler = AsyncIOScheduler(job_defaults={"coalesce": True, "max_instances": 1})
    scheduler.add_job(job.run, "interval", seconds=3600, id="events-pull", next_run_time=datetime.now(UTC))
    scheduler.start()
    try:
        await wait_until(lambda: asyncio.sleep(0, job.last), what="the scheduled pull")
    finally:
        scheduler.shutdown(wait=False)
        await job.drain(5)
    assert job.last.stored == 1500 and await pg.fetchval("SELECT count(*) FROM audit_events") == 1500
