"""Engines and raw connections from the libpq URL the user configures.

Users give a plain ``postgresql://`` URL as libpq takes it; the daemon picks its driver
(asyncpg) here and nowhere else.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

APPLICATION_NAME = "gdpr-daemon"


def sqlalchemy_url(url: str) -> str:
    """``postgresql://...`` -> ``postgresql+asyncpg://...`` (other drivers are swapped too)."""
    u = make_url(url)
    return u.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The plain libpq URL, for asyncpg.connect and for showing (password hidden elsewhere)."""
    u = make_url(url)
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


def safe_url(url: str) -> str:
    """The URL with its password masked, for messages and logs."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=True)


def make_engine(
    url: str, *, pool_size: int = 10, application_name: str = APPLICATION_NAME, **kwargs: Any
) -> AsyncEngine:
    """The pool; ``application_name`` shows in pg_stat_activity (which replica holds what)."""
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={
            "server_settings": {"application_name": application_name[:63]},
            "timeout": 10,
            "command_timeout": 60,
        },
        **kwargs,
    )


async def connect_raw(url: str, *, timeout: float = 10.0) -> asyncpg.Connection:
    """A direct asyncpg connection (for LISTEN, which poolers in transaction mode break)."""
    return await asyncpg.connect(
        libpq_url(url), timeout=timeout, server_settings={"application_name": APPLICATION_NAME + "-listen"}
    )
