"""A simulator of its own for verification tests: its clock can be moved on, so a backup
completes (or the erasure reaches old backups) without waiting."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from gdpr_daemon.config import Settings, load_settings
from gdpr_daemon.daemon import Daemon
from gdpr_daemon.ownbackup import OwnBackupClient
from gdpr_daemon.runtime import client_config, open_runtime
from gdpr_daemon.simulator import Simulator, SimulatorConfig
from gdpr_daemon.simulator.csvdata import record_id
from tests.helpers import SECRETS_SEEN, SIM_EMAIL, SIM_PASSWORD

PRODUCTION = 1001
BACKUP_SECONDS = 3.0
ERASE_OLD_AFTER = 600.0


class OffsetClock:
    """Real time plus an offset that tests move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class VerifySim:
    def __init__(self, sim: Simulator, url: str, clock: OffsetClock) -> None:
        self.sim, self.url, self.clock = sim, url, clock


@pytest.fixture(scope="module")
async def verify_server() -> AsyncIterator[VerifySim]:
    clock = OffsetClock()
    config = SimulatorConfig(email=SIM_EMAIL, password=SIM_PASSWORD, services=6, seed=7,
                             backup_seconds=BACKUP_SECONDS, erase_old_backups_after_seconds=ERASE_OLD_AFTER)  # fmt: skip
    sim = Simulator(config, clock=clock)
    async with sim.serve(host="127.0.0.1", port=0) as url:
        yield VerifySim(sim, url, clock)
        SECRETS_SEEN.update(sim.state.credentials.issued)


@pytest.fixture
async def vsim(verify_server: VerifySim) -> AsyncIterator[VerifySim]:
    """The module's simulator, reset to a fresh account and the real time."""
    verify_server.clock.offset = 0.0
    verify_server.sim.reset()
    yield verify_server
    SECRETS_SEEN.update(verify_server.sim.state.credentials.issued)


@pytest.fixture
def vsettings(db_url: str, vsim: VerifySim):  # type: ignore[no-untyped-def]
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": db_url, "ownbackup_url": vsim.url, "ownbackup_email": SIM_EMAIL,
            "ownbackup_password": SIM_PASSWORD, "ownbackup_timeout_seconds": 10.0, "log_format": "json",
            "instance_name": "test-daemon", "queue_backoff_base_seconds": 0.05, "queue_backoff_max_seconds": 0.5,
        }  # fmt: skip
        values.update(overrides)
        return load_settings(None, environ={}, **values)

    return make


def contact(n: int, service_id: int = PRODUCTION) -> str:
    """The id of Contact record ``n`` of a service, as the simulator's backups hold it."""
    return record_id("Contact", service_id, n)


async def enter_forget(pg: asyncpg.Connection, record: str, service_id: int = PRODUCTION) -> int:
    return await pg.fetchval(
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id) "
        "VALUES ('forget', $1, 'Contact', $2) RETURNING id", service_id, record,
    )  # fmt: skip


async def enter_rectify(pg: asyncpg.Connection, record: str, value: str, service_id: int = PRODUCTION) -> int:
    return await pg.fetchval(
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, field, value) "
        "VALUES ('rectify', $1, 'Contact', $2, 'Email', $3) RETURNING id", service_id, record, value,
    )  # fmt: skip


async def submit_all(settings: Settings) -> None:
    """Submit every pending request as `run --once` does (the real queue and client)."""
    async with open_runtime(settings, api=True) as rt:
        report = await Daemon(rt).run_once()
    assert report.failed == report.rejected == report.retry_later == 0, report


async def back_up_now(settings: Settings, vsim: VerifySim, service_id: int = PRODUCTION, *, complete: bool = True) -> int:
    """Start a backup of every object through the API; with ``complete``, move the clock past its end."""
    async with OwnBackupClient(client_config(settings)) as client:
        await client.backup_now(service_id)
        backup_id = (await client.get_backup(service_id, "last")).id
    if complete:
        vsim.clock.advance(BACKUP_SECONDS + 0.01)
    return backup_id


async def history(pg: asyncpg.Connection, request_id: int) -> list[asyncpg.Record]:
    return await pg.fetch(
        "SELECT from_status, to_status, detail, actor FROM gdpr_request_log WHERE request_id = $1 ORDER BY id",
        request_id,
    )
