"""Group commit of outcomes and of starts.

Every outcome updates its request row and writes its history row in one transaction
(``QueueStore.record``); outcomes that finish while a write is under way wait and go
together in the next one.  A write that fails because the database is away is kept and
tried again with backoff: an outcome is never dropped, and if its lease expires
meanwhile the store notes it as a late answer.

Starts go the same way through the :class:`Starter`: a task that holds its call slot
asks to be started and waits; the next write adds every start waiting to this process's
dispatch row (``QueueStore.start``, one small statement without history) and answers
each task.  A call never goes out before its start is committed, which is what lets the
reaper of another process tell a claim that was never sent from one whose outcome is
unknown.  Starts have a connection of their own and never wait behind the outcomes (nor
behind the hash chain's lock, which only history writes take).

A write that the database refuses for what it holds (a data error: a value out of
range, a character it cannot store, a check it fails) is not an outage and is not
retried as one: the batch is written again row by row, so every good outcome is
recorded, and the outcome that is refused is stored in a form the database takes (its
text escaped and bounded, or at worst the request ``failed`` with a sentence saying its
outcome could not be stored), never held back to be sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Literal

from gdpr_daemon import metrics
from gdpr_daemon.db.queue import Outcome, QueueStore
from gdpr_daemon.errors import data_error, db_errors
from gdpr_daemon.logs import get_logger
from gdpr_daemon.rules import FAILED, PENDING
from gdpr_daemon.safetext import escape_controls
from gdpr_daemon.submit.wait import first_set

log = get_logger(__name__)


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


#: Outcomes are not urgent (the call slot is free already): waiting a moment between
#: writes lets each carry more of them, and a write's cost is mostly per transaction
#: (the hash chain's lock and the commit), not per outcome.  Sooner when this many wait.
RECORD_EVERY = 0.02
RECORD_AT_ONCE = 200


class Recorder:
    """Group commit of outcomes: whatever finished since the last write goes in the next."""

    def __init__(
        self, store: QueueStore, *, on_retry_due: Any = None, on_written: Callable[[Sequence[int]], None] | None = None
    ) -> None:
        self.store = store
        self._on_written = on_written  # ids whose outcome is written (or noted as late): their claims are over
        self._pending: list[Outcome] = []
        self._have = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._on_retry_due = on_retry_due
        self.written = Counter[str]()

    def put(self, outcome: Outcome) -> None:
        self._pending.append(outcome)
        self._idle.clear()
        self._have.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Write outcomes as they come, at most one write every :data:`RECORD_EVERY` seconds
        (sooner when many are waiting); after ``stop``, write what is left and return."""
        backoff = 0.2
        last = float("-inf")
        while True:
            wait = last + RECORD_EVERY - time.monotonic()
            if self._pending and wait > 0 and len(self._pending) < RECORD_AT_ONCE and not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
                continue
            if not self._pending:
                self._idle.set()
                if stop.is_set():
                    return
                self._have.clear()
                await first_set(self._have, stop)
                continue
            last = time.monotonic()
            batch, self._pending = self._pending[:1000], self._pending[1000:]
            done = [o.request_id for o in batch]
            todo = batch
            try:
                try:
                    _applied, late = await self.store.record(batch)
                    todo = []
                except db_errors() as exc:
                    state = data_error(exc)
                    if state is None:
                        raise
                    log.warning("outcomes_refused_by_database", count=len(batch), sqlstate=state,
                                action="writing them one by one")  # fmt: skip
                    todo = list(batch)
                    done = []
                    late = await self._record_each(todo, done)
                    batch = []  # counted one by one
            except db_errors() as exc:
                self._pending[:0] = todo
                log.warning("database_unavailable", action="record outcomes",
                            error=type(exc).__name__, retry_in=round(backoff, 1))  # fmt: skip
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = 0.2
            for o in batch:
                self._written(o)
            if self._on_written is not None and done:
                self._on_written(done)
            if late:
                metrics.SUBMISSIONS.labels(outcome="late").inc(late)
                log.warning("late_outcomes", count=late,
                            hint="a lease expired before the answer came; the history notes each")  # fmt: skip

    def _written(self, o: Outcome) -> None:
        self.written[o.status] += 1
        if o.status == PENDING and self._on_retry_due is not None:
            self._on_retry_due(o.retry_in)

    async def _record_each(self, todo: list[Outcome], done: list[int]) -> int:
        """Write outcomes the database refused as a batch one at a time; how many came late.

        Each is taken off ``todo`` once written (and its id added to ``done``), so if the
        database goes away half way (a non-data error, raised) only the rest is kept for
        the next try.
        """
        late = 0
        while todo:
            written = await self._record_one(todo[0])
            if written is not None:
                late += written
                done.append(todo[0].request_id)
            todo.pop(0)
        return late

    async def _record_one(self, o: Outcome) -> int | None:
        """``o`` as it is, else cleaned (:func:`storable`), else as a failure saying so; None if not even that."""
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
        return None

    async def flushed(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False


Start = Literal["started", "lost", "again"]


class Starter:
    """Group commit of starts: every start asked for since the last write goes in the next.

    :meth:`start` answers ``"started"`` (make the call), ``"lost"`` (the claim is no longer
    this process's: do not) or ``"again"`` (not started this time: the lease had less than
    the margin left, or the write took longer than the margin, so it may not count; renew
    the lease and ask again).
    """

    def __init__(self, store: QueueStore) -> None:
        self.store = store
        self._waiting: dict[int, asyncio.Future[Start]] = {}
        self._done: list[int] = []
        self._have = asyncio.Event()

    def forget(self, ids: Sequence[int]) -> None:
        """Claims that are over (outcome written, or released): they leave the dispatch row with the next write."""
        self._done.extend(ids)

    async def start(self, request_id: int) -> Start:
        fut: asyncio.Future[Start] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = fut
        self._have.set()
        try:
            return await fut
        finally:
            if self._waiting.get(request_id) is fut:
                del self._waiting[request_id]

    async def run(self, stop: asyncio.Event) -> None:
        """Write starts as they come, until ``stop``."""
        backoff = 0.2
        while not stop.is_set():
            if not self._waiting:
                self._have.clear()
                await first_set(self._have, stop)
                continue
            waiting, self._waiting = self._waiting, {}
            done, self._done = self._done, []
            began = time.monotonic()
            try:
                result = await self.store.start(list(waiting), done)
            except Exception as exc:  # any failure: nothing started; a dead starter would stall every call
                for rid, fut in waiting.items():  # tried again with the next write, unless withdrawn meanwhile
                    if not fut.done():
                        self._waiting.setdefault(rid, fut)
                self._done[:0] = done
                if isinstance(exc, db_errors()):
                    log.warning("database_unavailable", action="start calls", error=type(exc).__name__,
                                retry_in=round(backoff, 1))  # fmt: skip
                else:
                    log.error("internal_error", action="start calls", error=repr(exc), retry_in=round(backoff, 1))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = 0.2
            took = time.monotonic() - began
            if took >= self.store.start_margin:
                log.warning("start_too_slow", seconds=round(took, 1), count=len(waiting),
                            hint="not counted: each is renewed and started again")  # fmt: skip
            for rid, fut in waiting.items():
                if fut.done():
                    continue
                if rid not in result.held:
                    fut.set_result("lost")
                elif rid in result.started and took < self.store.start_margin:
                    fut.set_result("started")
                else:
                    fut.set_result("again")
