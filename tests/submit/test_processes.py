"""Real `gdpr-daemon` processes: several draining one table, and SIGTERM drains."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter

from gdpr_daemon.simulator import FaultConfig
from tests.helpers import insert_forget, start_daemon, wait_for_log, wait_until


async def test_two_processes_never_submit_twice(sim, db_url, sim_url, pg, tmp_path, log_file):
    """Two daemon processes drain one table together; every request is submitted exactly once."""
    sim.faults = FaultConfig(latency_ms=5, latency_jitter_ms=10, seed=1)
    await insert_forget(pg, 1001, 150)
    await insert_forget(pg, 1002, 150)
    procs = [
        await start_daemon(db_url, sim_url, log_file, GDPR_DAEMON_INSTANCE_NAME=f"replica-{i}",
                           GDPR_DAEMON_QUEUE_CONCURRENCY="8")  # fmt: skip
        for i in (1, 2)
    ]
    try:
        await wait_until(lambda: pg.fetchval("SELECT count(*) = 300 FROM gdpr_requests WHERE status = 'submitted'"),
                         timeout=60, what="both replicas to drain the queue")  # fmt: skip
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        codes = [await asyncio.wait_for(p.wait(), 20) for p in procs]
    assert codes == [0, 0]
    per_record = Counter((c.service_id, c.record_id) for c in sim.state.gdpr_calls)
    assert len(per_record) == 300 and set(per_record.values()) == {1}, "no request went out twice"
    by_actor = dict(await pg.fetch("SELECT actor, count(*) FROM gdpr_request_log WHERE to_status='submitted' GROUP BY 1"))
    assert set(by_actor) == {"replica-1", "replica-2"}, f"both replicas worked: {by_actor}"


async def test_sigterm_drains_in_flight_and_releases_the_rest(sim, db_url, sim_url, pg, log_file):
    """On SIGTERM calls in progress finish and are recorded, unstarted claims return to pending, exit 0."""
    sim.faults = FaultConfig(latency_ms=1500)
    ids = await insert_forget(pg, 1001, 6)
    proc = await start_daemon(
        db_url, sim_url, log_file,
        GDPR_DAEMON_QUEUE_CONCURRENCY="6", GDPR_DAEMON_QUEUE_PER_SERVICE_CONCURRENCY="2",
        GDPR_DAEMON_QUEUE_SHUTDOWN_TIMEOUT_SECONDS="10",
    )  # fmt: skip
    # Wait until two calls are under way (the other four wait for the per-service limit).
    await wait_until(lambda: pg.fetchval("SELECT count(*) = 6 FROM gdpr_requests WHERE status = 'in_flight'"),
                     timeout=20, what="the claims")  # fmt: skip
    await asyncio.sleep(0.5)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(proc.wait(), 20)
    elapsed = time.monotonic() - t0
    assert code == 0
    assert elapsed < 10 + 3, "exited within the configured drain bound"
    rows = dict(await pg.fetch("SELECT status, count(*) FROM gdpr_requests GROUP BY 1"))
    assert rows == {"submitted": 2, "pending": 4}, rows
    assert len(sim.state.gdpr_calls) == 2
    pending = await pg.fetch("SELECT attempts FROM gdpr_requests WHERE status='pending'")
    assert {r["attempts"] for r in pending} == {0}, "an unstarted claim is not counted as an attempt"
    released = await pg.fetchval("SELECT count(*) FROM gdpr_request_log WHERE detail = 'released unstarted at shutdown'")
    assert released == 4
    assert set(ids) == {r["id"] for r in await pg.fetch("SELECT id FROM gdpr_requests")}


async def test_sigterm_cuts_off_after_bound(sim, db_url, sim_url, pg, log_file):
    """A call still hanging at the drain bound is cut off; its request goes back to pending as outcome unknown."""
    proc = await start_daemon(db_url, sim_url, log_file, GDPR_DAEMON_QUEUE_SHUTDOWN_TIMEOUT_SECONDS="1",
                              GDPR_DAEMON_OWNBACKUP_TIMEOUT_SECONDS="60")  # fmt: skip
    await wait_for_log(log_file, "daemon_started")
    sim.faults = FaultConfig(hang_ms=30000, hang_rate=1.0)
    (rid,) = await insert_forget(pg, 1001)
    await wait_until(lambda: pg.fetchval("SELECT status = 'in_flight' FROM gdpr_requests WHERE id=$1", rid),
                     timeout=20, what="the claim")  # fmt: skip
    await asyncio.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 15) == 0
    row = await pg.fetchrow("SELECT status, attempts FROM gdpr_requests WHERE id=$1", rid)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    detail = await pg.fetchval("SELECT detail FROM gdpr_request_log WHERE request_id=$1 ORDER BY id DESC LIMIT 1", rid)
    assert "outcome unknown" in detail
