"""Transient failures: GETs retried until they succeed, POSTs surfaced as the right error."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

import pytest

from gdpr_daemon import metrics
from gdpr_daemon.ownbackup import (
    BadAnswer,
    ClientError,
    ConnectionFailed,
    OwnBackupClient,
    RateLimited,
    RequestTimeout,
    RetryPolicy,
    ServerError,
    TransientError,
)
from gdpr_daemon.simulator import FaultConfig, Simulator

from .conftest import Harness, Sleeps


def heal(sim: Simulator) -> Callable[[float], None]:
    """After the first retry wait, the simulator stops failing."""

    def then(_delay: float) -> None:
        sim.faults = FaultConfig()

    return then


def retries(endpoint: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "gdpr_daemon_api_retries_total", {"endpoint": endpoint}
    )
    return value or 0.0


async def ready(harness: Harness, sim: Simulator, sleeps: Sleeps, **kw: object) -> OwnBackupClient:
    """A client already logged in (so the faults hit the call under test, not the login)."""
    client = await harness.client(sim.url or "", sleeps=sleeps, **kw)  # type: ignore[arg-type]
    await client.authenticate()
    return client


FAULTS = {
    "5xx": FaultConfig(rate_5xx=1.0, seed=1),
    "truncated_json": FaultConfig(malformed_rate=1.0, malformed_mode="truncated_json"),
    "html_200": FaultConfig(malformed_rate=1.0, malformed_mode="html_200"),
    "missing_id": FaultConfig(malformed_rate=1.0, malformed_mode="missing_id"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_get_retried_until_success(harness: Harness, fault: str) -> None:
    """A GET that fails transiently is retried after the policy's delay and then succeeds."""
    sim = await harness.sim()
    sleeps = Sleeps()
    client = await ready(harness, sim, sleeps)
    sleeps.then = heal(sim)
    before = retries("get_service")
    sim.faults = FAULTS[fault]
    service = await client.get_service(1001)
    assert service.id == 1001
    assert sleeps.delays == [0.01]
    assert retries("get_service") == before + 1
    assert client.health.ok


async def test_get_429_waits_at_least_retry_after(harness: Harness) -> None:
    """A 429 burst is retried, each wait at least the Retry-After the API sent."""
    sim = await harness.sim()
    sleeps = Sleeps()
    client = await ready(harness, sim, sleeps)
    sim.faults = FaultConfig(burst_429=2, retry_after_s=2)
    services = await client.list_services()
    assert len(services) == 6
    assert len(sleeps.delays) == 2 and all(d >= 2 for d in sleeps.delays)
    assert sim.stats.sent_429 == 2


async def test_get_gives_up_after_max_retries(harness: Harness) -> None:
    """A GET failing every time is tried 1 + max_retries times, then the error surfaces."""
    sim = await harness.sim()
    sleeps = Sleeps()
    client = await ready(harness, sim, sleeps)
    sim.faults = FaultConfig(rate_5xx=1.0, seed=3)
    with pytest.raises(ServerError) as info:
        await client.list_jobs()
    assert sleeps.delays == [0.01, 0.02, 0.04]
    assert sim.stats.calls["GET /api/v1/jobs"] == 4
    assert str(info.value).startswith("OwnBackup answered 50")
    assert "to list_jobs" in str(info.value)
    assert not client.health.ok and client.health.last_error == str(info.value)


async def test_get_html_5xx_reads_as_a_sentence(harness: Harness) -> None:
    """An HTML 5xx page gives a plain sentence without HTML in it."""
    sim = await harness.sim()
    client = await ready(harness, sim, Sleeps(), retry=RetryPolicy(max_retries=0))
    sim.faults = FaultConfig(rate_5xx=1.0, seed=1)
    messages = set()
    for _ in range(6):
        with pytest.raises(ServerError) as info:
            await client.list_services()
        messages.add(str(info.value))
    assert not any("<" in m for m in messages)


async def test_get_connection_refused_then_server_up(harness: Harness) -> None:
    """Connection refused is retried; once the server is up the GET succeeds."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started: list[Simulator] = []

    async def start_server(_delay: float) -> None:
        if not started:
            started.append(await harness.sim(port=port))

    sleeps = Sleeps(then=start_server)
    client = await harness.client(f"http://127.0.0.1:{port}", sleeps=sleeps)
    services = await client.list_services()
    assert len(services) == 6 and sleeps.delays == [0.01]
    assert started[0].stats.logins == 1


async def test_connection_refused_is_connection_failed(harness: Harness) -> None:
    """With nothing listening, a call fails with ConnectionFailed naming host and port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = Sleeps()
    client = await harness.client(f"http://127.0.0.1:{port}", sleeps=sleeps)
    with pytest.raises(
        ConnectionFailed, match=f"could not be reached for login at 127.0.0.1:{port}"
    ):
        await client.gdpr_forget(1001, record_id="003x", table_name="Contact")
    assert sleeps.delays == []


