"""The service directory: cached, refreshed on a miss at most so often, one fetch at a time; no claims without it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
import structlog

from gdpr_daemon.simulator import FaultConfig
from gdpr_daemon.submit.services import ServiceDirectory
from tests.helpers import insert_forget, wait_until


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


async def test_a_failed_fetch_is_not_repeated_by_every_lookup():
    """While the list cannot be fetched, lookups within the miss interval get the same error at once
    instead of each waiting its turn for a fetch of its own; after the interval one fetches again."""
    calls = 0

    async def fetch():
        nonlocal calls
        calls += 1
        raise ConnectionError("API down")

    clock = FakeClock()
    d = ServiceDirectory(fetch, miss_refresh_seconds=30, clock=clock)
    results = await asyncio.gather(*(d.contains(1) for _ in range(20)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results) and calls == 1
    clock.now = 31
    with pytest.raises(ConnectionError):
        await d.contains(1)
    assert calls == 2


@pytest.mark.slow
async def test_no_claim_while_the_service_list_cannot_be_read(daemon_for, sim, settings_for, engine, pg):
    """A daemon that cannot read the account's service list claims nothing (the requests wait, pending, no attempt
    counted), and drains the queue once the API answers again."""
    sim.faults = FaultConfig(rate_5xx=1.0)
    ids = await insert_forget(pg, 1001, 5)
    daemon = await daemon_for(settings_for())
    stop = asyncio.Event()
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(daemon.run(stop))
        try:
            await wait_until(lambda: _logged(logs, "services_unavailable"), timeout=60, what="the failed list")
            rows = await pg.fetch("SELECT status, attempts FROM gdpr_requests")
            assert {tuple(r) for r in rows} == {("pending", 0)}
            sim.faults = FaultConfig()
            await wait_until(lambda: pg.fetchval("SELECT count(*) = 5 FROM gdpr_requests WHERE status = 'submitted'"),
                             timeout=60, what="the queue drained once the API answers")  # fmt: skip
        finally:
            stop.set()
            assert await asyncio.wait_for(task, 30) == 0
    assert await pg.fetchval("SELECT max(attempts) FROM gdpr_requests WHERE id = ANY($1)", ids) == 1


async def _logged(logs: list[dict[str, object]], event: str) -> bool:
    return any(e.get("event") == event for e in logs)
