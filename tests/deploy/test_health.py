"""/healthz, /readyz and /metrics, served in-process against the test's own database."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from gdpr_daemon.db import migrate
from gdpr_daemon.health import HealthServer, lifecycle_check, parse_address
from gdpr_daemon.ownbackup.errors import ServerError
from gdpr_daemon.ownbackup.health import ApiHealth
from gdpr_daemon.rules import STATUSES
from tests.helpers import insert_forget, wait_until


@pytest.fixture
async def server(engine):
    api = ApiHealth()
    srv = HealthServer("127.0.0.1:0", engine, api, db_timeout=2.0)
    await srv.start()
    yield srv
    await srv.stop()


async def get(srv: HealthServer, path: str) -> tuple[int, str]:
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout) as http, http.get(srv.url + path) as resp:
        return resp.status, await resp.text()


async def ready(srv: HealthServer) -> tuple[int, dict]:
    status, body = await get(srv, "/readyz")
    return status, json.loads(body)


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, parsed with prometheus_client's own parser."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_parse_address():
    """host:port and [v6]:port both parse; an empty host means every interface."""
    assert parse_address("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_address("[::1]:9") == ("::1", 9)
    assert parse_address(":8080") == ("0.0.0.0", 8080)


async def test_healthz_answers(server):
    """/healthz answers 200 while the event loop runs."""
    assert await get(server, "/healthz") == (200, '{"status": "ok"}')


async def test_readyz_ready_with_current_schema(server):
    """/readyz is 200 when the database answers at the newest migration and the API is fine."""
    status, body = await ready(server)
    assert (status, body) == (200, {"status": "ready", "checks": {"database": "ok", "schema": "ok", "api": "ok"}})


async def test_readyz_follows_api_health(server):
    """/readyz turns 503 naming the API after a failed contact, and 200 after the next success."""
    server.api_health.record_failure(ServerError("OwnBackup answered 503 Service Unavailable", status=503))
    status, body = await ready(server)
    assert status == 503 and body["status"] == "not ready"
    assert "503 Service Unavailable" in body["checks"]["api"] and body["checks"]["database"] == "ok"
    server.api_health.record_success()
    assert (await ready(server))[0] == 200


async def test_readyz_refuses_an_old_schema(server, pg):
    """/readyz is 503 when the schema is not at the newest migration, and says to migrate."""
    assert migrate.head_revision() != "0001"
    await pg.execute("UPDATE alembic_version SET version_num = '0001'")
    status, body = await ready(server)
    assert status == 503
    assert body["checks"]["database"] == "ok" and "gdpr-daemon migrate" in body["checks"]["schema"]


async def test_readyz_lifecycle_check(engine):
    """With the daemon's lifecycle check, /readyz is 503 while starting and while stopping."""
    started, stop = asyncio.Event(), asyncio.Event()
    srv = HealthServer("127.0.0.1:0", engine, None, ready_check=lifecycle_check(started, stop))
    await srv.start()
    try:
        status, body = await ready(srv)
        assert (status, body["checks"]["daemon"]) == (503, "starting")
        started.set()
        assert (await ready(srv))[0] == 200
        stop.set()
        status, body = await ready(srv)
        assert (status, body["checks"]["daemon"]) == (503, "stopping")
    finally:
        await srv.stop()


async def test_readyz_follows_the_database(server, db_url, pg_admin_url):
    """/readyz goes 503 when the database is unreachable and 200 when it is back; /healthz stays 200."""
    name = make_url(db_url).database
    assert (await ready(server))[0] == 200  # the pool holds a connection now
    admin = await asyncpg.connect(pg_admin_url)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        status, body = await ready(server)
        assert status == 503 and body["checks"]["database"] != "ok", body
        assert body["checks"]["schema"] == "not checked"
        assert (await get(server, "/healthz"))[0] == 200, "liveness does not depend on the database"
        status, text = await get(server, "/metrics")
        assert status == 200 and samples(text)[("gdpr_daemon_database_up", ())] == 0
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()

    async def is_ready() -> bool:
        return (await ready(server))[0] == 200

    await wait_until(is_ready, timeout=15, interval=0.1, what="/readyz to recover")


