"""The account's service ids, cached and refreshed, to reject requests naming unknown ones."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from gdpr_daemon.logs import get_logger

log = get_logger(__name__)


class HasId(Protocol):
    @property
    def id(self) -> int: ...


class ServiceDirectory:
    """Answers whether a service id belongs to the account.

    A miss triggers one refresh (a service may have been added since the last one), at
    most every ``miss_refresh_seconds``; if the list cannot be fetched at all, the caller
    gets the API error and treats it as transient.
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[Sequence[HasId]]],
        *,
        miss_refresh_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ids: frozenset[int] | None = None
        self._loaded_at = float("-inf")
        self._miss_refresh = miss_refresh_seconds
        self._clock = clock
        self._lock = asyncio.Lock()
        self._failure: tuple[float, Exception] | None = None  # when the last fetch failed, and why

    @property
    def ids(self) -> frozenset[int] | None:
        return self._ids

    async def refresh(self, *, if_older_than: float = 0.0) -> frozenset[int]:
        """Fetch the list again; concurrent callers share one fetch (and, within
        ``if_older_than`` of a failed one, its error: no queue of fetches behind a dead API)."""
        async with self._lock:
            if self._ids is not None and self._clock() - self._loaded_at < if_older_than:
                return self._ids  # someone refreshed while we waited
            if self._failure is not None and self._clock() - self._failure[0] < if_older_than:
                raise self._failure[1]
            try:
                services = await self._fetch()
            except Exception as exc:
                self._failure = (self._clock(), exc)
                raise
            self._failure = None
            self._ids = frozenset(int(s.id) for s in services)
            self._loaded_at = self._clock()
            log.debug("services_refreshed", count=len(self._ids))
            return self._ids

    async def contains(self, service_id: int) -> bool:
        ids = self._ids
        if ids is None:
            ids = await self.refresh(if_older_than=self._miss_refresh)
        if service_id in ids:
            return True
        if self._clock() - self._loaded_at >= self._miss_refresh:
            ids = await self.refresh(if_older_than=self._miss_refresh)
        return service_id in ids
