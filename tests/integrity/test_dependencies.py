"""The daemon outlives its dependencies: Postgres restarted, connections killed, bad API answers."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from gdpr_daemon.db import migrate
from gdpr_daemon.db.engine import make_engine
from gdpr_daemon.db.integrity import verify_chains
from gdpr_daemon.embedded import EmbeddedPostgres
from gdpr_daemon.simulator import FaultConfig
from tests.helpers import insert_forget, insert_rectify, pii, wait_until
from tests.integrity.support import check_invariants, log_events, start_daemon, stop_daemon


async def submitted(pg: asyncpg.Connection) -> int:
    return int(await pg.fetchval("SELECT count(*) FROM gdpr_requests WHERE status = 'submitted'"))


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("outage_seconds", [5, 60], ids=["5s", "1min"])
async def test_postgres_stopped_and_started_under_a_running_daemon(sim, sim_url, log_file, outage_seconds):
    """Postgres stopped mid-drain: the daemon logs, waits with backoff, reconnects and finishes; it never exits.

    A minute is longer than the daemon's leases (30 s): its claims expire while it holds their
    answers.  Its own reaper leaves them to it, so none is submitted twice."""
    server = EmbeddedPostgres()  # in /tmp: the server runs as nobody when the tests run as root
    server.start()
    try:
        name = "gdpr_restart"
        admin = await asyncpg.connect(server.url)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        url = make_url(server.url).set(database=name).render_as_string(hide_password=False)
        engine = make_engine(url, pool_size=1)
        await migrate.upgrade(engine)
        await engine.dispose()
        pg = await asyncpg.connect(url)
        await insert_forget(pg, 1001, 200, prefix="A")
        await insert_forget(pg, 1002, 200, prefix="B")
        await pg.close()
        sim.faults = FaultConfig(latency_ms=50, seed=3)
        proc = await start_daemon(url, sim_url, log_file, GDPR_DAEMON_QUEUE_CONCURRENCY="4")
        try:
            pg = await asyncpg.connect(url)
            await wait_until(lambda: submitted(pg), timeout=30, what="the first submissions")
            await pg.close()
            server.stop(keep_data=True)
            await asyncio.sleep(outage_seconds)
            assert proc.returncode is None, "the daemon is still running while Postgres is down"
            calls_during_outage = len(sim.state.gdpr_calls)
            server.start(reuse=True)
            pg = await asyncpg.connect(url)
            # Bounded by the longest reconnect backoff (30 s) plus the rest of the drain.
            await wait_until(lambda: pg.fetchval("SELECT count(*) = 400 FROM gdpr_requests WHERE status = 'submitted'"),
                             timeout=120, interval=0.2, what="the queue drained after the restart")  # fmt: skip
            assert proc.returncode is None
        finally:
            code = await stop_daemon(proc)
        assert code == 0
        counts = await check_invariants(pg, sim)
        assert counts["submitted"] == 400 and calls_during_outage < 400
        # One replica: the answers it held through the outage were recorded, none sent again.
        assert counts["duplicates"] == 0 and counts["calls"] == 400, counts
        events = log_events(log_file)
        assert events["database_unavailable"] >= 1, "the outage was logged"
        assert events["background_task_died"] == 0
        await pg.close()
        engine = make_engine(url, pool_size=1)
        assert all(r.ok for r in await verify_chains(engine))
        await engine.dispose()
    finally:
        server.stop()


async def kill_daemon_connections(pg: asyncpg.Connection) -> int:
    return int(await pg.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name LIKE 'gdpr-daemon%'"
    ))  # fmt: skip


@pytest.mark.slow
async def test_connections_killed_with_pg_terminate_backend(sim, db_url, sim_url, pg, log_file):
    """The daemon's connections (pool and LISTEN) killed again and again: it reconnects and drains the queue."""
    await insert_forget(pg, 1001, 300, prefix="K")
    sim.faults = FaultConfig(latency_ms=40, seed=4)
    proc = await start_daemon(db_url, sim_url, log_file, GDPR_DAEMON_QUEUE_CONCURRENCY="4",
                              GDPR_DAEMON_QUEUE_LEASE_SECONDS="5")  # fmt: skip
    try:
        await wait_until(lambda: submitted(pg), timeout=30, what="the first submissions")
        killed = 0
        for _ in range(6):
            killed += await kill_daemon_connections(pg)
            await asyncio.sleep(0.7)
        assert killed >= 6 and proc.returncode is None
        await wait_until(lambda: pg.fetchval("SELECT count(*) = 300 FROM gdpr_requests WHERE status = 'submitted'"),
                         timeout=90, interval=0.2, what="the queue drained")  # fmt: skip
        (rid,) = await insert_forget(pg, 1001, 1, prefix="AFTER")
        await wait_until(lambda: pg.fetchval("SELECT status = 'submitted' FROM gdpr_requests WHERE id = $1", rid),
                         timeout=30, what="a new request picked up after the kills")  # fmt: skip
    finally:
        code = await stop_daemon(proc)
    assert code == 0
    await check_invariants(pg, sim)
    events = log_events(log_file)
    assert events["listener_connection_lost"] + events["listener_failed"] >= 1, "LISTEN was killed and came back"
    assert events["background_task_died"] == 0


