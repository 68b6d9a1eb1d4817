"""Fixtures of the audit tests: simulators with a history of their own, a client, a puller."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gdpr_daemon.audit import EventPuller
from gdpr_daemon.ownbackup import ClientConfig, OwnBackupClient, SessionAuth
from gdpr_daemon.simulator import Simulator, SimulatorConfig
from tests.helpers import SIM_EMAIL, SIM_PASSWORD


class RecordingSource:
    """The API client, noting the ``from`` of every events call."""

    def __init__(self, client: OwnBackupClient) -> None:
        self.client = client
        self.froms: list[int | None] = []

    async def events(self, from_id: int | None = None) -> list[object]:
        self.froms.append(from_id)
        return await self.client.events(from_id)


@pytest.fixture
async def history() -> AsyncIterator[Callable[..., Any]]:
    """``await history(synthetic_events=N, date_format=...)`` -> (simulator, url, source).

    A simulator of the test's own on loopback (the session one is shared), without login
    events unless asked, so a history of N events is exactly N; ``source`` is a logged-in
    RecordingSource.
    """
    stack = contextlib.AsyncExitStack()

    async def make(**config: Any) -> tuple[Simulator, str, RecordingSource]:
        config.setdefault("login_events", False)
        sim = Simulator(SimulatorConfig(email=SIM_EMAIL, password=SIM_PASSWORD, **config))
        url = await stack.enter_async_context(sim.serve(host="127.0.0.1", port=0))
        client = await stack.enter_async_context(
            OwnBackupClient(ClientConfig(base_url=url, auth=SessionAuth(SIM_EMAIL, SIM_PASSWORD), timeout=10))
        )
        return sim, url, RecordingSource(client)

    async with stack:
        yield make


def puller_for(engine: Any, source: RecordingSource, url: str, **kwargs: Any) -> EventPuller:
    return EventPuller(engine, source, account=url, actor="test-puller", **kwargs)
