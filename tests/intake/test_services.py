"""The service directory: cached, refreshed on a miss at most so often, one fetch at a time."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from gdpr_daemon.intake.services import ServiceDirectory


@dataclass
class Svc:
    id: int


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_first_lookups_fetch_once():
    """Many requests checking services at start share one fetch of the list."""
    calls = 0

    async def fetch():
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return [Svc(1), Svc(2)]

    d = ServiceDirectory(fetch)
    results = await asyncio.gather(*(d.contains(1) for _ in range(20)))
    assert all(results) and calls == 1


async def test_miss_refreshes_at_most_every_interval():
    """An unknown id refreshes the list once; more misses within the interval do not."""
    calls = 0
    listing = [Svc(1)]

    async def fetch():
        nonlocal calls
        calls += 1
        return list(listing)

    clock = FakeClock()
    d = ServiceDirectory(fetch, miss_refresh_seconds=30, clock=clock)
    assert await d.contains(1) and calls == 1
    clock.now = 31
    listing.append(Svc(7))
    assert await d.contains(7) and calls == 2, "a service added since the last refresh is found"
    assert not await d.contains(99) and calls == 2, "a miss right after a refresh does not fetch again"
    clock.now = 62
    assert not await d.contains(99) and calls == 3
