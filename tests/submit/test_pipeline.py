"""The main job end to end: rows in gdpr_requests -> OwnBackup simulator -> request ids.

Real Postgres (a clone of the migrated template) and the simulator over loopback.
"""

from __future__ import annotations

import asyncio
import hashlib

from gdpr_daemon.simulator import FaultConfig
from tests.helpers import insert_forget, insert_rectify, pii, statuses, wait_until

S1, S2, S3 = 1001, 1002, 1003


async def test_happy_path_across_services(daemon_for, sim, settings_for, engine, pg):
    """Forget and rectify requests for three services all end submitted with the API's ids and a full history."""
    ids = await insert_forget(pg, S1, 5) + await insert_forget(pg, S2, 5)
    values = {await insert_rectify(pg, S3, v): v for v in (pii(1), pii(2))}
    report = await (await daemon_for(settings_for())).run_once()
    assert report.submitted == 12 and report.failed == report.rejected == 0

    rows = await pg.fetch("SELECT * FROM gdpr_requests ORDER BY id")
    assert {r["status"] for r in rows} == {"submitted"}
    calls = {c.id: c for c in sim.state.gdpr_calls}
    assert len(calls) == 12
    for r in rows:
        call = calls[r["ownbackup_request_id"]]
        assert (call.service_id, call.record_id, call.kind) == (r["service_id"], r["record_id"], r["request_type"])
        assert r["submitted_at"] is not None and r["attempts"] == 1 and r["lease_owner"] is None
    for rid, value in values.items():
        row = next(r for r in rows if r["id"] == rid)
        assert row["value"] is None, "the rectify value is erased once submitted"
        assert row["value_sha256"] == hashlib.sha256(value.encode()).hexdigest()
    history = await pg.fetch("SELECT request_id, from_status, to_status, detail FROM gdpr_request_log ORDER BY id")
    for rid in ids:
        steps = [(h["from_status"], h["to_status"]) for h in history if h["request_id"] == rid]
        assert steps == [(None, "pending"), ("pending", "in_flight"), ("in_flight", "submitted"), ("submitted", "submitted")]
        last = [h["detail"] for h in history if h["request_id"] == rid][-1]
        assert last.startswith("confirmed by OwnBackup event "), "run --once pulled the confirming event"


async def test_value_kept_when_erasure_disabled(daemon_for, sim, settings_for, engine, pg):
    """With queue_erase_value_after_submit off the value stays, and its digest is still recorded."""
    value = pii("keep")
    rid = await insert_rectify(pg, S1, value)
    await (await daemon_for(settings_for(queue_erase_value_after_submit=False))).run_once()
    row = await pg.fetchrow("SELECT value, value_sha256, status FROM gdpr_requests WHERE id = $1", rid)
    assert row["status"] == "submitted" and row["value"] == value
    assert row["value_sha256"] == hashlib.sha256(value.encode()).hexdigest()


async def test_unknown_service_is_rejected(daemon_for, sim, settings_for, engine, pg):
    """A service id the account does not have ends rejected with a sentence naming it; others go on."""
    (bad,) = await insert_forget(pg, 4242)
    (good,) = await insert_forget(pg, S1)
    report = await (await daemon_for(settings_for())).run_once()
    assert (report.submitted, report.rejected) == (1, 1)
    row = await pg.fetchrow("SELECT status, last_error, attempts FROM gdpr_requests WHERE id = $1", bad)
    assert row["status"] == "rejected"
    assert "Service 4242 is not one of the OwnBackup account's services" in row["last_error"]
    assert await pg.fetchval("SELECT status FROM gdpr_requests WHERE id = $1", good) == "submitted"
    assert not [c for c in sim.state.gdpr_calls if c.service_id == 4242]


async def test_invalid_table_name_is_rejected(daemon_for, sim, settings_for, engine, pg):
    """A table name that is not a Salesforce API name is rejected by the daemon, never sent."""
    rid = await pg.fetchval(
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id) "
        "VALUES ('forget', $1, 'Contact; DROP', '003x') RETURNING id", S1
    )
    await (await daemon_for(settings_for())).run_once()
    row = await pg.fetchrow("SELECT status, last_error FROM gdpr_requests WHERE id = $1", rid)
    assert row["status"] == "rejected" and "not a Salesforce object API name" in row["last_error"]
    assert sim.state.gdpr_calls == []


async def test_permanent_error_fails_with_api_message(daemon_for, sim, settings_for, engine, pg):
    """A 4xx answer ends the request failed after one attempt, with the API's message in last_error."""
    sim.faults = FaultConfig(rejecting_services=frozenset({S2}))
    (rid,) = await insert_forget(pg, S2)
    await (await daemon_for(settings_for())).run_once()
    row = await pg.fetchrow("SELECT status, last_error, attempts FROM gdpr_requests WHERE id = $1", rid)
    assert row["status"] == "failed" and row["attempts"] == 1
    assert "400" in row["last_error"]


