"""Three replicas as real processes on one database: the queue shared, one event puller at a time."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter

import pytest

from gdpr_daemon.db.audit import EVENTS_PULL_LOCK
from gdpr_daemon.simulator import FaultConfig
from tests.helpers import insert_forget, start_daemon, wait_until

pytestmark = pytest.mark.slow

HOLDER = """
SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND ((l.classid::bigint << 32) | l.objid::bigint) = $1
"""


async def start(db_url: str, sim_url: str, log_file, name: str) -> asyncio.subprocess.Process:
    return await start_daemon(db_url, sim_url, log_file, GDPR_DAEMON_INSTANCE_NAME=name,
                              GDPR_DAEMON_QUEUE_CONCURRENCY="4", GDPR_DAEMON_EVENTS_PULL_INTERVAL_SECONDS="1")  # fmt: skip


async def test_three_replicas_share_queue_and_survive_puller_death(sim, db_url, sim_url, pg, log_file):
    """Every request is submitted once, every event stored once, and killing the puller mid-pull does not stop ingestion."""
    sim.faults = FaultConfig(latency_ms=30)  # pages take a while, so a pull can be caught under way
    sim.state.add_events(30_000)
    await insert_forget(pg, 1001, 100)
    await insert_forget(pg, 1002, 100)
    names = ["replica-1", "replica-2", "replica-3"]
    procs = {n: await start(db_url, sim_url, log_file, n) for n in names}
    try:
        holder = await wait_until(lambda: pg.fetchval(HOLDER, EVENTS_PULL_LOCK), timeout=30, interval=0.02,
                                  what="a replica to hold the event-pull lock")  # fmt: skip
        victim = holder.removeprefix("gdpr-daemon ")
        procs[victim].kill()
        await procs[victim].wait()
        stored_at_kill = await pg.fetchval("SELECT count(*) FROM audit_events")

        sim.faults = FaultConfig()
        sim.state.add_events(500)  # more history arrives after the puller died
        await wait_until(lambda: pg.fetchval("SELECT count(*) = 200 FROM gdpr_requests WHERE status = 'submitted'"),
                         timeout=60, what="the queue to drain")  # fmt: skip
        # The history also grows by the GDPR calls' and logins' own events.
        await wait_until(lambda: pg.fetchval("SELECT count(*) = $1 FROM audit_events", sim.state.events.last_event_id),
                         timeout=60, what="the surviving replicas to ingest the whole history")  # fmt: skip
        last = sim.state.events.last_event_id
    finally:
        for p in procs.values():
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
        codes = {n: await asyncio.wait_for(p.wait(), 30) for n, p in procs.items()}
    assert {n: c for n, c in codes.items() if n != victim} == {n: 0 for n in names if n != victim}
    assert stored_at_kill < last, "the puller was killed before the history was in"
    assert await pg.fetchval("SELECT count(DISTINCT event_id) FROM audit_events") == last
    assert await pg.fetchval("SELECT max(event_id) FROM audit_events") == last
    per_record = Counter((c.service_id, c.record_id) for c in sim.state.gdpr_calls)
    dup = {k: v for k, v in per_record.items() if v > 1}
    # A request can only go out twice if it was in flight in the killed replica; the history says so.
    unknown = await pg.fetchval("SELECT count(*) FROM gdpr_request_log WHERE detail LIKE '%outcome unknown%'")
    assert len(per_record) == 200 and len(dup) <= unknown
    pullers = await pg.fetch("SELECT DISTINCT actor FROM gdpr_request_log WHERE detail LIKE 'confirmed by OwnBackup event%'")
    assert {r["actor"] for r in pullers} - {victim}, "a surviving replica confirmed requests after the takeover"
