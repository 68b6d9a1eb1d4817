"""Group commit of starts and outcomes, and what counts as 'the database is unavailable'.

Every outcome updates its request row and writes its history row in one statement
(``QueueStore.flush``); outcomes that finish while a write is under way wait and go
together in the next one.  Starts go the same way: a task about to make its call asks
:meth:`Recorder.start` and waits; the next write moves its request to ``in_flight`` (the
attempt counted, the history saying so) together with whatever outcomes are waiting, and
answers each task with its attempt number, or None when the claim was lost (another
process took it over after its lease lapsed): that request is not sent.  A call thus never
goes out before the history says it may have, and one statement a round carries the
starts and the outcomes of every task, so marking starts costs no extra transaction.

A write that fails because the database is away is kept and tried again with backoff: an
outcome is never dropped, and if its lease expires meanwhile the store notes it as a late
answer; the tasks waiting for a start keep waiting.

A write that the database refuses for what it holds (a data error: a value out of
range, a character it cannot store, a check it fails) is not an outage and is not
retried as one: the batch is written again row by row, so every good outcome is
recorded, and the outcome that is refused is stored in a form the database takes (its
text escaped and bounded, or at worst the request ``failed`` with a sentence saying its
outcome could not be stored), never held back to be sent again.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from gdpr_daemon import metrics
from gdpr_daemon.db.queue import Flushed, Outcome, QueueStore
from gdpr_daemon.db.tables import FAILED, PENDING
from gdpr_daemon.logging import get_logger
from gdpr_daemon.safetext import escape_controls

log = get_logger(__name__)


def db_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean 'the database is unavailable right now'."""
    import asyncpg
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    return (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
            DBAPIError, OperationalError, InterfaceError, asyncio.TimeoutError)  # fmt: skip


#: SQLSTATE classes that mean "the database refuses these values", not "it is away":
#: 22 data exception (out of range, NUL, bad encoding), 23 integrity constraint (a
#: CHECK), 54 program limit (a value too large to index).
DATA_ERROR_CLASSES = ("22", "23", "54")


def data_error(exc: BaseException) -> str | None:
    """The SQLSTATE when ``exc`` is the database refusing the data (see DATA_ERROR_CLASSES), else None.

    The driver's own refusals of a parameter (an integer beyond 64 bits, a lone surrogate)
    come as ``asyncpg.DataError``, which is also an ``InterfaceError``: they are data
    errors too, not a lost connection.
    """
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        state = getattr(seen, "sqlstate", None)
        if isinstance(state, str) and state[:2] in DATA_ERROR_CLASSES:
            return state
        seen = getattr(seen, "orig", None) or seen.__cause__
    return None


#: Bounds of the text of an outcome written again after a data error.
MAX_STORED_TEXT = 2000


def storable(o: Outcome) -> Outcome:
    """``o`` with its texts escaped (no NUL, surrogate or control character) and bounded,
    and an API request id outside bigint dropped."""

    def clean(text: str) -> str:
        text = escape_controls(text)
        return text if len(text) <= MAX_STORED_TEXT else text[: MAX_STORED_TEXT - 3] + "..."

    ob_id = o.ownbackup_request_id
    if ob_id is not None and not -(2**63) <= ob_id < 2**63:
        ob_id = None
    error = None if o.error is None else clean(o.error)
    return Outcome(o.request_id, o.status, clean(o.detail), ob_id, error, o.retry_in, called=o.called)


def unstorable(o: Outcome, state: str) -> Outcome:
    """The last resort for an outcome the database refused even cleaned: the request fails
    with a sentence that says so (and how to send it again), in plain ASCII."""
    if o.called:
        error = (f"the outcome of this attempt could not be stored (database error {state}); it may have been "
                 f"carried out: check it, then retry with `gdpr-daemon requests retry {o.request_id}`")  # fmt: skip
    else:
        error = (f"the outcome of this request's checks could not be stored (database error {state}); no call "
                 f"was made: retry with `gdpr-daemon requests retry {o.request_id}`")  # fmt: skip
    return Outcome(o.request_id, FAILED, f"outcome not storable: {error}", error=error, called=o.called)


