"""LISTEN for new requests on a direct connection, reconnecting with backoff.

The insert trigger sends one payload-less NOTIFY per statement on channel
``gdpr_requests``.  LISTEN needs a session-level connection, which a pooler in
transaction mode (PgBouncer) does not give: point ``database_listen_url`` straight at
Postgres in that case.  A missed notification costs at most one poll interval.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gdpr_daemon.db.engine import connect_raw
from gdpr_daemon.logs import get_logger
from gdpr_daemon.submit.wait import first_set

log = get_logger(__name__)

CHANNEL = "gdpr_requests"
KEEPALIVE_SECONDS = 30.0


async def listen(url: str, on_notify: Callable[[], None], stop: asyncio.Event) -> None:
    """Call ``on_notify`` for each NOTIFY until ``stop``; never raises on connection loss."""
    backoff = 0.5
    while not stop.is_set():
        lost = asyncio.Event()
        try:
            conn = await connect_raw(url)
        except (TimeoutError, OSError, Exception) as exc:
            log.warning("listener_connect_failed", error=type(exc).__name__, retry_in=round(backoff, 1))
            await _sleep_or_stop(backoff, stop)
            backoff = min(backoff * 2, 30.0)
            continue
        try:
            conn.add_termination_listener(lambda _c, lost=lost: lost.set())
            await conn.add_listener(CHANNEL, lambda *_args: on_notify())
            backoff = 0.5
            on_notify()  # anything inserted while we were not listening
            log.debug("listening", channel=CHANNEL)
            while not (stop.is_set() or lost.is_set()):
                await first_set(stop, lost, timeout=KEEPALIVE_SECONDS)
                if not (stop.is_set() or lost.is_set()):
                    await conn.execute("SELECT 1", timeout=10)  # a silent network drop shows here
            if lost.is_set() and not stop.is_set():
                log.warning("listener_connection_lost", retry_in=round(backoff, 1))
                await _sleep_or_stop(backoff, stop)
        except Exception as exc:
            log.warning("listener_failed", error=type(exc).__name__)
            await _sleep_or_stop(backoff, stop)
        finally:
            try:
                await asyncio.wait_for(conn.close(), 2)
            except Exception:
                conn.terminate()


async def _sleep_or_stop(seconds: float, stop: asyncio.Event) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass
