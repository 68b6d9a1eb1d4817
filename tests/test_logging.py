"""Personal data and secrets stay out of logs; lines about a request carry its ids."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gdpr_daemon import logs
from tests.helpers import LOG_DIR, SIM_PASSWORD, insert_rectify, pii

ROOT = Path(__file__).resolve().parent.parent


def test_redact_by_key_at_any_depth():
    """Values under sensitive keys are replaced, at any depth; other values are kept."""
    event = {
        "event": "x",
        "password": "p",
        "headers": {"X-SESSION-ID": "s", "Accept": "json"},
        "items": [{"value": "v", "record_id": "003"}],
        "session_id": "s2",
        "request_id": 7,
    }
    out = logs.redact(None, "info", event)
    assert out["password"] == out["session_id"] == logs.REDACTED
    assert out["headers"] == {"X-SESSION-ID": logs.REDACTED, "Accept": "json"}
    assert out["items"] == [{"value": logs.REDACTED, "record_id": "003"}]
    assert out["request_id"] == 7


def test_json_lines_render_what_orjson_refuses(captured_logs):
    """A log line never fails to render: integer keys, huge integers and odd objects come out as JSON."""
    log = logs.get_logger("test")
    log.info("odd_values", counts={1: "a"}, big=2**70, obj=ValueError("x"), items=({"value": "v"},))
    line = json.loads(captured_logs.getvalue().splitlines()[-1])
    assert line["event"] == "odd_values" and line["counts"] == {"1": "a"} and line["big"] == 2**70
    assert line["obj"] == "x" and line["items"] == [{"value": logs.REDACTED}]


def test_leak_scan_fails_a_run_that_logged_a_value_or_a_secret(tmp_path):
    """The scan at the end of every run is no formality: a run whose logs hold a rectify value
    or a password fails, and says which."""
    env = dict(os.environ, GDPR_TEST_LOG_DIR=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/leak_probe.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout, "the probe itself passed: the scan alone failed the run"
    assert "PERSONAL DATA OR SECRETS IN LOGS" in proc.stderr
    assert "a rectify value" in proc.stderr and "a secret" in proc.stderr


@pytest.fixture
def captured_logs():
    """The production logging pipeline (JSON, debug) into a buffer; restored afterwards."""
    buf = io.StringIO()
    logs.configure("json", "debug", stream=buf)
    yield buf
    logs.configure("json", "debug", stream=(LOG_DIR / "suite.log").open("a", buffering=1, encoding="utf-8"))


async def test_daemon_logs_no_value_password_or_session(daemon_for, sim, settings_for, engine, pg, captured_logs):
    """A debug-level run that re-logs in logs no rectify value, password or session id, and names each request."""
    from gdpr_daemon.simulator import FaultConfig

    sim.faults = FaultConfig(session_expiry_after_calls=2)
    values = [pii(i) for i in range(3)]
    ids = [await insert_rectify(pg, 1001, v) for v in values]
    await (await daemon_for(settings_for(log_level="debug", queue_concurrency=1))).run_once()
    text = captured_logs.getvalue()
    assert text, "the run logged something"
    for secret in [*values, SIM_PASSWORD, *sim.state.credentials.issued]:
        assert secret not in text
    lines = [json.loads(line) for line in text.splitlines()]
    submitted = [ln for ln in lines if ln["event"] == "request_submitted"]
    assert sorted(ln["request_id"] for ln in submitted) == ids
    assert all({"service_id", "attempt", "ownbackup_request_id"} <= ln.keys() for ln in submitted)


def test_a_module_logger_follows_every_configuration(captured_logs):
    """A logger made once at import time (as every module's is) writes with the configuration of the moment:
    a later `logs.configure` (another stream, another level) and a direct `structlog.configure` (a test's level)
    both take effect, though the assembled logger is reused between lines."""
    import structlog

    log = logs.get_logger("test")
    log.debug("first")
    assert json.loads(captured_logs.getvalue().splitlines()[-1])["event"] == "first"
    other = io.StringIO()
    logs.configure("json", "info", stream=other)
    try:
        log.debug("hidden")
        log.info("second")
        assert [json.loads(x)["event"] for x in other.getvalue().splitlines()] == ["second"]
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(10))
        log.debug("third")
        assert json.loads(other.getvalue().splitlines()[-1])["event"] == "third"
    finally:
        logs.configure("json", "debug", stream=captured_logs)
    assert "hidden" not in captured_logs.getvalue() + other.getvalue()


def test_timestamps_are_utc_iso_to_the_microsecond(captured_logs):
    """Each line's timestamp is ISO 8601 in UTC with microseconds and a Z, and is the time the line was logged."""
    import re
    import time
    from datetime import datetime

    before = time.time()
    log = logs.get_logger("test")
    for _ in range(3):
        log.info("stamped")
    after = time.time()
    stamps = [json.loads(x)["timestamp"] for x in captured_logs.getvalue().splitlines()[-3:]]
    for stamp in stamps:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp), stamp
        at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        assert before - 1e-6 <= at <= after + 1e-6
    assert stamps == sorted(stamps)
