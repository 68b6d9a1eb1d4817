"""The metrics the alerting rules need, each checked against what caused it.

The database gauges against a table arranged to hold known numbers (through the health
server, as Prometheus reads them); the API counters and gauge against the simulator
answering, failing and refusing the password over loopback.
"""

from __future__ import annotations

import socket

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gdpr_daemon import metrics
from gdpr_daemon.health import HealthServer
from gdpr_daemon.ownbackup import (
    AuthenticationError,
    ClientConfig,
    OwnBackupClient,
    RetryPolicy,
    ServerError,
    SessionAuth,
    TransientError,
)
from gdpr_daemon.simulator.faults import FaultConfig
from tests.helpers import SIM_EMAIL, SIM_PASSWORD, insert_forget

NO_RETRY = RetryPolicy(base=0.01, max_delay=0.01, jitter=0.0, max_retries=0)


async def scrape(srv: HealthServer) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value of one /metrics answer."""
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout) as http, http.get(srv.url + "/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def client_for(url: str, password: str = SIM_PASSWORD) -> OwnBackupClient:
    return OwnBackupClient(
        ClientConfig(base_url=url, auth=SessionAuth(SIM_EMAIL, password), timeout=5.0, retry=NO_RETRY)
    )


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_due_soon_and_unconfirmed_gauges_match_the_table(engine, pg):
    """due_soon and unconfirmed count exactly the requests `status` would, with the configured unconfirmed bound."""
    # due_soon: open, due within 7 days, not yet overdue.  unconfirmed: submitted longer ago than
    # the bound and no confirming event.
    # Received 27 days ago: due in 1 to 6 days whatever the month and weekend roll-over.
    await pg.execute(
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, received_at) VALUES "
        "('forget', 1001, 'Contact', 'SOON1', now() - interval '27 days'), "
        "('forget', 1001, 'Contact', 'SOON2', now() - interval '27 days'), "
        "('forget', 1001, 'Contact', 'LATE', now() - interval '40 days'), "
        "('forget', 1001, 'Contact', 'DONE', now() - interval '27 days')"
    )
    await insert_forget(pg, 1002, 3, prefix="NEW")  # due in a month: neither
    # Submitted: SOON2 (no longer counts as due soon), and three NEW ones at known ages.
    await pg.execute(
        "UPDATE gdpr_requests SET status = 'submitted', submitted_at = now() - interval '30 hours' "
        "WHERE record_id = 'DONE'"
    )
    await pg.execute(
        "UPDATE gdpr_requests SET status = 'submitted', submitted_at = now() - interval '3 hours' "
        "WHERE record_id LIKE 'NEW%'"
    )
    await pg.execute(
        "UPDATE gdpr_requests SET confirmed_at = now() WHERE id = (SELECT min(id) FROM gdpr_requests "
        "WHERE record_id LIKE 'NEW%')"
    )
    await pg.execute("UPDATE gdpr_requests SET status = 'failed' WHERE record_id = 'SOON2'")
    for bound, unconfirmed in ((24.0, 1), (2.0, 3)):
        srv = HealthServer("127.0.0.1:0", engine, None, unconfirmed_after_hours=bound, events_pull_interval=42)
        await srv.start()
        try:
            got = await scrape(srv)
        finally:
            await srv.stop()
        assert got[("gdpr_daemon_requests_due_soon", ())] == 2, "SOON1 pending and SOON2 failed"
        assert got[("gdpr_daemon_requests_overdue", ())] == 1
        assert got[("gdpr_daemon_requests_unconfirmed", ())] == unconfirmed, bound
        assert got[("gdpr_daemon_events_pull_interval_seconds", ())] == 42


async def test_api_up_follows_the_clients_last_contact(engine, sim, sim_url):
    """api_up is 1 after a successful call, 0 after a failed one, and 1 again after the next success."""
    async with client_for(sim_url) as client:
        srv = HealthServer("127.0.0.1:0", engine, client.health)
        await srv.start()
        try:
            await client.list_services()
            assert (await scrape(srv))[("gdpr_daemon_api_up", ())] == 1
            sim.faults = FaultConfig(rate_5xx=1.0)
            with pytest.raises(ServerError):
                await client.list_services()
            assert (await scrape(srv))[("gdpr_daemon_api_up", ())] == 0
            sim.faults = FaultConfig()
            await client.list_services()
            assert (await scrape(srv))[("gdpr_daemon_api_up", ())] == 1
        finally:
            await srv.stop()


async def test_api_calls_are_counted_by_status_class(sim, sim_url):
    """Every API call counts once under its endpoint and status class; no answer counts as `none`."""
    before = {c: sample("gdpr_daemon_api_calls_total", endpoint="list_services", status_class=c)
              for c in ("2xx", "4xx", "5xx", "none")}  # fmt: skip
    logins = sample("gdpr_daemon_api_calls_total", endpoint="login", status_class="2xx")
    async with client_for(sim_url) as client:
        await client.list_services()
        await client.list_services()
        sim.faults = FaultConfig(rate_5xx=1.0)
        for _ in range(3):
            with pytest.raises(ServerError):
                await client.list_services()
        sim.faults = FaultConfig()
    async with client_for(f"http://127.0.0.1:{closed_port()}") as client:
        with pytest.raises(TransientError):
            await client.list_services()
    after = {c: sample("gdpr_daemon_api_calls_total", endpoint="list_services", status_class=c) for c in before}
    assert {c: after[c] - before[c] for c in before} == {"2xx": 2, "4xx": 0, "5xx": 3, "none": 0}
    assert sample("gdpr_daemon_api_calls_total", endpoint="login", status_class="2xx") - logins == 1
    # The unreachable server failed at the login, before list_services was sent.
    assert sample("gdpr_daemon_api_calls_total", endpoint="login", status_class="none") >= 1


async def test_refused_credentials_are_counted(sim, sim_url):
    """A refused password counts one auth failure per refused call; a 5xx does not count as one."""
    before = sample("gdpr_daemon_api_auth_failures_total")
    async with client_for(sim_url, password="not-the-password") as client:
        for _ in range(2):
            with pytest.raises(AuthenticationError):
                await client.list_services()
    assert sample("gdpr_daemon_api_auth_failures_total") - before == 2
    sim.faults = FaultConfig(rate_5xx=1.0)
    async with client_for(sim_url) as client:
        with pytest.raises(ServerError):
            await client.list_services()
    assert sample("gdpr_daemon_api_auth_failures_total") - before == 2
