"""The queue worker: claims due requests, submits each to OwnBackup, records the outcome.

Lifecycle: :meth:`QueueWorker.run` until its stop event is set, then :meth:`drain`.
Concurrency is bounded globally (``concurrency``) and per service; each claimed request
runs in its own named task.  Outcomes go through a group-commit recorder: every outcome
updates its row and writes its history in one transaction, and outcomes that finish
together share that transaction, which is what lets one process keep up with thousands
of submissions a second.  A claimed request makes its call only once it holds its call
slots *and* its start is committed (the :class:`Starter`, group-committed as well), so
after a crash the claims that were never sent are told from those whose outcome is
unknown.  Claims held are bounded by what can start soon (twice ``concurrency``).
Nothing here builds SQL (see ``db/queue.py``) or HTTP (see ``ownbackup/``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from structlog.contextvars import bind_contextvars

from gdpr_daemon import metrics
from gdpr_daemon.db.queue import ClaimedRequest, Outcome, QueueStore
from gdpr_daemon.errors import db_errors
from gdpr_daemon.logs import get_logger
from gdpr_daemon.ownbackup import (
    AuthenticationError,
    BadAnswer,
    OwnBackupError,
    PermanentError,
    RequestTimeout,
    RetryPolicy,
)
from gdpr_daemon.rules import FAILED, FORGET, PENDING, REJECTED, SUBMITTED, submission_problem
from gdpr_daemon.submit.recorder import Recorder, Starter
from gdpr_daemon.submit.services import ServiceDirectory
from gdpr_daemon.submit.wait import first_set

log = get_logger(__name__)


class GdprApi(Protocol):
    """What the worker needs of the OwnBackup client."""

    async def gdpr_forget(
        self, service_id: int, *, record_id: str, table_name: str, comment: str | None = None
    ) -> Any: ...

    async def gdpr_rectify(
        self,
        service_id: int,
        *,
        record_id: str,
        table_name: str,
        field: str,
        value: str,
        comment: str | None = None,
    ) -> Any: ...


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    concurrency: int = 32
    per_service_concurrency: int = 8
    claim_batch: int = 200
    max_attempts: int = 8
    lease_seconds: float = 30.0
    poll_interval: float = 5.0
    shutdown_timeout: float = 20.0
    backoff_base: float = 5.0
    backoff_max: float = 900.0


# Claims held beyond those whose calls run, as a fraction of concurrency; claimed as one
# batch once that many slots are free (measured with bench/drain.py, see _room).
PREFETCH_FRACTION = 1.0

# Per outcome: the log event and the metric child (looked up once, not per request).
_OUTCOMES = {
    SUBMITTED: ("request_submitted", metrics.SUBMISSIONS.labels(outcome="submitted")),
    PENDING: ("request_retry_scheduled", metrics.SUBMISSIONS.labels(outcome="retry")),
    FAILED: ("request_failed", metrics.SUBMISSIONS.labels(outcome="failed")),
    REJECTED: ("request_rejected", metrics.SUBMISSIONS.labels(outcome="rejected")),
}


class QueueWorker:
    def __init__(
        self,
        store: QueueStore,
        api: GdprApi,
        services: ServiceDirectory,
        settings: WorkerSettings,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.api = api
        self.services = services
        self.settings = settings
        self.retry = RetryPolicy(
            base=settings.backoff_base, max_delay=settings.backoff_max, max_retries=settings.max_attempts
        )
        self.rng = rng or random.SystemRandom()
        self.starter = Starter(store)
        self.recorder = Recorder(store, on_retry_due=self._schedule_wake, on_written=self.starter.forget)
        self._wake = asyncio.Event()
        self._slot = asyncio.Event()
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._started: set[int] = set()  # holding their call slots, asked to be started (the drain waits for these)
        self._calling: set[int] = set()  # started, the call under way
        self._list_failures = 0  # the service list could not be fetched, this many times in a row
        self._list_backoff = 0.5
        self._per_service: Counter[int] = Counter()
        self._service_sems: dict[int, asyncio.Semaphore] = {}
        self._calls = asyncio.Semaphore(settings.concurrency)
        self._claiming = True
        self._bg: list[asyncio.Task[None]] = []
        self._bg_stop = asyncio.Event()

    # ---- wake-ups -----------------------------------------------------------------

    def wake(self) -> None:
        """Something may be due (a NOTIFY, the poll job, a retry whose time came)."""
        self._wake.set()

    def _schedule_wake(self, delay: float) -> None:
        asyncio.get_running_loop().call_later(max(delay, 0.0) + 0.05, self._wake.set)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    # ---- the claim loop -------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and submit until ``stop`` is set, then drain within the shutdown bound."""
        self._start_background()
        backoff = 0.5
        try:
            while not stop.is_set():
                want = self._room()
                if want <= 0:
                    self._slot.clear()
                    await first_set(self._slot, stop, timeout=self.settings.poll_interval)
                    continue
                if not await self._services_ready(stop):
                    continue
                self._wake.clear()
                try:
                    claimed = await self.store.claim(want, self._busy_services())
                except db_errors() as exc:
                    log.warning("database_unavailable", action="claim", error=type(exc).__name__,
                                retry_in=round(backoff, 1))  # fmt: skip
                    await first_set(stop, timeout=backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                backoff = 0.5
                for req in claimed:
                    self._spawn(req)
                if len(claimed) < want:
                    await first_set(self._wake, stop, timeout=self.settings.poll_interval)
        finally:
            await self.drain()
            await self._stop_background()

    async def run_once(self) -> None:
        """Submit every request due now, wait for the outcomes, then return (``run --once``)."""
        self._start_background()
        try:
            while True:
                want = self._room()
                if want > 0:
                    claimed = await self.store.claim(want, self._busy_services())
                    for req in claimed:
                        self._spawn(req)
                    if claimed:
                        continue
                    if not self._tasks:
                        break
                self._slot.clear()
                await self._slot.wait()
        finally:
            await self.drain()
            await self._stop_background()

    async def _services_ready(self, stop: asyncio.Event) -> bool:
        """Whether the account's service list is loaded, trying to load it if not.

        Without it no claim could start (each would wait its turn to fetch the list while
        holding its claim), so none is made: the requests wait, pending, until the API
        answers again.  Tried again with backoff, up to every 5 s (each try is one call,
        retried by the client as every GET is).
        """
        if self.services.ids is not None:
            return True
        try:
            await self.services.refresh()
        except OwnBackupError as exc:
            log.warning("services_unavailable", error=str(exc), retry_in=round(self._list_backoff, 1),
                        hint="no request is claimed until the account's service list can be read")  # fmt: skip
            await first_set(stop, timeout=self._list_backoff)
            self._list_backoff = min(self._list_backoff * 2, 5.0)
            return False
        self._list_backoff = 0.5
        return True

    def _start_background(self) -> None:
        self.store.open_lanes()
        self._bg_stop = asyncio.Event()
        self._bg = [
            asyncio.create_task(self.recorder.run(self._bg_stop), name="outcome-recorder"),
            asyncio.create_task(self.starter.run(self._bg_stop), name="call-starter"),
            asyncio.create_task(self._renew_loop(self._bg_stop), name="lease-renewer"),
        ]

    async def _stop_background(self) -> None:
        self._bg_stop.set()
        done, pending = await asyncio.wait(self._bg, timeout=self.settings.shutdown_timeout)
        for t in pending:
            t.cancel()
        for t in done:
            if not t.cancelled() and t.exception() is not None:
                log.error("background_task_failed", task=t.get_name(), error=repr(t.exception()))
        await self.store.close_lanes()

    async def _renew_loop(self, stop: asyncio.Event) -> None:
        interval = self.settings.lease_seconds / 3
        while not stop.is_set():
            await first_set(stop, timeout=interval)
            await self.renew_leases()

    @staticmethod
    def _prefetch(limit: int) -> int:
        return max(1, math.ceil(limit * PREFETCH_FRACTION))

    def _room(self) -> int:
        """How many rows to claim now: 0 until a worthwhile batch fits.

        The worker holds at most ``concurrency`` claims whose calls run plus as many
        waiting for a slot (the calls themselves are bounded by semaphores), and claims
        those as one batch, so the claim and outcome statements work in batches instead of
        a row per finished call while a crash leaves few claims to come back.  Claims
        waiting their turn keep their lease renewed.  (Measured with bench/drain.py: four
        times concurrency, as before, drained no faster.)
        """
        limit = self.settings.concurrency
        batch = self._prefetch(limit)
        room = limit + batch - len(self._tasks)
        if room < batch and self._tasks:
            return 0
        return min(room, self.settings.claim_batch)

    def _busy_services(self) -> list[int]:
        limit = self.settings.per_service_concurrency
        limit += self._prefetch(limit)
        return [sid for sid, n in self._per_service.items() if n >= limit]

    def _spawn(self, req: ClaimedRequest) -> None:
        self._per_service[req.service_id] += 1
        task = asyncio.create_task(self._work(req), name=f"submit-request-{req.id}")
        self._tasks[req.id] = task
        task.add_done_callback(lambda _t: self._done(req))

    def _done(self, req: ClaimedRequest) -> None:
        self._tasks.pop(req.id, None)
        self._started.discard(req.id)
        self._calling.discard(req.id)
        self._per_service[req.service_id] -= 1
        if self._per_service[req.service_id] <= 0:
            del self._per_service[req.service_id]
        if self._room() > 0:  # the claim loop waits for room for a whole batch: no wake-up before
            self._slot.set()

    # ---- one request ------------------------------------------------------------------

    async def _work(self, req: ClaimedRequest) -> None:
        # Every line logged while this request is worked on names it: the worker's, the
        # client's, the transport's and the libraries'.  The task runs in its own copy of
        # the context (see _spawn), so the binding is this request's alone and ends with
        # the task: nothing to undo.
        bind_contextvars(request_id=req.id, service_id=req.service_id, attempt=req.attempts)
        try:
            outcome = await self._attempt(req)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not lose the request or stop the daemon
            log.exception("internal_error")
            message = f"internal error in gdpr-daemon ({type(exc).__name__})"
            called = req.id in self._calling
            outcome = self._retry_or_fail(req, message, None) if called else self._later(req, message, None)
        if outcome is None:
            return
        event, counter = _OUTCOMES[outcome.status]
        counter.inc()
        if outcome.status == SUBMITTED:
            log.info(event, ownbackup_request_id=outcome.ownbackup_request_id)
        elif outcome.status == PENDING:
            log.info(event, error=outcome.error, retry_in=round(outcome.retry_in, 1))
        else:
            log.warning(event, error=outcome.error)
        self.recorder.put(outcome)

    async def _attempt(self, req: ClaimedRequest) -> Outcome | None:
        """The outcome of one claim; None when the claim was lost before its call (nothing to record)."""
        reason = submission_problem(req)
        if reason:
            return Outcome(req.id, REJECTED, f"rejected: {reason}", error=reason, called=False)
        try:
            known = await self.services.contains(req.service_id)
        except OwnBackupError as exc:
            self._list_failures += 1
            return self._later(req, f"could not check the service list: {exc}", exc)
        self._list_failures = 0
        if not known:
            reason = (
                f"Service {req.service_id} is not one of the OwnBackup account's services; "
                "correct service_id (see `gdpr-daemon services`) and retry the request."
            )
            return Outcome(req.id, REJECTED, f"rejected: {reason}", error=reason, called=False)
        sem = self._service_sems.setdefault(
            req.service_id, asyncio.Semaphore(self.settings.per_service_concurrency)
        )
        async with self._calls, sem:
            if not self._claiming:
                raise asyncio.CancelledError  # shutting down before the call started
            self._started.add(req.id)
            if not await self._start(req):
                return None
            self._calling.add(req.id)
            try:
                if req.request_type == FORGET:
                    answer = await self.api.gdpr_forget(
                        req.service_id, record_id=req.record_id, table_name=req.table_name, comment=req.comment
                    )
                else:
                    assert req.field is not None and req.value is not None
                    answer = await self.api.gdpr_rectify(
                        req.service_id, record_id=req.record_id, table_name=req.table_name,
                        field=req.field, value=req.value, comment=req.comment,
                    )  # fmt: skip
            except AuthenticationError as exc:
                # The account's credentials, not this request, are wrong: keep it and retry.
                return self._retry_or_fail(req, str(exc), exc, never_fail=True)
            except PermanentError as exc:
                return Outcome(req.id, FAILED, f"attempt {req.attempts} refused: {exc}", error=str(exc))
            except OwnBackupError as exc:
                return self._retry_or_fail(req, str(exc), exc)
        return Outcome(
            req.id, SUBMITTED, f"submitted to OwnBackup: request id {answer.id}", ownbackup_request_id=answer.id
        )

    async def _start(self, req: ClaimedRequest) -> bool:
        """Have the claim's start committed before its call; False when the claim was lost (do not call)."""
        while True:
            answer = await self.starter.start(req.id)
            if answer == "started":
                return True
            if answer == "lost":
                log.info("claim_lost", hint="its lease expired and another process took it over; not sent")
                return False
            # Its lease has less than the margin left (the database was away, say): renew, then again.
            try:
                await self.store.renew_leases([req.id])
            except db_errors() as exc:
                log.warning("database_unavailable", action="renew a lease", error=type(exc).__name__)
                await asyncio.sleep(1.0)

    def _later(self, req: ClaimedRequest, message: str, exc: BaseException | None) -> Outcome:
        """Before any call: back to pending for later, the attempt not counted (waits grow while the cause lasts)."""
        delay = self.retry.delay(max(self._list_failures, 1), exc, self.rng)
        return Outcome(
            req.id, PENDING, f"not sent, {message}; next try in {delay:.0f} s",
            error=message, retry_in=delay, called=False,
        )  # fmt: skip

    def _retry_or_fail(
        self, req: ClaimedRequest, message: str, exc: BaseException | None, *, never_fail: bool = False
    ) -> Outcome:
        # The call may have been carried out although we never saw the answer: say so, so
        # that a second submission of the same request is explained in its history.
        unknown = ""
        if isinstance(exc, RequestTimeout | BadAnswer):
            unknown = " (outcome unknown, OwnBackup may have carried it out)"
        if req.attempts >= self.settings.max_attempts and not never_fail:
            retry = f"retry with `gdpr-daemon requests retry {req.id}`"
            error = f"{message} (gave up after {req.attempts} attempts; {retry})"
            detail = f"attempt {req.attempts} failed{unknown}, no attempts left: {message}"
            return Outcome(req.id, FAILED, detail, error=error)
        delay = self.retry.delay(req.attempts, exc, self.rng)
        return Outcome(
            req.id, PENDING, f"attempt {req.attempts} failed{unknown}: {message}; next attempt in {delay:.0f} s",
            error=message, retry_in=delay,
        )  # fmt: skip

    # ---- leases and shutdown ------------------------------------------------------------

    async def renew_leases(self) -> None:
        """Extend the leases of the claims this process works on (only those: a claim it lost track of lapses)."""
        if self._tasks:
            try:
                await self.store.renew_leases(list(self._tasks))
            except db_errors() as exc:
                log.warning("database_unavailable", action="renew leases", error=type(exc).__name__)

    async def drain(self, timeout: float | None = None) -> None:
        """Stop claiming; let started calls finish (bounded); release the rest."""
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        self._claiming = False
        unstarted = [rid for rid in self._tasks if rid not in self._started]
        for rid in unstarted:
            self._tasks[rid].cancel()
        if self._tasks:
            log.info("draining", in_flight=len(self._tasks), bound_seconds=timeout)
            await asyncio.wait(list(self._tasks.values()), timeout=max(deadline - time.monotonic(), 0.1))
        cut = [rid for rid, t in self._tasks.items() if not t.done()]
        called = [rid for rid in cut if rid in self._calling]
        unstarted += [rid for rid in cut if rid not in self._calling]  # waiting for their start: no call made
        for rid in cut:
            self._tasks[rid].cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait(list(self._tasks.values()), timeout=1.0)
        await self._release(unstarted, started=False, detail="released unstarted at shutdown")
        await self._release(
            called,
            started=True,
            detail="call cut off at shutdown after the drain bound: outcome unknown, it will be submitted again",
        )
        await self.recorder.flushed(max(deadline - time.monotonic(), 2.0))

    async def _release(self, ids: Sequence[int], *, started: bool, detail: str) -> None:
        if not ids:
            return
        try:
            n = await self.store.release(ids, started=started, detail=detail)
            log.info("released", count=n, started=started)
        except db_errors() as exc:
            log.warning("release_failed", count=len(ids), error=type(exc).__name__,
                        hint="the reaper of any replica returns them when their lease expires")  # fmt: skip
