"""The event pull: page after page of ``GET /api/v1/events?from=<cursor>`` into audit_events.

::

    async with OwnBackupClient(config) as client:
        result = await EventPuller(engine, client, account=config.base_url).pull(stop)

One pull: take the advisory lock (another replica pulling -> ``skipped_locked``), read
the cursor (another account's -> :class:`AccountMismatch`), then fetch and store pages
until one is shorter than a full page.  The next page is fetched while the current one
is stored (the cursor it needs is known once the page is parsed), so the API and the
database work at the same time; at most two pages are in memory, whatever the history's
length.  Each page is stored in one transaction with the cursor, so a pull stopped at any
moment -- by ``stop``, an error or a kill -- resumes from the last stored page.

A malformed item is quarantined and counted, and the pull goes on.  A full page in which
no item has a usable ``event_id`` gives no cursor to move to: the pull stops there with
``stalled`` and an error in the log rather than ask for the same page forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from gdpr_daemon import metrics
from gdpr_daemon.audit.parse import PAGE_SIZE, parse_page
from gdpr_daemon.db.audit import AccountMismatch, EventStore, PageOutcome
from gdpr_daemon.logs import get_logger

__all__ = ["AccountMismatch", "EventPuller", "EventSource", "PullJob", "PullResult", "pull_logged"]

log = get_logger("gdpr_daemon.audit")


class EventSource(Protocol):
    """What the puller needs of the API client: one page of events after ``from_id``."""

    async def events(self, from_id: int | None = None) -> list[object]: ...


@dataclass(frozen=True, slots=True)
class PullResult:
    pages: int = 0
    stored: int = 0  # new events in audit_events
    duplicates: int = 0  # events served again that were stored already
    quarantined: int = 0  # new items in audit_quarantine
    cursor: int | None = None  # the stored cursor at the end
    skipped_locked: bool = False  # another process was pulling; nothing done
    confirmed: int = 0  # requests confirmed by GDPR events
    stalled: bool = False  # a full page without any event_id: cannot move past it
    stopped: bool = False  # ``stop`` was set before the end of the history

    def summary(self) -> str:
        if self.skipped_locked:
            return "another process is pulling events now; skipped"
        text = (f"{self.pages} page{'' if self.pages == 1 else 's'}, {self.stored} events stored, "
                f"{self.duplicates} already stored, "
                f"{self.quarantined} quarantined, {self.confirmed} requests confirmed; "
                f"cursor {self.cursor if self.cursor is not None else 'none'}")  # fmt: skip
        if self.stalled:
            text += " (stalled on a page without any event_id, see the log)"
        elif self.stopped:
            text += " (stopped before the end)"
        return text


Progress = Callable[[PullResult], None]


class EventPuller:
    """Pulls the account event history into audit_events; one instance per client."""

    def __init__(
        self,
        engine: AsyncEngine,
        client: EventSource,
        *,
        account: str | None = None,
        actor: str = "gdpr-daemon",
        page_size: int = PAGE_SIZE,
        progress: Progress | None = None,
    ) -> None:
        if account is None:
            account = getattr(getattr(client, "config", None), "base_url", None)
            if not account:
                raise ValueError("EventPuller needs the account: the API base URL")
        self.store = EventStore(engine, account=account.rstrip("/"), actor=actor)
        self.client = client
        self.page_size = page_size
        self.progress = progress

    async def pull(self, stop: asyncio.Event | None = None) -> PullResult:
        """Pull every new event once; see the module docstring."""
        stop = stop or asyncio.Event()
        started = time.monotonic()
        async with self.store.pull_lock() as session:
            if session is None:
                log.debug("events_pull_skipped", reason="another process holds the pull lock")
                return PullResult(skipped_locked=True)
            cursor = await session.cursor()
            result = await self._pages(session, cursor, stop)
            confirmed = await session.confirm_stored()
        result = replace(result, confirmed=result.confirmed + confirmed)
        metrics.LAST_PULL.set(time.time())
        # A round that found nothing new is routine: keep it out of the INFO log.
        quiet = not (result.stored or result.quarantined or result.confirmed or result.stalled)
        (log.debug if quiet else log.info)("events_pulled", pages=result.pages, stored=result.stored,
                 duplicates=result.duplicates,
                 quarantined=result.quarantined, confirmed=result.confirmed, cursor=result.cursor,
                 stalled=result.stalled, stopped=result.stopped,
                 seconds=round(time.monotonic() - started, 3))  # fmt: skip
        return result

    async def _pages(self, session, cursor: int | None, stop: asyncio.Event) -> PullResult:  # type: ignore[no-untyped-def]
        result = PullResult(cursor=cursor)
        fetch: asyncio.Task[list[object]] | None = self._fetch(cursor)
        try:
            while fetch is not None:
                items = await _unless_stopped(fetch, stop)
                fetch = None
                if items is None:
                    return replace(result, stopped=True)
                page = parse_page(items, cursor)
                full = len(items) >= self.page_size
                moved = page.cursor is not None and (cursor is None or page.cursor > cursor)
                if full and moved and not stop.is_set():
                    fetch = self._fetch(page.cursor)  # the next page comes while this one is stored
                outcome = await session.store_page(page) if page.size else None
                result = _count(result, outcome)
                cursor = result.cursor
                if outcome is not None and outcome.quarantined:
                    log.warning("events_quarantined", count=outcome.quarantined, after_event_id=page.after,
                                reasons=sorted({q.reason for q in page.quarantine}))  # fmt: skip
                if self.progress is not None:
                    self.progress(result)
                if full and not moved:
                    log.error("events_pull_stalled", after_event_id=page.after, items=page.size,
                              hint="a full page without one usable event_id; its items are in "
                              "audit_quarantine. Ask OwnBackup support; the pull cannot move past it.")  # fmt: skip
                    return replace(result, stalled=True)
                if full and stop.is_set():
                    return replace(result, stopped=True)
            return result
        finally:
            if fetch is not None:
                fetch.cancel()
                with contextlib.suppress(BaseException):
                    await fetch

    def _fetch(self, cursor: int | None) -> asyncio.Task[list[object]]:
        return asyncio.create_task(self.client.events(cursor), name=f"events-after-{cursor or 0}")


async def _unless_stopped(task: asyncio.Task[list[object]], stop: asyncio.Event) -> list[object] | None:
    """The task's result, or None (task cancelled) when ``stop`` is set first."""
    if stop.is_set():
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        return None
    waiter = asyncio.create_task(stop.wait(), name="events-stop")
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
    return None