async def test_metrics_queue_depth_matches_the_table(server, pg):
    """/metrics parses as Prometheus text; queue depth, status counts and overdue match the table."""
    await insert_forget(pg, 1001, 7)
    await insert_forget(pg, 1002, 3, prefix="004")
    await pg.execute("UPDATE gdpr_requests SET status = 'cancelled' WHERE id IN (SELECT id FROM gdpr_requests LIMIT 2)")
    await pg.execute(
        "UPDATE gdpr_requests SET created_at = now() - interval '1 hour' "
        "WHERE id = (SELECT min(id) FROM gdpr_requests WHERE status = 'pending')"
    )
    # Deadlines never move earlier (a trigger refuses it): an overdue request is one received long ago.
    await pg.execute(
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, received_at) "
        "VALUES ('forget', 1001, 'Contact', 'late', now() - interval '40 days')"
    )
    status, text = await get(server, "/metrics")
    assert status == 200
    got = samples(text)
    pending = await pg.fetchval("SELECT count(*) FROM gdpr_requests WHERE status = 'pending'")
    assert pending == 9
    assert got[("gdpr_daemon_queue_depth", ())] == pending
    by_status = dict(await pg.fetch("SELECT status, count(*) FROM gdpr_requests GROUP BY 1"))
    for s in STATUSES:
        assert got[("gdpr_daemon_requests", (("status", s),))] == by_status.get(s, 0), s
    assert got[("gdpr_daemon_requests_overdue", ())] == 1
    assert got[("gdpr_daemon_oldest_pending_age_seconds", ())] >= 3600
    assert got[("gdpr_daemon_database_up", ())] == 1


async def test_metrics_lists_every_metric_the_issue_asks_for(server):
    """Every metric family operators alert on is exposed, with its type."""
    families = {f.name: f.type for f in text_string_to_metric_families((await get(server, "/metrics"))[1])}
    expected = {
        "gdpr_daemon_requests": "gauge",
        "gdpr_daemon_submissions": "counter",
        "gdpr_daemon_api_call_seconds": "histogram",
        "gdpr_daemon_queue_depth": "gauge",
        "gdpr_daemon_oldest_pending_age_seconds": "gauge",
        "gdpr_daemon_requests_overdue": "gauge",
        "gdpr_daemon_events_ingested": "counter",
        "gdpr_daemon_event_cursor": "gauge",
        "gdpr_daemon_last_event_pull_timestamp_seconds": "gauge",
        "gdpr_daemon_api_retries": "counter",
        "gdpr_daemon_api_relogins": "counter",
    }
    assert {k: families.get(k) for k in expected} == expected


async def test_metrics_without_and_with_the_event_cursor_table(server, pg):
    """Before event_cursors exists /metrics still answers; once it holds a cursor, the gauges show it."""
    exists = await pg.fetchval("SELECT to_regclass('event_cursors') IS NOT NULL")
    if not exists:
        status, text = await get(server, "/metrics")
        assert status == 200 and samples(text)[("gdpr_daemon_database_up", ())] == 1
        await pg.execute(
            "CREATE TABLE event_cursors (account text PRIMARY KEY, last_event_id bigint NOT NULL, "
            "updated_at timestamptz NOT NULL)"
        )
    await pg.execute("DELETE FROM event_cursors")
    await pg.execute("INSERT INTO event_cursors VALUES ('http://127.0.0.1:1', 4242, '2030-01-02T03:04:05Z')")
    got = samples((await get(server, "/metrics"))[1])
    assert got[("gdpr_daemon_event_cursor", ())] == 4242
    assert got[("gdpr_daemon_last_event_pull_timestamp_seconds", ())] >= 1893553445  # 2030-01-02T03:04:05Z


async def test_readyz_on_a_schema_newer_than_this_version(server, pg):
    """/readyz is 503 on a schema a newer version migrated to, and does not ask to migrate."""
    await pg.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    status, body = await ready(server)
    assert status == 503 and "newer than this version knows" in body["checks"]["schema"]