async def _run_until_drained(daemon_for, settings, engine, pg, *, timeout: float = 30.0, before=None) -> None:
    """Run the daemon; once it is up, call ``before`` (set faults, insert rows); stop when drained."""
    daemon = await daemon_for(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    try:
        await asyncio.wait_for(daemon.ready.wait(), 10)
        if before is not None:
            await before()
        await wait_until(
            lambda: pg.fetchval("SELECT count(*) = 0 FROM gdpr_requests WHERE status IN ('pending', 'in_flight')"),
            timeout=timeout, what="the queue to drain",
        )  # fmt: skip
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 15) == 0


async def test_429_burst_is_retried_then_submitted(daemon_for, sim, settings_for, engine, pg):
    """429 answers (Retry-After 0) are transient: the requests wait and then go through."""

    async def arrange():
        sim.faults = FaultConfig(burst_429=6, retry_after_s=0)
        await insert_forget(pg, S1, 4)

    await _run_until_drained(daemon_for, settings_for(), engine, pg, before=arrange)
    assert await statuses(pg) == {"submitted": 4}
    assert await pg.fetchval("SELECT count(*) FROM gdpr_request_log WHERE detail LIKE '%429%'") >= 4
    assert len(sim.state.gdpr_calls) == 4


async def test_5xx_is_retried_then_submitted(daemon_for, sim, settings_for, engine, pg):
    """Server errors (HTML or JSON 5xx) are transient and retried with backoff until submitted."""
    async def arrange():
        sim.faults = FaultConfig(rate_5xx=0.5, seed=3)
        await insert_forget(pg, S1, 10)

    await _run_until_drained(daemon_for, settings_for(queue_max_attempts=30), engine, pg, before=arrange)
    assert await statuses(pg) == {"submitted": 10}
    assert await pg.fetchval("SELECT max(attempts) FROM gdpr_requests") > 1
    assert len(sim.state.gdpr_calls) == 10, "a 5xx carried nothing out, so each request went through once"


async def test_timeout_is_retried(daemon_for, sim, settings_for, engine, pg):
    """A call that hangs past the client timeout is transient; the retry submits it."""
    daemon = await daemon_for(settings_for(ownbackup_timeout_seconds=0.3))
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    try:
        await asyncio.wait_for(daemon.ready.wait(), 10)
        sim.faults = FaultConfig(hang_ms=2000, hang_rate=1.0)
        (rid,) = await insert_forget(pg, S1)
        retried = "SELECT detail FROM gdpr_request_log WHERE request_id=$1 AND from_status='in_flight' AND to_status='pending'"
        detail = await wait_until(lambda: pg.fetchval(retried, rid), what="a timed-out attempt")
        sim.faults = FaultConfig()
        await wait_until(lambda: pg.fetchval("SELECT status = 'submitted' FROM gdpr_requests WHERE id=$1", rid),
                         what="the retry to submit")  # fmt: skip
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    assert "did not answer" in detail and "next attempt in" in detail
    assert "outcome unknown" in detail, "a timed-out call may have been carried out; the history says so"


async def test_failing_service_exhausts_attempts(daemon_for, sim, settings_for, engine, pg):
    """A service whose calls always answer 500 ends failed after max_attempts, saying so."""
    sim.faults = FaultConfig(failing_services=frozenset({S3}))
    (rid,) = await insert_forget(pg, S3)
    (ok,) = await insert_forget(pg, S1)
    await _run_until_drained(daemon_for, settings_for(queue_max_attempts=3), engine, pg)
    row = await pg.fetchrow("SELECT status, attempts, last_error FROM gdpr_requests WHERE id=$1", rid)
    assert row["status"] == "failed" and row["attempts"] == 3
    assert "gave up after 3 attempts" in row["last_error"] and "500" in row["last_error"]
    assert await pg.fetchval("SELECT status FROM gdpr_requests WHERE id=$1", ok) == "submitted"


async def test_expired_session_relogs_in_once(daemon_for, sim, settings_for, engine, pg):
    """A session that dies mid-run causes one re-login, and every request is still submitted once."""
    sim.faults = FaultConfig(session_expiry_after_calls=3)
    await insert_forget(pg, S1, 5)
    settings = settings_for(queue_concurrency=1)
    await (await daemon_for(settings)).run_once()
    assert await statuses(pg) == {"submitted": 5}
    assert len(sim.state.gdpr_calls) == 5
    assert sim.stats.logins >= 2


async def test_notify_wakes_daemon_quickly(daemon_for, sim, settings_for, engine, pg):
    """An INSERT on an idle daemon is submitted well within a second, without waiting for the poll."""
    daemon = await daemon_for(settings_for(queue_poll_interval_seconds=60))
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    try:
        await asyncio.wait_for(daemon.ready.wait(), 10)
        await asyncio.sleep(0.2)
        (rid,) = await insert_forget(pg, S1)
        await wait_until(lambda: pg.fetchval("SELECT status = 'submitted' FROM gdpr_requests WHERE id=$1", rid),
                         timeout=5, what="NOTIFY pickup")  # fmt: skip
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
