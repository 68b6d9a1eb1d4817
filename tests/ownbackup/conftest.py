"""Fixtures for the OwnBackup client tests: a real simulator over loopback, real clients.

``harness`` starts simulators and clients inside one exit stack, closed after the test.
Clients get a recording ``sleep`` (retry waits are recorded, not slept, so tests stay fast
and the delays can be checked) and a fast retry policy without jitter.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest

from gdpr_daemon.ownbackup import (
    ClientConfig,
    OAuthAuth,
    OwnBackupClient,
    RetryPolicy,
    SessionAuth,
)
from gdpr_daemon.simulator import FaultConfig, Simulator, SimulatorConfig
from tests.helpers import SECRETS_SEEN, SIM_EMAIL, SIM_PASSWORD

EMAIL = SIM_EMAIL
PASSWORD = SIM_PASSWORD  # the suite-wide leak scan looks for it in every log
API_TOKEN = "tok-Secret-0815"
SECRETS_SEEN.add(API_TOKEN)
# The vendor's token path (on auth.owndata.com there): the simulator serves it on its own host.
TOKEN_PATH = "/oauth2/aus4c3z3l8FqrbqDU4h7/v1/token"


def sim_config(**overrides: Any) -> SimulatorConfig:
    values: dict[str, Any] = {
        "email": EMAIL,
        "password": PASSWORD,
        "services": 6,
        "api_tokens": (API_TOKEN,),
        "token_ttl_seconds": 3600,
        # Backups, jobs and seeds finish at once: no test waits for them.
        "backup_seconds": 0.0,
        "job_seconds": 0.0,
        "seed_seconds": 0.0,
    }
    values.update(overrides)
    return SimulatorConfig(**values)


class Sleeps:
    """A stand-in for asyncio.sleep: records each delay; ``then`` (plain or async) runs
    after each one, e.g. to heal the simulator before the retry."""

    def __init__(self, then: Callable[[float], Any] | None = None) -> None:
        self.delays: list[float] = []
        self.then = then

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self.then is not None:
            result = self.then(delay)
            if inspect.isawaitable(result):
                await result
        await asyncio.sleep(0)


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Harness:
    def __init__(self, stack: AsyncExitStack) -> None:
        self.stack = stack

    async def sim(
        self,
        config: SimulatorConfig | None = None,
        *,
        clock: Callable[[], float] | None = None,
        faults: FaultConfig | None = None,
        port: int = 0,
        middleware: Any = None,
    ) -> Simulator:
        sim = Simulator(config or sim_config(), faults=faults or FaultConfig(), clock=clock)
        if middleware is not None:
            # Outermost, before the simulator's own middleware (and its 401 check).
            sim.app.middlewares.insert(0, middleware)
        await self.stack.enter_async_context(sim.serve(host="127.0.0.1", port=port))
        # At the end of the test, the session ids and tokens it issued join the leak scan.
        self.stack.callback(lambda: SECRETS_SEEN.update(sim.state.credentials.issued))
        return sim

    def config(self, base_url: str, *, oauth: bool = False, **overrides: Any) -> ClientConfig:
        values: dict[str, Any] = {
            "base_url": base_url,
            "auth": (
                OAuthAuth(f"{base_url}{TOKEN_PATH}", "gdpr-daemon-tests", API_TOKEN)
                if oauth
                else SessionAuth(EMAIL, PASSWORD)
            ),
            "timeout": 10.0,
            "connect_timeout": 5.0,
            "retry": RetryPolicy(base=0.01, factor=2.0, max_delay=60.0, jitter=0.0, max_retries=3),
        }
        values.update(overrides)
        return ClientConfig(**values)

    async def client(
        self,
        base_url: str,
        *,
        oauth: bool = False,
        sleeps: Sleeps | None = None,
        clock: Callable[[], float] | None = None,
        **overrides: Any,
    ) -> OwnBackupClient:
        kwargs: dict[str, Any] = {"sleep": sleeps if sleeps is not None else Sleeps()}
        if clock is not None:
            kwargs["clock"] = clock
        client = OwnBackupClient(self.config(base_url, oauth=oauth, **overrides), **kwargs)
        return await self.stack.enter_async_context(client)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with AsyncExitStack() as stack:
        yield Harness(stack)


@pytest.fixture
async def sim(harness: Harness) -> Simulator:
    return await harness.sim()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def client(harness: Harness, sim: Simulator, sleeps: Sleeps) -> OwnBackupClient:
    assert sim.url is not None
    return await harness.client(sim.url, sleeps=sleeps)


Call = Callable[[OwnBackupClient], Awaitable[Any]]