def _count(result: PullResult, outcome: PageOutcome | None) -> PullResult:
    if outcome is None:
        return replace(result, pages=result.pages + 1)
    metrics.EVENTS_INGESTED.inc(outcome.stored)
    metrics.EVENTS_QUARANTINED.inc(outcome.quarantined)
    if outcome.cursor is not None:
        metrics.EVENT_CURSOR.set(outcome.cursor)
    return replace(
        result,
        pages=result.pages + 1,
        stored=result.stored + outcome.stored,
        duplicates=result.duplicates + outcome.duplicates,
        quarantined=result.quarantined + outcome.quarantined,
        confirmed=result.confirmed + outcome.confirmed,
        cursor=outcome.cursor if outcome.cursor is not None else result.cursor,
    )


async def pull_logged(pull: Callable[[], Awaitable[PullResult]]) -> PullResult | None:
    """Run a scheduled pull; errors are logged (the next round tries again), never raised."""
    from gdpr_daemon.ownbackup import OwnBackupError

    try:
        return await pull()
    except AccountMismatch as exc:
        log.error("events_pull_refused", error=str(exc))
    except OwnBackupError as exc:
        log.warning("events_pull_failed", error=str(exc), kind=type(exc).__name__)
    except Exception as exc:
        from gdpr_daemon.errors import describe  # its message never repeats row values

        log.warning("events_pull_failed", error=describe(exc), kind=type(exc).__name__)
    return None


class PullJob:
    """The daemon's periodic pull, as an APScheduler job: ``scheduler.add_job(job.run, ...)``.

    A run never raises (see :func:`pull_logged`), honours the daemon's ``stop`` (a fetch
    in flight is abandoned, a page being stored is finished), and :meth:`drain` lets the
    daemon wait for the run in progress before it closes the client and the engine.
    """

    def __init__(self, puller: EventPuller, stop: asyncio.Event) -> None:
        self.puller = puller
        self.stop = stop
        self.last: PullResult | None = None
        self._running: asyncio.Task[object] | None = None

    async def run(self) -> PullResult | None:
        """One scheduled pull (a bound coroutine method, which APScheduler runs on its loop)."""
        if self.stop.is_set():
            return None
        self._running = asyncio.current_task()
        try:
            self.last = await pull_logged(lambda: self.puller.pull(self.stop))
            return self.last
        finally:
            self._running = None

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for a run in progress, then cancel it."""
        task = self._running
        if task is None or task is asyncio.current_task():
            return
        _done, pending = await asyncio.wait({task}, timeout=timeout)
        for t in pending:
            t.cancel()
            log.warning("events_pull_cancelled", reason="still running at the end of the shutdown bound")
        await asyncio.gather(*pending, return_exceptions=True)
