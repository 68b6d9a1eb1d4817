"""Engines and raw connections from the libpq URL the user configures.

Users give a plain ``postgresql://`` URL as libpq takes it; the daemon picks its driver
(asyncpg) here and nowhere else.
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gdpr_daemon.db import datecodec

APPLICATION_NAME = "gdpr-daemon"

#: A pooled connection that sat idle longer than this is pinged before it is handed out
#: (and replaced if the ping fails: the server restarted, a firewall dropped it).  One in
#: steady use is not pinged: SQLAlchemy's pre-ping on every checkout cost three round
#: trips a transaction, about 15% of the machine's CPU per request in bench/drain.py,
#: and a connection that breaks while in use is invalidated with its pool and the
#: caller retries (every daemon job does).
PING_IDLE_AFTER = 5.0


def sqlalchemy_url(url: str) -> str:
    """``postgresql://...`` -> ``postgresql+asyncpg://...`` (other drivers are swapped too)."""
    u = make_url(url)
    return u.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The plain libpq URL, for asyncpg.connect and for showing (password hidden elsewhere)."""
    u = make_url(url)
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


def safe_url(url: str) -> str:
    """The URL with its password masked, for messages and logs (also ``?password=`` in the query)."""
    from gdpr_daemon.safetext import mask_url

    try:
        shown = make_url(url).set(drivername="postgresql").render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: mask it as text
        shown = url
    return mask_url(shown)


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    application_name: str = APPLICATION_NAME,
    ping_idle_after: float = PING_IDLE_AFTER,
    **kwargs: Any,
) -> AsyncEngine:
    """The pool; ``application_name`` shows in pg_stat_activity (which replica holds what)."""
    engine = create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        connect_args={
            "server_settings": {"application_name": application_name[:63]},
            "timeout": 10,
            "command_timeout": 60,
        },
        # An error's text never quotes the statement's parameters (record ids, rectify values).
        hide_parameters=True,
        **kwargs,
    )
    _ping_when_idle(engine, ping_idle_after)
    _log_postgres_messages(engine)
    datecodec.install(engine)  # a stored year 12000 reads as 9999-12-31, not an OverflowError
    return engine


def _log_postgres_messages(engine: AsyncEngine) -> None:
    """A WARNING or NOTICE Postgres sends goes through the log pipeline (asyncpg drops it otherwise)."""
    from gdpr_daemon import logs

    @event.listens_for(engine.sync_engine, "connect")
    def _connected(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.driver_connection.add_log_listener(logs.postgres_message)


def _ping_when_idle(engine: AsyncEngine, idle_after: float) -> None:
    """Pre-ping only the connections idle for more than ``idle_after`` seconds."""
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["gdpr_idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("gdpr_idle_since")
        if since is None or time.monotonic() - since <= idle_after:
            return  # new, or in steady use
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the driver's own error for a dead connection
            raise DisconnectionError("an idle pooled connection no longer answers") from exc
        if not alive:
            raise DisconnectionError("an idle pooled connection no longer answers")


async def connect_raw(url: str, *, timeout: float = 10.0) -> asyncpg.Connection:
    """A direct asyncpg connection (for LISTEN, which poolers in transaction mode break)."""
    return await asyncpg.connect(
        libpq_url(url), timeout=timeout, server_settings={"application_name": APPLICATION_NAME + "-listen"}
    )
