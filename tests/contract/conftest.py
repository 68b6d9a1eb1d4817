"""Fixtures of the contract tests: the shipped OpenAPI document, answer validation, and a
simulator served from its own thread (for schemathesis, whose calls block).

The document is the referee: the simulator validates requests against it, and these tests
validate the simulator's answers (raw, as the client received them) against it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from hypothesis.configuration import set_hypothesis_home_dir

from gdpr_daemon.ownbackup.openapi import load_spec, response_schema
from gdpr_daemon.simulator import Simulator, SimulatorConfig
from tests.helpers import SECRETS_SEEN, SIM_EMAIL, SIM_PASSWORD

EMAIL = SIM_EMAIL
PASSWORD = SIM_PASSWORD  # the suite-wide leak scan looks for it in every log
API_TOKEN = "contract-Api-Token-4711"
START_TIMEOUT_S = 10.0

# schemathesis generates with Hypothesis; keep its caches out of the source tree.
set_hypothesis_home_dir(Path(__file__).resolve().parent.parent.parent / ".tmp" / "hypothesis")


def contract_config(**changes: Any) -> SimulatorConfig:
    """A simulator whose backups, jobs and seeds finish at once (no test waits for them)."""
    values: dict[str, Any] = {
        "email": EMAIL,
        "password": PASSWORD,
        "api_tokens": (API_TOKEN,),
        "backup_seconds": 0.0,
        "job_seconds": 0.0,
        "seed_seconds": 0.0,
        "synthetic_events": 1_500,
        "date_format": "mixed",
    }
    values.update(changes)
    return SimulatorConfig(**values)


class AnswerValidator:
    """Validates answers against the document's response schemas (formats checked too)."""

    def __init__(self) -> None:
        self.spec = load_spec()
        self._compiled: dict[tuple[str, str, int, str], Any] = {}

    def problems(
        self, method: str, path: str, status: int, body: Any, media_type: str = "application/json"
    ) -> list[str]:
        """What is wrong with an answer (empty when it conforms)."""
        key = (method.upper(), path, status, media_type)
        if key not in self._compiled:
            schema = response_schema(self.spec, method, path, status, media_type)
            self._compiled[key] = jsonschema_rs.validator_for(schema, validate_formats=True)
        validator = self._compiled[key]
        return [f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in validator.iter_errors(body)]


@pytest.fixture(scope="session")
def answers() -> AnswerValidator:
    return AnswerValidator()


@dataclass
class LiveSimulator:
    sim: Simulator
    url: str


@pytest.fixture(scope="module")
def threaded_simulator() -> Iterator[LiveSimulator]:
    """A simulator served by its own event loop in a thread, for blocking clients."""
    sim = Simulator(contract_config())
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop: list[asyncio.Event] = []
    urls: list[str] = []

    async def serve() -> None:
        stop.append(asyncio.Event())
        async with sim.serve(host="127.0.0.1", port=0) as url:
            urls.append(url)
            ready.set()
            await stop[0].wait()

    thread = threading.Thread(
        target=loop.run_until_complete, args=(serve(),), name="contract-simulator", daemon=True
    )
    thread.start()
    try:
        if not ready.wait(START_TIMEOUT_S):
            raise RuntimeError("the contract simulator did not start within 10 s")
        yield LiveSimulator(sim, urls[0])
    finally:
        if stop:
            loop.call_soon_threadsafe(stop[0].set)
        thread.join(START_TIMEOUT_S)
        loop.close()
        SECRETS_SEEN.update(sim.state.credentials.issued)
