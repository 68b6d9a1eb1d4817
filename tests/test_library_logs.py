"""The libraries' log records go through the same pipeline as the daemon's own lines (one
redacted JSON object a line), and a request's ids are on every line logged while it is
worked on, the transport's and the authenticator's included.

Real parts only: the simulator over loopback, a real Postgres, a real APScheduler.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from gdpr_daemon import logs
from tests.helpers import insert_forget, insert_rectify, pii, wait_until


@pytest.fixture
def captured() -> io.StringIO:
    """The production pipeline (JSON, debug) into a buffer; the suite's set-up comes back after the test."""
    buf = io.StringIO()
    logs.configure("json", "debug", stream=buf)
    return buf


def json_lines(buf: io.StringIO) -> list[dict[str, Any]]:
    """Every line of the buffer, each of which must be one JSON object."""
    return [json.loads(line) for line in buf.getvalue().splitlines()]


async def test_transport_and_auth_lines_carry_the_request_they_work_for(daemon_for, sim, settings_for, pg, captured):
    """During a real submission the transport's ``ownbackup_call`` line and the authenticator's
    re-login line name the request (id, service, attempt), bound once by the worker; lines
    logged outside any request (the events pull) name none."""
    from gdpr_daemon.simulator import FaultConfig

    sim.faults = FaultConfig(session_expiry_after_calls=2)  # re-logins happen during submissions
    value = pii("t")
    ids = await insert_forget(pg, 1001, 3) + [await insert_rectify(pg, 1002, value)]
    report = await (await daemon_for(settings_for(log_level="debug", queue_concurrency=1))).run_once()
    assert report.submitted == 4

    assert value not in captured.getvalue()
    lines = json_lines(captured)
    rows = {r["id"]: r for r in await pg.fetch("SELECT id, service_id, attempts FROM gdpr_requests")}
    calls = [ln for ln in lines if ln["event"] == "ownbackup_call" and ln["endpoint"] in ("gdpr_forget", "gdpr_rectify")]
    assert {ln["request_id"] for ln in calls} == set(ids)  # a call refused with 401 is sent again: more lines
    for ln in calls:
        row = rows[ln["request_id"]]
        assert (ln["service_id"], ln["attempt"]) == (row["service_id"], row["attempts"])
    relogins = [ln for ln in lines if ln["event"] == "ownbackup_reauthenticated"]
    assert relogins and all(ln["request_id"] in ids for ln in relogins)
    # The service list is first read, and the first login made, while the first request is
    # worked on (run --once reads it when a request needs it): those lines name that request.
    # The events pull after the submissions works for no request: its lines name none.
    pulls = [ln for ln in lines if ln["event"] == "ownbackup_call" and ln["endpoint"] == "events"]
    assert pulls and not any("request_id" in ln for ln in pulls), "no binding outlives its request"
    submitted = [ln for ln in lines if ln["event"] == "request_submitted"]
    assert sorted(ln["request_id"] for ln in submitted) == sorted(ids)
    assert all({"service_id", "attempt", "ownbackup_request_id"} <= ln.keys() for ln in submitted)


async def test_postgres_warning_comes_out_as_redacted_json(pg_admin_url, captured):
    """A WARNING Postgres sends on a real asyncpg connection (the listener the engine would add)
    is one JSON line with level, timestamp and logger, the secrets in its text redacted; a
    library's ``extra`` fields are not rendered, what is bound at the time is."""
    conn = await asyncpg.connect(pg_admin_url)
    try:
        conn.add_log_listener(logs.postgres_message)
        await conn.execute(
            "DO $$ BEGIN RAISE WARNING 'login with password=% and token: %', 'hunter2x', 'tok-77q'; END $$"
        )
        await wait_until(lambda: _async("asyncpg" in captured.getvalue()), timeout=5)
        conn.remove_log_listener(logs.postgres_message)
    finally:
        await conn.close()
    with structlog.contextvars.bound_contextvars(request_id=4711):
        logging.getLogger("asyncpg").warning("with extra", extra={"password": "hunter3y", "note": "n"})

    text = captured.getvalue()
    assert "hunter2x" not in text and "tok-77q" not in text and "hunter3y" not in text
    warning, extra = [ln for ln in json_lines(captured) if ln.get("logger") == "asyncpg"]
    assert warning["level"] == "warning" and warning["timestamp"].endswith("Z")
    assert warning["event"] == "postgres warning (01000): login with password=[redacted] and token: [redacted]"
    assert extra["event"] == "with extra" and "password" not in extra and "note" not in extra
    assert extra["request_id"] == 4711


