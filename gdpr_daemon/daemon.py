"""The long-running service: queue worker, listener, scheduler, health server, on one runtime.

``Daemon.run`` is the long-running service (until its stop event), ``Daemon.run_once``
the one-shot ``run --once``.  Periodic work runs as APScheduler jobs: the poll that
backs up LISTEN/NOTIFY, the service list refresh and the event pull.  The lease look-out
is a task of its own, because it times itself: it looks at the other processes' claims
every ``queue_reaper_interval_seconds`` and again as soon as the earliest of them expires,
so the claims of a process that stopped are back within about one lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from gdpr_daemon import sdnotify
from gdpr_daemon.audit import EventPuller, PullJob, pull_logged
from gdpr_daemon.config import Settings
from gdpr_daemon.db.engine import safe_url
from gdpr_daemon.db.intake_settings import write_intake_settings
from gdpr_daemon.db.queue import QueueStore
from gdpr_daemon.errors import db_errors
from gdpr_daemon.health import HealthServer, lifecycle_check
from gdpr_daemon.logs import get_logger
from gdpr_daemon.retention import run_purge
from gdpr_daemon.runtime import Runtime, StartupError
from gdpr_daemon.submit.listener import listen
from gdpr_daemon.submit.overdue import log_overdue
from gdpr_daemon.submit.services import ServiceDirectory
from gdpr_daemon.submit.worker import QueueWorker, WorkerSettings
from gdpr_daemon.verify.job import VerifyJob
from gdpr_daemon.verify.job import interval_seconds as verify_interval

log = get_logger(__name__)


def worker_settings(settings: Settings) -> WorkerSettings:
    return WorkerSettings(
        concurrency=settings.queue_concurrency,
        per_service_concurrency=settings.queue_per_service_concurrency,
        max_attempts=settings.queue_max_attempts,
        lease_seconds=settings.queue_lease_seconds,
        poll_interval=settings.queue_poll_interval_seconds,
        shutdown_timeout=settings.queue_shutdown_timeout_seconds,
        backoff_base=settings.queue_backoff_base_seconds,
        backoff_max=settings.queue_backoff_max_seconds,
    )


async def unless_stopped(stop: asyncio.Event, step: Coroutine[Any, Any, None]) -> bool:
    """Run ``step`` unless ``stop`` is set first, which cancels it; whether it finished."""
    task = asyncio.ensure_future(step)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return False
    task.result()  # its error, if it failed
    return True


def add_job(scheduler: AsyncIOScheduler, job: Callable[[], Awaitable[object]], job_id: str, **interval: Any) -> None:
    """An interval job that a shutdown may cut short without a traceback.

    APScheduler logs a job cancelled at shutdown as an error with its traceback; each of
    these jobs is safe to cut short (its transaction rolls back, the next run does the work),
    so its cancellation is noted at debug level and the job ends quietly.
    """

    async def run() -> None:
        try:
            await job()
        except asyncio.CancelledError:
            log.debug("job_cut_short", job=job_id, reason="shutdown")

    scheduler.add_job(run, "interval", id=job_id, name=job_id, **interval)


@dataclass
class OnceReport:
    submitted: int = 0
    retry_later: int = 0
    failed: int = 0
    rejected: int = 0
    events: dict[str, Any] = field(default_factory=dict)
    submit_seconds: float = 0.0  # claiming, submitting and recording every due request
    events_seconds: float = 0.0  # the event pull after the submissions


class Daemon:
    def __init__(self, rt: Runtime) -> None:
        """The service on a runtime opened with the API client (``open_runtime(..., api=True)``)."""
        settings = self.settings = rt.settings
        self.rt = rt
        self.engine = rt.engine
        self.token = secrets.token_hex(8)  # lease owner: random, never a host or pod name
        self.client = rt.client
        self.store = QueueStore(
            self.engine,
            owner=self.token,
            actor=settings.instance_name,
            lease_seconds=settings.queue_lease_seconds,
            erase_value=settings.queue_erase_value_after_submit,
        )
        self.services = ServiceDirectory(self.client.list_services)
        self.worker = QueueWorker(self.store, self.client, self.services, worker_settings(settings))
        assert settings.api_base_url is not None
        # The pull holds a session-level advisory lock, which a transaction-mode pooler
        # breaks: like LISTEN, it uses the direct connection when one is configured.
        self.events = EventPuller(rt.direct_engine, self.client, account=settings.api_base_url,
                                  actor=settings.instance_name)  # fmt: skip
        self.events_job: PullJob | None = None
        self.verify_job: VerifyJob | None = None
        self.ready = asyncio.Event()

    async def _wait_for_database(self, stop: asyncio.Event) -> bool:
        """Wait (with backoff) until Postgres answers; False if stopped first."""
        backoff = 0.5
        while not stop.is_set():
            try:
                return await unless_stopped(stop, self.rt.check_schema())  # False: stopped
            except db_errors() as exc:
                log.warning("database_unavailable", action="start", url=safe_url(self.settings.database_url or ""),
                            error=type(exc).__name__, retry_in=round(backoff, 1))  # fmt: skip
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, 30.0)
        return False

    async def _start_up_steps(self, stop: asyncio.Event) -> bool:
        for step in (self._write_intake_settings, self._refresh_services):
            if not await unless_stopped(stop, step()):
                return False
        return True

    async def _reap(self) -> None:
        await self._watch_leases()

    async def _watch_leases(self) -> float | None:
        """Reap other processes' expired claims (their requests go back to the queue, and
        the worker is woken for them); seconds until the next lease of another process
        expires, None when none is held."""
        try:
            found = await self.store.reap_expired(self.settings.queue_max_attempts)
        except db_errors() as exc:
            log.warning("database_unavailable", action="reap leases", error=type(exc).__name__)
            return None
        if found.reaped:
            log.warning("leases_expired", count=found.reaped, outcome_unknown=found.unknown,
                        never_sent=found.never_sent, hint="a process stopped while holding them")  # fmt: skip
            self.worker.wake()
        return found.next_expiry_in

    async def _lease_lookout(self, stop: asyncio.Event) -> None:
        """:meth:`_watch_leases` every reaper interval, and as soon as the earliest lease of another process expires."""
        interval = self.settings.queue_reaper_interval_seconds
        while not stop.is_set():
            try:
                soonest = await self._watch_leases()
            except Exception as exc:  # a bug must not stop the look-out, nor the daemon
                log.error("lease_lookout_failed", error=repr(exc))
                soonest = None
            delay = interval if soonest is None else min(interval, soonest + 0.05)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(delay, 0.05))

    async def _refresh_services(self) -> None:
        try:
            await self.services.refresh()
        except Exception as exc:
            log.warning("services_refresh_failed", error=str(exc))

    async def _write_intake_settings(self) -> None:
        """Tell the database what intake tools cannot know: four eyes, public holidays."""
        written = await write_intake_settings(
            self.engine,
            require_approval=self.settings.intake_require_approval,
            holidays=self.settings.intake_holidays,
            authoritative=True,
        )
        if written.require_approval_changed:
            log.info("four_eyes_set", require_approval=self.settings.intake_require_approval)
        if written.holidays_added or written.holidays_removed:
            log.info("holidays_written", added=written.holidays_added, removed=written.holidays_removed)

    async def _log_overdue(self) -> None:
        try:
            await log_overdue(self.engine)
        except db_errors() as exc:
            log.warning("database_unavailable", action="log overdue requests", error=type(exc).__name__)

    async def _purge(self) -> None:
        await run_purge(self.engine, self.settings, actor=self.settings.instance_name)

    def _scheduler(self, stop: asyncio.Event) -> AsyncIOScheduler:
        s = self.settings
        scheduler = AsyncIOScheduler(job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30})
        scheduler.add_job(self.worker.wake, "interval", seconds=s.queue_poll_interval_seconds, id="poll")
        add_job(scheduler, self._refresh_services, "refresh-services", seconds=s.queue_services_refresh_seconds)
        # One replica pulls at a time (advisory lock); the others skip the round.
        self.events_job = PullJob(self.events, stop)
        add_job(scheduler, self.events_job.run, "events-pull", seconds=s.events_pull_interval_seconds,
                next_run_time=datetime.now(UTC))  # fmt: skip
        add_job(scheduler, self._purge, "retention-purge", hours=s.retention_purge_interval_hours,
                next_run_time=datetime.now(UTC) + timedelta(minutes=1))  # fmt: skip
        # Hourly; the database lets only the first call of each UTC day log, across replicas.
        add_job(scheduler, self._log_overdue, "log-overdue", hours=1, next_run_time=datetime.now(UTC))
        if s.verify_after_hours > 0:
            # Erasures checked in the backups themselves; one replica at a time (advisory lock).
            self.verify_job = VerifyJob(self.engine, self.client, after_hours=s.verify_after_hours,
                                        actor=s.instance_name, lock_engine=self.rt.direct_engine,
                                        stop=stop)  # fmt: skip
            add_job(scheduler, self._verify, "verify-erasures", seconds=verify_interval(s.verify_after_hours),
                    next_run_time=datetime.now(UTC))  # fmt: skip
        return scheduler

    async def _verify(self) -> None:
        if self.verify_job is not None:
            await self.verify_job.run()

    async def _start_health(self, stop: asyncio.Event) -> HealthServer | None:
        if not self.settings.health_address:
            return None
        server = HealthServer(
            self.settings.health_address,
            self.engine,
            self.client.health,
            ready_check=lifecycle_check(self.ready, stop),
            unconfirmed_after_hours=self.settings.events_unconfirmed_after_hours,
            events_pull_interval=self.settings.events_pull_interval_seconds,
        )
        try:
            await server.start()
        except OSError as exc:
            raise StartupError(
                f"cannot serve health_address {self.settings.health_address} "
                f"(GDPR_DAEMON_HEALTH_ADDRESS): {exc.strerror or exc}"
            ) from None
        return server

    async def run(self, stop: asyncio.Event) -> int:
        """Serve until ``stop`` is set; returns the exit status.

        Under systemd (``Type=notify``) it sends READY=1 once the database answers with a
        current schema, STOPPING=1 as soon as ``stop`` is set, and watchdog pings.
        """
        notifier = asyncio.create_task(sdnotify.supervise(self.ready, stop), name="sd-notify")
        health: HealthServer | None = None
        try:
            health = await self._start_health(stop)
            return await self._serve(stop)
        finally:
            if health is not None:
                await health.stop()
            notifier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await notifier

    async def _serve(self, stop: asyncio.Event) -> int:
        # Each start-up step gives way to a stop: a SIGTERM while Postgres or the API is
        # down (a login being retried, a connect timing out) ends the process at once.
        if not await self._wait_for_database(stop):
            log.info("daemon_stopped", exit_code=0, phase="starting")
            return 0
        # From here on, whatever the API does: the claims of a process that stopped come
        # back within about one lease even while this one still waits for the API.
        lookout = asyncio.create_task(self._lease_lookout(stop), name="lease-lookout")
        started = False
        try:
            started = await self._start_up_steps(stop)
        finally:
            if not started:  # stopped while starting, or a start-up step failed
                lookout.cancel()
                await asyncio.gather(lookout, return_exceptions=True)
        if not started:
            log.info("daemon_stopped", exit_code=0, phase="starting")
            return 0
        scheduler = self._scheduler(stop)
        scheduler.start()
        listen_url = self.settings.database_listen_url or self.settings.database_url
        assert listen_url is not None
        listener = asyncio.create_task(listen(listen_url, self.worker.wake, stop), name="listener")
        worker = asyncio.create_task(self.worker.run(stop), name="queue-worker")
        self.ready.set()
        log.info("daemon_started", instance=self.settings.instance_name, lease_owner=self.token,
                 concurrency=self.settings.queue_concurrency)  # fmt: skip
        exit_code = 0
        done, _ = await asyncio.wait({listener, worker}, return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set():
            for t in done:
                log.error("background_task_died", task=t.get_name(),
                          error=repr(t.exception()) if not t.cancelled() else "cancelled")  # fmt: skip
            exit_code = 1
            stop.set()
        log.info("daemon_stopping")
        lookout.cancel()  # one statement at most, atomic: safe to cut short
        await asyncio.gather(worker, listener, lookout, return_exceptions=True)
        scheduler.shutdown(wait=False)
        if self.events_job is not None:
            await self.events_job.drain(self.settings.queue_shutdown_timeout_seconds)
        log.info("daemon_stopped", exit_code=exit_code)
        return exit_code

    async def run_once(self) -> OnceReport:
        """Submit every due request and pull new events once."""
        await self.rt.check_schema()
        await self._write_intake_settings()
        await self._reap()
        started = time.perf_counter()
        await self.worker.run_once()
        submitted = time.perf_counter()
        # After the submissions, so their confirming events come with this pull.
        pulled = await pull_logged(self.events.pull)
        pulled_at = time.perf_counter()
        w = self.worker.recorder.written
        return OnceReport(
            submitted=w["submitted"],
            retry_later=w["pending"],
            failed=w["failed"],
            rejected=w["rejected"],
            events=dataclasses.asdict(pulled) if pulled else {"failed": True},
            submit_seconds=submitted - started,
            events_seconds=pulled_at - submitted,
        )
