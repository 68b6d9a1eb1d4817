"""Group commit of outcomes, and what counts as 'the database is unavailable'.

Every outcome updates its request row and writes its history row in one transaction
(``QueueStore.record``); outcomes that finish while a write is under way wait and go
together in the next one.  A write that fails because the database is away is kept and
tried again with backoff: an outcome is never dropped, and if its lease expires
meanwhile the store notes it as a late answer.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from gdpr_daemon import metrics
from gdpr_daemon.db.queue import Outcome, QueueStore
from gdpr_daemon.db.tables import PENDING
from gdpr_daemon.logging import get_logger

log = get_logger(__name__)


def db_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean 'the database is unavailable right now'."""
    import asyncpg
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    return (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
            DBAPIError, OperationalError, InterfaceError, asyncio.TimeoutError)  # fmt: skip


class Recorder:
    """Group commit of outcomes: whatever finished since the last write goes in the next."""

    def __init__(self, store: QueueStore, *, on_retry_due: Any = None) -> None:
        self.store = store
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
        """Write outcomes as they come; after ``stop``, write what is left and return."""
        backoff = 0.2
        while True:
            if not self._pending:
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
            try:
                _applied, late = await self.store.record(batch)
            except db_errors() as exc:
                self._pending[:0] = batch
                log.warning("database_unavailable", action="record outcomes",
                            error=type(exc).__name__, retry_in=round(backoff, 1))  # fmt: skip
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = 0.2
            for o in batch:
                self.written[o.status] += 1
                if o.status == PENDING and self._on_retry_due is not None:
                    self._on_retry_due(o.retry_in)
            if late:
                metrics.SUBMISSIONS.labels(outcome="late").inc(late)
                log.warning("late_outcomes", count=late,
                            hint="a lease expired before the answer came; the history notes each")  # fmt: skip

    async def flushed(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False