MALFORMED = [
    ("truncated_json", FaultConfig(malformed_rate=1.0, malformed_mode="truncated_json"),
     "with a body that is not JSON (truncated or invalid JSON)"),
    ("html_200", FaultConfig(malformed_rate=1.0, malformed_mode="html_200"),
     "with a body that is not JSON (an HTML page)"),
    ("missing_id", FaultConfig(malformed_rate=1.0, malformed_mode="missing_id"),
     "without an integer 'id' or 'job_id'"),
    ("hang_past_timeout", FaultConfig(hang_ms=2500, hang_rate=1.0), "did not answer gdpr_"),
    ("html_5xx", FaultConfig(rate_5xx=1.0, seed=1), "OwnBackup answered 50"),
]  # fmt: skip
# The call may have been carried out although no usable answer came back.
OUTCOME_UNKNOWN = {"truncated_json", "html_200", "missing_id", "hang_past_timeout"}


@pytest.mark.parametrize(("mode", "faults", "sentence"), MALFORMED, ids=[m[0] for m in MALFORMED])
async def test_bad_api_answers_end_in_a_clear_last_error(daemon_for, sim, settings_for, engine, pg, mode, faults, sentence):
    """Each kind of bad answer is a transient error: retried, then failed with a clear last_error; no crash."""
    daemon = await daemon_for(settings_for(queue_max_attempts=2, ownbackup_timeout_seconds=1.0))
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    try:
        await asyncio.wait_for(daemon.ready.wait(), 30)  # logged in, service list loaded
        sim.faults = faults
        ids = await insert_forget(pg, 1001, 2, prefix=f"M{secrets.token_hex(2)}")
        ids.append(await insert_rectify(pg, 1002, pii(mode)))
        await wait_until(lambda: pg.fetchval("SELECT count(*) = 3 FROM gdpr_requests WHERE status = 'failed'"),
                         timeout=30, interval=0.1, what=f"{mode}: the requests to fail")  # fmt: skip
        assert not task.done(), "the daemon is still running"
        rows = await pg.fetch("SELECT attempts, last_error FROM gdpr_requests WHERE id = ANY($1)", ids)
        for r in rows:
            assert r["attempts"] == 2 and sentence in r["last_error"], r["last_error"]
            assert "gave up after 2 attempts" in r["last_error"] and "\n" not in r["last_error"]
            assert "PII-VALUE" not in r["last_error"]
        history = await pg.fetch("SELECT detail FROM gdpr_request_log WHERE request_id = $1 ORDER BY id", ids[0])
        steps = [h["detail"].split(":")[0] for h in history[-3:]]
        unknown = " (outcome unknown, OwnBackup may have carried it out)" if mode in OUTCOME_UNKNOWN else ""
        assert steps == [f"attempt 1 failed{unknown}", "claimed for attempt 2",
                         f"attempt 2 failed{unknown}, no attempts left"]  # fmt: skip
        sim.faults = FaultConfig()
        (ok,) = await insert_forget(pg, 1001, 1, prefix=f"OK{secrets.token_hex(2)}")
        await wait_until(lambda: pg.fetchval("SELECT status = 'submitted' FROM gdpr_requests WHERE id = $1", ok),
                         timeout=20, what="the next request, with the API healthy again")  # fmt: skip
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 30) == 0
