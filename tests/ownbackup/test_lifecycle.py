"""Client lifecycle and health: logins with unreadable answers, logout, /readyz state."""

from __future__ import annotations

import pytest

from gdpr_daemon.ownbackup import BadAnswer, NotFound, OwnBackupClient, RetryPolicy, ServerError
from gdpr_daemon.simulator import FaultConfig, Simulator

from .conftest import Harness, Sleeps, sim_config


async def test_login_without_session_id_is_bad_answer(harness: Harness) -> None:
    """A login answer without a session_id is a BadAnswer for the call that needed it."""
    sim = await harness.sim(faults=FaultConfig(malformed_rate=1.0, malformed_mode="missing_id"))
    client = await harness.client(sim.url or "")
    with pytest.raises(BadAnswer, match="OwnBackup answered login without a session_id"):
        await client.gdpr_forget(1001, record_id="003x", table_name="Contact")
    assert sim.state.gdpr_calls == []


async def test_get_retries_a_failed_login(harness: Harness) -> None:
    """A GET whose login got an unreadable answer is retried, login included."""
    sim = await harness.sim(faults=FaultConfig(malformed_rate=1.0, malformed_mode="html_200"))
    sleeps = Sleeps(then=lambda _d: setattr(sim, "faults", FaultConfig()))
    client = await harness.client(sim.url or "", sleeps=sleeps)
    assert len(await client.list_services()) == 6
    assert sleeps.delays == [0.01] and sim.stats.logins == 2


async def test_health_follows_outcomes(harness: Harness) -> None:
    """health: ok until a failure, not ok after one, ok again after a success; 404 is ok."""
    sim = await harness.sim()
    client = await harness.client(sim.url or "", retry=RetryPolicy(max_retries=0))
    assert client.health.ok and client.health.last_success_at is None
    await client.list_services()
    assert client.health.ok and client.health.last_success_at is not None
    sim.faults = FaultConfig(rate_5xx=1.0, seed=1)
    with pytest.raises(ServerError):
        await client.list_services()
    assert not client.health.ok
    assert client.health.last_error and client.health.last_error.startswith("OwnBackup answered 50")
    sim.faults = FaultConfig()
    with pytest.raises(NotFound):
        await client.get_service(4242)
    assert client.health.ok  # the API answered; the service just does not exist
    assert client.health.last_failure_at is not None


async def test_close_when_api_is_gone(harness: Harness) -> None:
    """Closing a logged-in client whose API went away does not raise."""
    sim = Simulator(sim_config())
    async with sim.serve(host="127.0.0.1", port=0) as url:
        client = OwnBackupClient(harness.config(url), sleep=Sleeps())
        await client.open()
        await client.list_services()
    await client.close()  # logout fails (connection refused): logged, not raised
    await client.close()  # closing twice is harmless


async def test_open_twice_refused(harness: Harness, sim: Simulator) -> None:
    """Opening an open client is a RuntimeError (it would leak the first pool)."""
    client = await harness.client(sim.url or "")
    with pytest.raises(RuntimeError, match="already open"):
        await client.open()
