"""The alerting rules on the real thing: a Prometheus server (Debian's prometheus package)
scrapes a running `gdpr-daemon run` on loopback with config/prometheus/alerts.yaml loaded,
and its HTTP API shows the alerts fire during an API outage and resolve after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import yaml

from gdpr_daemon.simulator.faults import FaultConfig
from tests.deploy.promql import ALERTS, DASHBOARD, alert_rules, dashboard_exprs, find_tool, for_promtool, selectors
from tests.helpers import start_daemon, stop_daemon, wait_until

SHORT_FOR = "3s"  # two missed scrapes in a row on a busy machine must not page
# Alerts an API outage with an overdue request behind it must raise, and that end with the outage.
OUTAGE_ALERTS = {"GdprRequestOverdue", "GdprApiUnreachable", "GdprEventHistoryStale"}
# Alerts this scenario must not raise at any point while the daemon runs.
QUIET_ALERTS = {"GdprDaemonDown", "GdprDatabaseUnreachable", "GdprApiCredentialsRefused", "GdprQueueStuck",
                "GdprRequestsNeedAPerson", "GdprUnconfirmedSubmissions", "GdprRequestDueSoon"}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rules_with_short_for(text: str) -> str:
    """alerts.yaml with every `for:` set to SHORT_FOR and nothing else changed (expressions included)."""
    out, n = re.subn(r"(?m)^(\s+for:\s*)\S+\s*$", rf"\g<1>{SHORT_FOR}", text)
    assert n == len(alert_rules())
    shipped, short = yaml.safe_load(text), yaml.safe_load(out)
    for g1, g2 in zip(shipped["groups"], short["groups"], strict=True):
        for r1, r2 in zip(g1["rules"], g2["rules"], strict=True):
            assert {**r1, "for": SHORT_FOR} == r2
    return out


@dataclass
class Prometheus:
    url: str
    http: aiohttp.ClientSession

    async def api(self, path: str, **params: str) -> object:
        async with self.http.get(self.url + path, params=params) as resp:
            body = await resp.json()
        assert body["status"] == "success", body
        return body["data"]

    async def alerts(self) -> dict[str, list[dict]]:
        """Active alerts (pending or firing) by name."""
        data = await self.api("/api/v1/alerts")
        assert isinstance(data, dict)
        found: dict[str, list[dict]] = {}
        for alert in data["alerts"]:
            found.setdefault(alert["labels"]["alertname"], []).append(alert)
        return found

    async def firing(self) -> set[str]:
        return {name for name, alerts in (await self.alerts()).items() if any(a["state"] == "firing" for a in alerts)}

    async def query(self, expr: str) -> list[dict]:
        data = await self.api("/api/v1/query", query=expr)
        assert isinstance(data, dict)
        return data["result"]


@pytest.fixture
async def prometheus(tmp_path: Path) -> AsyncIterator[tuple[Prometheus, int]]:
    """A Prometheus server on a free loopback port, scraping job gdpr-daemon every second at a port
    the test's daemon will serve, with the shipped rules (`for:` shortened); killed at teardown."""
    binary = find_tool("prometheus")
    daemon_port, port = free_port(), free_port()
    (tmp_path / "alerts.yaml").write_text(rules_with_short_for(ALERTS.read_text(encoding="utf-8")), encoding="utf-8")
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp_path / "alerts.yaml")],
        "scrape_configs": [{"job_name": "gdpr-daemon", "static_configs": [{"targets": [f"127.0.0.1:{daemon_port}"]}]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    log = (tmp_path / "prometheus.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
        stdout=log, stderr=log,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            prom = Prometheus(f"http://127.0.0.1:{port}", http)

            async def ready() -> bool:
                if proc.returncode is not None:
                    output = (tmp_path / "prometheus.log").read_text(errors="replace")
                    raise AssertionError(f"prometheus exited {proc.returncode}: {output}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(prom.url + "/-/ready") as resp:
                        return resp.status == 200
                return False

            await wait_until(ready, timeout=30, interval=0.2, what="prometheus to be ready")
            yield prom, daemon_port
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()


@pytest.mark.slow
async def test_alerts_fire_during_an_api_outage_and_resolve_after_it(prometheus, sim, pg, db_url, sim_url, log_file):
    """Real Prometheus, shipped rules (`for:` cut to 3 s): outage alerts fire, then resolve; a stop pages."""
    # An overdue request behind an API outage fires GdprRequestOverdue, GdprApiUnreachable, GdprApiErrors and
    # GdprEventHistoryStale, and nothing else; once the simulator answers again they resolve (GdprApiErrors,
    # a ratio over 5 minutes, is not waited for).  Every panel and rule query then runs on this Prometheus
    # over metrics it scraped from the daemon, and stopping the daemon fires GdprDaemonDown.
    prom, daemon_port = prometheus
    sim.faults = FaultConfig(rate_5xx=1.0)  # the outage, from before the daemon starts
    started = time.monotonic()
    daemon = await start_daemon(
        db_url, sim_url, log_file,
        GDPR_DAEMON_HEALTH_ADDRESS=f"127.0.0.1:{daemon_port}",
        GDPR_DAEMON_QUEUE_MAX_ATTEMPTS="100",  # the request waits out the outage, it does not end failed
        GDPR_DAEMON_QUEUE_BACKOFF_MAX_SECONDS="1",
        GDPR_DAEMON_EVENTS_PULL_INTERVAL_SECONDS="2",
    )  # fmt: skip

    async def scraped_up() -> bool:
        # Until its first successful scrape `up` is 0 and GdprDaemonDown, rightly, fires.
        up = await prom.query('up{job="gdpr-daemon"}')
        return bool(up) and up[0]["value"][1] == "1" and "GdprDaemonDown" not in await prom.alerts()

    await wait_until(scraped_up, timeout=60, interval=0.5, what="prometheus to scrape the daemon")
    # Received 40 days ago: overdue from the moment it is entered.
    rid = await pg.fetchval(
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, received_at) "
        "VALUES ('forget', 1001, 'Contact', '0035g00000OvErDuE', now() - interval '40 days') RETURNING id"
    )
    raised = OUTAGE_ALERTS | {"GdprApiErrors"}

    async def all_raised() -> set[str] | None:
        firing = await prom.firing()
        assert not firing & QUIET_ALERTS, f"false alarm: {firing & QUIET_ALERTS}"
        return firing if raised <= firing else None

    firing = await wait_until(all_raised, timeout=90, interval=0.5, what=f"{sorted(raised)} to fire")
    assert firing == raised, firing
    overdue = (await prom.alerts())["GdprRequestOverdue"][0]
    assert overdue["labels"]["severity"] == "critical"
    assert overdue["annotations"]["summary"] == "1 GDPR request(s) past the legal deadline and not submitted"
    assert "`gdpr-daemon requests list --overdue`" in overdue["annotations"]["description"]
    assert await pg.fetchval("SELECT status FROM gdpr_requests WHERE id = $1", rid) in ("pending", "in_flight")

    sim.faults = FaultConfig()  # the API is back

    async def resolved() -> bool:
        active = set(await prom.alerts())
        assert not active & QUIET_ALERTS, f"false alarm: {active & QUIET_ALERTS}"
        return not active & OUTAGE_ALERTS

    await wait_until(resolved, timeout=90, interval=0.5, what=f"{sorted(OUTAGE_ALERTS)} to resolve")
    assert await pg.fetchval("SELECT status FROM gdpr_requests WHERE id = $1", rid) == "submitted"

    # Every query of the dashboard and the rules runs on this Prometheus, over names it scraped.
    scraped = set(await prom.api("/api/v1/label/__name__/values"))  # type: ignore[arg-type]
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [e for _, e in dashboard_exprs(dashboard)] + [r["expr"] for r in alert_rules()]
    for expr in exprs:
        await prom.query(for_promtool(expr))
        missing = {name for name, _ in selectors(expr)} - scraped
        assert not missing, f"{missing} never scraped from the daemon ({expr})"
    assert await prom.query("max(gdpr_daemon_requests{status='submitted'})") != []

    assert await stop_daemon(daemon) == 0

    async def down() -> bool:
        return "GdprDaemonDown" in await prom.firing()

    await wait_until(down, timeout=30, interval=0.5, what="GdprDaemonDown to fire")
    print(f"end-to-end alert scenario: {time.monotonic() - started:.1f} s")
