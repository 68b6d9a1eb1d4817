"""No request lost, none sent twice without the history saying so: the daemon SIGKILLed over and over."""

from __future__ import annotations

import asyncio
import os
import random
import time

import pytest

from gdpr_daemon.db.integrity import verify_chains
from gdpr_daemon.simulator import FaultConfig
from tests.helpers import insert_forget, insert_rectify, log_events, pii, wait_for_log, wait_until
from tests.integrity.support import check_invariants, check_reaped, start_daemon, stop_daemon

ROUNDS = 10
TIME_BUDGET = 30.0  # seconds of kill rounds at most; then one daemon finishes the queue
DAEMON_ENV = {
    "GDPR_DAEMON_QUEUE_CONCURRENCY": "16",
    "GDPR_DAEMON_QUEUE_LEASE_SECONDS": "3",
    "GDPR_DAEMON_QUEUE_MAX_ATTEMPTS": "12",
    "GDPR_DAEMON_QUEUE_SHUTDOWN_TIMEOUT_SECONDS": "5",
}


@pytest.mark.slow
async def test_sigkill_at_random_moments_loses_nothing(sim, db_url, sim_url, pg, log_file, engine):
    """2,500 requests, the daemon SIGKILLed at random moments and restarted: all finish, duplicates only where noted;
    a killed process's claims come back as never sent where no call was made for them, and as outcome unknown
    at most for the calls it had under way (concurrency of them a kill)."""
    seed = int(os.environ.get("GDPR_TEST_SEED") or random.SystemRandom().randrange(1 << 30))
    rng = random.Random(seed)
    print(f"\nseed {seed} (GDPR_TEST_SEED reproduces the kill moments)")
    for i, service in enumerate((1001, 1002, 1003, 1004)):
        await insert_forget(pg, service, 575, prefix=f"K{i}")
    values = {await insert_rectify(pg, 1001 + n % 4, pii(n), field="Email") for n in range(150)}
    await pg.execute("UPDATE gdpr_requests SET record_id = 'R' || id WHERE request_type = 'rectify'")
    await insert_forget(pg, 4242, 25, prefix="UNKNOWN")  # not the account's: rejected
    await insert_forget(pg, 1005, 25, prefix="FAILING")  # always 500: failed after its attempts
    total = await pg.fetchval("SELECT count(*) FROM gdpr_requests")
    sim.faults = FaultConfig(latency_ms=15, latency_jitter_ms=30, failing_services=[1005], seed=seed)

    started = time.monotonic()
    kills = 0
    for rnd in range(ROUNDS):
        if time.monotonic() - started > TIME_BUDGET:
            break
        if not await pg.fetchval("SELECT count(*) FROM gdpr_requests WHERE status IN ('pending', 'in_flight')"):
            break
        proc = await start_daemon(db_url, sim_url, log_file, GDPR_DAEMON_INSTANCE_NAME=f"round-{rnd}", **DAEMON_ENV)
        await asyncio.sleep(rng.uniform(0.3, 3.0))
        if rnd == 3:  # the API down as well: every call 5xx for a second, then back
            sim.faults = FaultConfig(rate_5xx=1.0, failing_services=[1005], seed=seed)
            await asyncio.sleep(1.0)
            sim.faults = FaultConfig(latency_ms=15, latency_jitter_ms=30, failing_services=[1005], seed=seed)
        proc.kill()
        await asyncio.wait_for(proc.wait(), 10)
        kills += 1

    started_before = log_events(log_file)["daemon_started"]
    proc = await start_daemon(db_url, sim_url, log_file, GDPR_DAEMON_INSTANCE_NAME="final", **DAEMON_ENV)
    try:
        # Up before it is asked to stop: a SIGTERM while Python is still importing ends any
        # process by the signal (-15), and the rounds may have finished the queue already.
        await wait_for_log(log_file, "daemon_started", more_than=started_before, timeout=30)
        await wait_until(
            lambda: pg.fetchval("SELECT count(*) = 0 FROM gdpr_requests WHERE status IN ('pending', 'in_flight')"),
            timeout=90, interval=0.25, what="the final daemon to finish the queue",
        )  # fmt: skip
    finally:
        code = await stop_daemon(proc)
    assert code == 0

    counts = await check_invariants(pg, sim)
    starts = await check_reaped(pg, sim)
    print(f"{kills} kills, {total} requests: {counts}; {starts}")
    assert counts.get("rejected") == 25 and counts["submitted"] + counts.get("failed", 0) == total - 25
    crashed = starts["reaped_unknown"] + starts["never_sent"]
    assert kills == 0 or crashed >= 1, "claims held by killed processes came back through their leases"
    concurrency = int(DAEMON_ENV["GDPR_DAEMON_QUEUE_CONCURRENCY"])
    assert starts["reaped_unknown"] <= kills * concurrency, "a killed process leaves at most its running calls unknown"
    assert not await pg.fetchval(
        "SELECT count(*) FROM gdpr_requests WHERE id = ANY($1) AND status = 'submitted' AND value IS NOT NULL", list(values)
    ), "every submitted rectify value is erased"
    assert all(r.ok for r in await verify_chains(engine)), "the hash chain survived every kill"