class Recorder:
    """Group commit: whatever finished, and whatever is about to start, since the last write goes in the next."""

    def __init__(self, store: QueueStore, *, on_retry_due: Any = None) -> None:
        self.store = store
        self._pending: list[Outcome] = []
        self._starts: dict[int, asyncio.Future[int | None]] = {}
        self._have = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._on_retry_due = on_retry_due
        self.written = Counter[str]()

    def put(self, outcome: Outcome) -> None:
        self._pending.append(outcome)
        self._idle.clear()
        self._have.set()

    async def start(self, request_id: int) -> int | None:
        """Mark the claim started, before its call: its attempt number, or None if the claim was lost.

        Cancelled while waiting, the start is withdrawn unless a write has already taken it
        (then the request may be ``in_flight`` without a call: the worker releases it).
        """
        fut: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._starts[request_id] = fut
        self._idle.clear()
        self._have.set()
        try:
            return await fut
        finally:
            if self._starts.get(request_id) is fut:
                del self._starts[request_id]

    async def run(self, stop: asyncio.Event) -> None:
        """Write starts and outcomes as they come; after ``stop``, write what is left and return."""
        backoff = 0.2
        while True:
            if not self._pending and not self._starts:
                self._idle.set()
                if stop.is_set():
                    return
                self._have.clear()
                waits = [asyncio.ensure_future(self._have.wait()), asyncio.ensure_future(stop.wait())]
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for w in waits:
                    w.cancel()
                continue
            batch, self._pending = self._pending[:1000], self._pending[1000:]
            starts, self._starts = self._starts, {}
            todo = batch
            try:
                try:
                    done = await self.store.flush(batch, list(starts))
                    todo = []
                except db_errors() as exc:
                    state = data_error(exc)
                    if state is None:
                        raise
                    log.warning("outcomes_refused_by_database", count=len(batch), sqlstate=state,
                                action="writing them one by one")  # fmt: skip
                    done = await self.store.flush((), list(starts))  # a start holds only an id: never the cause
                    self._resolve(starts, done.started)
                    todo = list(batch)
                    late = await self._record_each(todo)
                    done = Flushed(started=done.started, late=late)
                    batch = []  # counted one by one
            except db_errors() as exc:
                self._pending[:0] = todo
                for rid, fut in starts.items():  # tried again with the next write, unless withdrawn meanwhile
                    if not fut.done():
                        self._starts.setdefault(rid, fut)
                log.warning("database_unavailable", action="record outcomes",
                            error=type(exc).__name__, retry_in=round(backoff, 1))  # fmt: skip
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = 0.2
            self._resolve(starts, done.started)
            for o in batch:
                self._written(o)
            if done.late:
                metrics.SUBMISSIONS.labels(outcome="late").inc(done.late)
                log.warning("late_outcomes", count=done.late,
                            hint="a lease expired before the answer came; the history notes each")  # fmt: skip
            if done.dropped:
                log.info("outcomes_dropped", count=done.dropped,
                         hint="found before any call, on claims another process took over")  # fmt: skip

    @staticmethod
    def _resolve(starts: dict[int, asyncio.Future[int | None]], started: dict[int, int]) -> None:
        for rid, fut in starts.items():
            if not fut.done():
                fut.set_result(started.get(rid))

    def _written(self, o: Outcome) -> None:
        self.written[o.status] += 1
        if o.status == PENDING and self._on_retry_due is not None:
            self._on_retry_due(o.retry_in)

    async def _record_each(self, todo: list[Outcome]) -> int:
        """Write outcomes the database refused as a batch one at a time; how many came late.

        Each is taken off ``todo`` once written, so if the database goes away half way
        (a non-data error, raised) only the rest is kept for the next try.
        """
        late = 0
        while todo:
            late += await self._record_one(todo[0])
            todo.pop(0)
        return late

    async def _record_one(self, o: Outcome) -> int:
        """``o`` as it is, else cleaned (:func:`storable`), else as a failure saying so."""
        state = "?"
        for step in ("as is", "cleaned", "as a failure"):
            attempt = o if step == "as is" else storable(o) if step == "cleaned" else unstorable(o, state)
            try:
                _applied, late = await self.store.record([attempt])
            except db_errors() as exc:
                refused = data_error(exc)
                if refused is None:
                    raise
                state = refused
                log.warning("outcome_refused_by_database", request_id=o.request_id, sqlstate=state)
                continue
            self._written(attempt)
            return late
        # Not even the plain failure is taken: the claim stays for a reaper (another
        # process's, or this one's after a restart) and the error is there to be seen.
        log.error("outcome_not_storable", request_id=o.request_id, sqlstate=state)
        return 0

    async def flushed(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False