@pytest.mark.parametrize(
    ("faults", "error", "carried_out"),
    [
        (FaultConfig(rate_5xx=1.0, seed=1), ServerError, False),
        (FaultConfig(burst_429=1, retry_after_s=3), RateLimited, False),
        (FaultConfig(malformed_rate=1.0, malformed_mode="truncated_json"), BadAnswer, True),
        (FaultConfig(malformed_rate=1.0, malformed_mode="html_200"), BadAnswer, True),
        (FaultConfig(malformed_rate=1.0, malformed_mode="missing_id"), BadAnswer, True),
        (FaultConfig(failing_services=(1001,)), ServerError, False),
    ],
    ids=["5xx", "429", "truncated_json", "html_200", "missing_id", "failing_service"],
)
async def test_post_not_retried(
    harness: Harness, faults: FaultConfig, error: type[TransientError], carried_out: bool
) -> None:
    """A GDPR POST failing transiently is not retried: the right TransientError surfaces."""
    sim = await harness.sim()
    sleeps = Sleeps()
    client = await ready(harness, sim, sleeps)
    sim.faults = faults
    with pytest.raises(error) as info:
        await client.gdpr_forget(1001, record_id="003x", table_name="Contact")
    assert sleeps.delays == []
    assert sim.stats.calls["POST /api/v1/services/{service_id}/gdpr/forget"] == 1
    assert len(sim.state.gdpr_calls) == (1 if carried_out else 0)
    assert info.value.endpoint == "gdpr_forget"
    if error is RateLimited:
        assert info.value.retry_after == 3  # type: ignore[attr-defined]


async def test_post_malformed_sentences(harness: Harness) -> None:
    """Each kind of malformed answer is named in one sentence."""
    sim = await harness.sim()
    client = await ready(harness, sim, Sleeps())
    expected = {
        "truncated_json": "OwnBackup answered gdpr_rectify with a body that is not JSON "
        "(truncated or invalid JSON)",
        "html_200": "OwnBackup answered gdpr_rectify with a body that is not JSON (an HTML page)",
        "missing_id": "OwnBackup answered gdpr_rectify without an integer 'id' or 'job_id'",
    }
    for mode, sentence in expected.items():
        sim.faults = FaultConfig(malformed_rate=1.0, malformed_mode=mode)
        with pytest.raises(BadAnswer) as info:
            await client.gdpr_rectify(
                1001, record_id="003x", table_name="Contact", field="Email", value="PII-VALUE-1"
            )
        assert str(info.value) == sentence


async def test_rejecting_service_is_permanent_with_message(harness: Harness) -> None:
    """A 400 refusal of a GDPR call is a ClientError with the API's message."""
    sim = await harness.sim()
    client = await ready(harness, sim, Sleeps())
    sim.faults = FaultConfig(rejecting_services=(1002,))
    with pytest.raises(ClientError) as info:
        await client.gdpr_forget(1002, record_id="003x", table_name="Contact")
    assert info.value.message == "service_id 1002 does not accept GDPR requests at this time"
    assert client.health.ok  # the API answered: a refusal is not an outage


async def test_hang_past_timeout_is_request_timeout(harness: Harness) -> None:
    """An answer held back past the timeout is RequestTimeout, even though the call was done."""
    sim = await harness.sim()
    client = await ready(harness, sim, Sleeps(), timeout=0.3)
    sim.faults = FaultConfig(hang_ms=10_000)
    with pytest.raises(RequestTimeout) as info:
        await client.gdpr_forget(1001, record_id="003x", table_name="Contact")
    assert str(info.value) == "OwnBackup did not answer gdpr_forget within 0.3 s"
    assert len(sim.state.gdpr_calls) == 1
    assert isinstance(info.value.__cause__, TimeoutError)
    sim.faults = FaultConfig()  # let the logout at the end through


async def test_get_hang_retried_then_success(harness: Harness) -> None:
    """A GET that timed out is retried and succeeds once the API answers in time."""
    sim = await harness.sim()
    sleeps = Sleeps()
    client = await ready(harness, sim, sleeps, timeout=0.3)
    sleeps.then = heal(sim)
    sim.faults = FaultConfig(hang_ms=10_000)
    assert (await client.get_service(1001)).id == 1001
    assert sleeps.delays == [0.01]


async def test_events_not_a_list_is_bad_answer(harness: Harness) -> None:
    """An events body that is not a JSON list is a BadAnswer."""
    sim = await harness.sim()
    client = await ready(harness, sim, Sleeps(), retry=RetryPolicy(max_retries=0))
    sim.faults = FaultConfig(malformed_rate=1.0, malformed_mode="html_200")
    with pytest.raises(BadAnswer, match="events with a body that is not JSON"):
        await client.events()


async def test_connect_timeout_is_connection_failed(harness: Harness) -> None:
    """No connection within connect_timeout (here: the one pooled connection is busy) is
    ConnectionFailed: the call never reached the API."""
    sim = await harness.sim()
    client = await ready(harness, sim, Sleeps(), max_connections=1, connect_timeout=0.2)
    sim.faults = FaultConfig(hang_ms=10_000)
    busy = asyncio.create_task(client.gdpr_forget(1001, record_id="003x", table_name="Contact"))
    try:
        async with asyncio.timeout(10):  # the first call now holds the only connection
            while not sim.state.gdpr_calls:
                await asyncio.sleep(0.01)
        with pytest.raises(ConnectionFailed) as info:
            await client.gdpr_forget(1002, record_id="003y", table_name="Contact")
        assert str(info.value) == (
            "No connection to OwnBackup could be made for gdpr_forget within 0.2 s"
        )
        assert [c.service_id for c in sim.state.gdpr_calls] == [1001]
    finally:
        sim.faults = FaultConfig()  # so that logging out at the end is not held back
        busy.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await busy
