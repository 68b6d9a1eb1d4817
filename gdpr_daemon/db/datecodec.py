"""Dates Python cannot hold are read clamped, never raised.

Postgres keeps ``timestamptz`` from 4713 BC to 294276 AD and ``date`` further still; Python's
``datetime`` stops at year 9999.  asyncpg raises ``OverflowError`` on any value outside, so
one row with ``received_at = '12000-01-01'`` (entered before the CHECK at insert existed, or
by a role that bypasses it) made ``requests list``, ``status``, the reports and the metrics
fail for everyone.  These codecs, installed on every connection of the pool, read such a
value as the nearest one Python has (9999-12-31 23:59:59.999999 UTC, or 0001-01-01), and
``infinity`` likewise (asyncpg's own codec returns a *naive* ``datetime.max`` for it, which
then cannot be compared with the aware times around it).  Writing is as asyncpg does it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["decode_date", "decode_timestamptz", "encode_date", "encode_timestamptz", "install"]

_UTC = dt.UTC
_EPOCH = dt.datetime(2000, 1, 1, tzinfo=_UTC)  # Postgres's
_EPOCH_DAY = dt.date(2000, 1, 1)
_MAX = dt.datetime.max.replace(tzinfo=_UTC)
_MIN = dt.datetime.min.replace(tzinfo=_UTC)
_ONE_US = dt.timedelta(microseconds=1)
_MAX_US = (_MAX - _EPOCH) // _ONE_US
_MIN_US = (_MIN - _EPOCH) // _ONE_US
_MAX_DAYS = (dt.date.max - _EPOCH_DAY).days
_MIN_DAYS = (dt.date.min - _EPOCH_DAY).days
_INF64, _NINF64 = 2**63 - 1, -(2**63)
_INF32, _NINF32 = 2**31 - 1, -(2**31)


def decode_timestamptz(value: tuple[int]) -> dt.datetime:
    """Microseconds since 2000-01-01 UTC -> an aware datetime, clamped to Python's range."""
    us = value[0]
    if us >= _MAX_US:
        return _MAX
    if us <= _MIN_US:
        return _MIN
    return _EPOCH + dt.timedelta(microseconds=us)


def encode_timestamptz(value: Any) -> tuple[int]:
    """As asyncpg encodes: a naive time (or a date) is local time; ``datetime.max`` is infinity."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None and value == dt.datetime.max:
            return (_INF64,)
        if value.tzinfo is None and value == dt.datetime.min:
            return (_NINF64,)
    elif isinstance(value, dt.date):
        value = dt.datetime(value.year, value.month, value.day).astimezone()
    else:
        raise TypeError(f"expected a datetime.datetime or datetime.date instance, got {type(value).__name__!r}")
    return ((value.astimezone(_UTC) - _EPOCH) // _ONE_US,)


def decode_date(value: tuple[int]) -> dt.date:
    days = value[0]
    if days >= _MAX_DAYS:
        return dt.date.max
    if days <= _MIN_DAYS:
        return dt.date.min
    return _EPOCH_DAY + dt.timedelta(days=days)


def encode_date(value: Any) -> tuple[int]:
    if not isinstance(value, dt.date):
        raise TypeError(f"expected a datetime.date instance, got {type(value).__name__!r}")
    if isinstance(value, dt.datetime):
        value = value.date()
    if value == dt.date.max:
        return (_INF32,)
    if value == dt.date.min:
        return (_NINF32,)
    return ((value - _EPOCH_DAY).days,)


async def set_codecs(conn: Any) -> None:
    """Install the codecs on one asyncpg connection."""
    await conn.set_type_codec(
        "timestamptz", schema="pg_catalog", encoder=encode_timestamptz, decoder=decode_timestamptz, format="tuple"
    )
    await conn.set_type_codec("date", schema="pg_catalog", encoder=encode_date, decoder=decode_date, format="tuple")


def install(engine: AsyncEngine) -> None:
    """Every new connection of ``engine``'s pool gets the codecs."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.run_async(set_codecs)
