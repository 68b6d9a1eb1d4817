"""Waiting for whichever of several events comes first."""

from __future__ import annotations

import asyncio


async def first_set(*events: asyncio.Event, timeout: float | None = None) -> None:
    """Return as soon as one of ``events`` is set, or after ``timeout`` seconds (None: no limit)."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
