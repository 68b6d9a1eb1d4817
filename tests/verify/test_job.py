"""The daemon's verification job (verify_after_hours): what it picks, what it records, when it
reads a backup again, one replica at a time, and that `gdpr-daemon run` schedules it."""

from __future__ import annotations

import asyncio

import asyncpg

from gdpr_daemon.db.verification import verify_lock
from gdpr_daemon.ownbackup import OwnBackupClient
from gdpr_daemon.runtime import client_config
from gdpr_daemon.verify.job import RoundResult, VerifyJob, interval_seconds
from tests.helpers import wait_until
from tests.verify.conftest import back_up_now, contact, enter_forget, history, submit_all


def csv_reads(vsim) -> int:  # type: ignore[no-untyped-def]
    """How many CSV downloads the simulator has answered."""
    return sum(n for key, n in vsim.sim.stats.calls.items() if key.endswith(".csv"))


def details(rows: list[asyncpg.Record]) -> list[str]:
    return [r["detail"] for r in rows if r["detail"].startswith(("verified: ", "still present"))]


async def test_job_records_still_present_once_then_verified(pg, engine, vsim, vsettings) -> None:  # type: ignore[no-untyped-def]
    """A round records "still present in backup N"; rounds without a newer backup record nothing more
    (and read no CSV); once a newer backup exists the next round records the verification."""
    settings = vsettings()
    rid = await enter_forget(pg, contact(30))
    running = await back_up_now(settings, vsim, complete=False)
    await submit_all(settings)
    vsim.clock.advance(10)
    async with OwnBackupClient(client_config(settings)) as client:
        job = VerifyJob(engine, client, after_hours=0, actor="verify-job")
        assert await job.run() == RoundResult(still_present=1)
        (first,) = details(await history(pg, rid))
        assert first.startswith(f"still present in backup {running} ")
        reads = csv_reads(vsim)
        assert reads == 1
        assert await job.run() == RoundResult(not_yet=1)
        assert csv_reads(vsim) == reads, "no CSV read again"
        assert len(details(await history(pg, rid))) == 1

        later = await back_up_now(settings, vsim)
        assert await job.run() == RoundResult(verified=1)
        assert details(await history(pg, rid))[-1].startswith(f"verified: record absent from backup {later} ")
        assert await job.run() == RoundResult(), "a verified request is not looked at again"
    assert (await history(pg, rid))[-1]["actor"] == "verify-job"


async def test_job_waits_the_configured_hours(pg, engine, vsim, vsettings) -> None:  # type: ignore[no-untyped-def]
    """A request submitted less than verify_after_hours ago is not looked at."""
    settings = vsettings()
    await enter_forget(pg, contact(31))
    await submit_all(settings)
    await back_up_now(settings, vsim)
    async with OwnBackupClient(client_config(settings)) as client:
        assert await VerifyJob(engine, client, after_hours=1, actor="j").run() == RoundResult()
        assert await VerifyJob(engine, client, after_hours=0, actor="j").run() == RoundResult(verified=1)


async def test_one_replica_at_a_time(pg, engine, vsim, vsettings) -> None:  # type: ignore[no-untyped-def]
    """While another process holds the job's advisory lock, a round is skipped and records nothing."""
    settings = vsettings()
    rid = await enter_forget(pg, contact(32))
    await submit_all(settings)
    await back_up_now(settings, vsim)
    async with OwnBackupClient(client_config(settings)) as client, verify_lock(engine) as held:
        assert held
        assert await VerifyJob(engine, client, after_hours=0, actor="j").run() == RoundResult(skipped_locked=True)
    assert details(await history(pg, rid)) == []


async def test_daemon_runs_the_job_when_configured(daemon_for, pg, engine, vsim, vsettings) -> None:  # type: ignore[no-untyped-def]
    """`gdpr-daemon run` with verify_after_hours set verifies a submitted request on its own."""
    settings = vsettings(verify_after_hours=0.0001, events_pull_interval_seconds=3600)
    rid = await enter_forget(pg, contact(33))
    await submit_all(settings)
    await back_up_now(settings, vsim)
    stop = asyncio.Event()
    run = asyncio.create_task((await daemon_for(settings)).run(stop))
    try:
        await wait_until(lambda: _verified(pg, rid), timeout=30, what="the job's verification row")
    finally:
        stop.set()
        assert await asyncio.wait_for(run, 30) == 0
    assert (await history(pg, rid))[-1]["actor"] == "test-daemon"


async def _verified(pg: asyncpg.Connection, rid: int) -> bool:
    return any(d.startswith("verified: ") for d in details(await history(pg, rid)))


def test_interval_follows_the_setting() -> None:
    """The job runs at half the waiting time, at least every hour and at most every 5 seconds."""
    assert interval_seconds(48) == 3600 and interval_seconds(0.5) == 900 and interval_seconds(0.0001) == 5
