"""Fixtures for the simulator tests: a settable clock, simulators served on loopback, a client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest

from gdpr_daemon.simulator import FaultConfig, Simulator

from .support import Api, FakeClock, config

StartApi = Callable[..., Awaitable[Api]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield session


@pytest.fixture
async def start_api(clock: FakeClock, http: aiohttp.ClientSession) -> AsyncIterator[StartApi]:
    """Start a simulator (config changes as keywords, ``faults=``) and log in unless told not."""
    async with AsyncExitStack() as stack:

        async def start(
            *, faults: FaultConfig | None = None, login: bool = True, **changes: Any
        ) -> Api:
            sim = Simulator(config(**changes), faults=faults, clock=clock)
            url = await stack.enter_async_context(sim.serve(host="127.0.0.1", port=0))
            api = Api(sim, url, http)
            if login:
                await api.login()
            return api

        yield start


@pytest.fixture
async def api(start_api: StartApi) -> Api:
    """A default simulator with a logged-in session."""
    return await start_api()
