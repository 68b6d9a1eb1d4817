"""Personal data and secrets stay out of logs; lines about a request carry its ids."""

from __future__ import annotations

import io
import json

import pytest

from gdpr_daemon import logging as glog
from gdpr_daemon.daemon import Daemon
from tests.conftest import LOG_DIR, SIM_PASSWORD, pii
from tests.helpers import insert_rectify


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
    out = glog.redact(None, "info", event)
    assert out["password"] == out["session_id"] == glog.REDACTED
    assert out["headers"] == {"X-SESSION-ID": glog.REDACTED, "Accept": "json"}
    assert out["items"] == [{"value": glog.REDACTED, "record_id": "003"}]
    assert out["request_id"] == 7


def test_json_lines_render_what_orjson_refuses(captured_logs):
    """A log line never fails to render: integer keys, huge integers and odd objects come out as JSON."""
    log = glog.get_logger("test")
    log.info("odd_values", counts={1: "a"}, big=2**70, obj=ValueError("x"), items=({"value": "v"},))
    line = json.loads(captured_logs.getvalue().splitlines()[-1])
    assert line["event"] == "odd_values" and line["counts"] == {"1": "a"} and line["big"] == 2**70
    assert line["obj"] == "x" and line["items"] == [{"value": glog.REDACTED}]


@pytest.fixture
def captured_logs():
    """The production logging pipeline (JSON, debug) into a buffer; restored afterwards."""
    buf = io.StringIO()
    glog.configure("json", "debug", stream=buf)
    yield buf
    glog.configure("json", "debug", stream=(LOG_DIR / "suite.log").open("a", buffering=1, encoding="utf-8"))


async def test_daemon_logs_no_value_password_or_session(sim, settings_for, engine, pg, captured_logs):
    """A debug-level run that re-logs in logs no rectify value, password or session id, and names each request."""
    from gdpr_daemon.simulator import FaultConfig

    sim.faults = FaultConfig(session_expiry_after_calls=2)
    values = [pii(i) for i in range(3)]
    ids = [await insert_rectify(pg, 1001, v) for v in values]
    await Daemon(settings_for(log_level="debug", queue_concurrency=1), engine=engine).run_once()
    text = captured_logs.getvalue()
    assert text, "the run logged something"
    for secret in [*values, SIM_PASSWORD, *sim.state.credentials.issued]:
        assert secret not in text
    lines = [json.loads(line) for line in text.splitlines()]
    submitted = [ln for ln in lines if ln["event"] == "request_submitted"]
    assert sorted(ln["request_id"] for ln in submitted) == ids
    assert all({"service_id", "attempt", "ownbackup_request_id"} <= ln.keys() for ln in submitted)