async def test_engine_passes_postgres_warnings_to_the_log(engine, captured):
    """The daemon's engine adds the listener itself: a WARNING raised by a statement it runs is a JSON line."""
    async with engine.connect() as conn:
        await conn.exec_driver_sql("DO $$ BEGIN RAISE WARNING 'slow disk; password=hunter4z'; END $$")
    await wait_until(lambda: _async("asyncpg" in captured.getvalue()), timeout=5)
    (line,) = [ln for ln in json_lines(captured) if ln.get("logger") == "asyncpg"]
    assert line["level"] == "warning" and line["event"] == "postgres warning (01000): slow disk; password=[redacted]"
    assert "hunter4z" not in captured.getvalue()


async def test_library_traceback_is_json_without_sql_parameters(engine, captured):
    """A library that logs an exception (asyncio's handler, here with a real SQLAlchemy error
    whose text shows the statement's parameters) writes one JSON line: the traceback is its
    ``exception`` text, the parameter (which both SQLAlchemy's ``[parameters: ...]`` and
    asyncpg's message show) and a URL's password redacted."""
    value = pii("sql")
    with pytest.raises(sa.exc.DBAPIError) as caught:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT CAST(:v AS integer)"), {"v": value})
    assert value in str(caught.value), "asyncpg's own message quotes the argument"
    assert "[SQL parameters hidden due to hide_parameters=True]" in str(caught.value), "the engine hides its parameters"
    asyncio.get_running_loop().call_exception_handler(
        {"message": "postgresql://daemon:s3cr3t-pw@db/gdpr failed", "exception": caught.value}
    )
    text = captured.getvalue()
    assert value not in text and "s3cr3t-pw" not in text
    (line,) = [ln for ln in json_lines(captured) if ln.get("logger") == "asyncio"]
    assert line["level"] == "error" and line["event"].startswith("postgresql://daemon:[redacted]@db/gdpr failed")
    assert "Traceback (most recent call last)" in line["exception"]
    assert "query argument $1: [redacted] ('str' object cannot be interpreted as an integer)" in line["exception"]


async def test_apscheduler_job_error_is_one_json_line(captured):
    """A job that raises is logged by APScheduler as one JSON line (level, logger, the traceback
    inside it), not as plain text lines."""
    ran = asyncio.Event()

    async def job() -> None:
        ran.set()
        raise ValueError("the job broke")

    scheduler = AsyncIOScheduler()
    scheduler.add_job(job, id="breaks", name="breaks")
    scheduler.start()
    try:
        await asyncio.wait_for(ran.wait(), 5)
        await wait_until(lambda: _async("raised an exception" in captured.getvalue()), timeout=5)
    finally:
        scheduler.shutdown(wait=False)
    lines = json_lines(captured)  # every line parses: no plain traceback text
    (line,) = [ln for ln in lines if "raised an exception" in ln["event"]]
    assert line["level"] == "error" and line["logger"] == "apscheduler.executors.default"
    assert line["exception"].startswith("Traceback") and "ValueError: the job broke" in line["exception"]


def test_console_format_renders_library_lines_too():
    """With the console format a library's line is rendered like the daemon's (level, logger), not bare."""
    buf = io.StringIO()
    logs.configure("console", "info", stream=buf)
    logging.getLogger("aiohttp.client").warning("connection to postgresql://u:pw-9z@h lost")
    (line,) = buf.getvalue().splitlines()
    assert "[warning" in line and "aiohttp.client" in line and "pw-9z" not in line


async def _async(value: bool) -> bool:
    return value
