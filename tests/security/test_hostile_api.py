"""A hostile or broken OwnBackup API disturbs one request, never the daemon (issue 10, section 5).

Each test runs the attack as it would happen: a real aiohttp server on loopback
(tests/security/hostile.py) answers the daemon, which runs against a real Postgres.  What
an auditor reads (``last_error``, the history), what the log holds and what ``/readyz``,
``check`` and ``services`` serve are checked for the secrets and personal values the
daemon sent.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from urllib.parse import quote_plus

import aiohttp
import asyncpg
import psutil
import pytest

from gdpr_daemon.db.queue import Outcome, QueueStore
from gdpr_daemon.health import api_failure
from gdpr_daemon.ownbackup import BadAnswer, ClientConfig, OwnBackupClient, RetryPolicy, SessionAuth
from gdpr_daemon.submit.recorder import Recorder
from tests.helpers import (
    PII_MARKER,
    SECRETS_SEEN,
    SIM_EMAIL,
    SIM_PASSWORD,
    pii,
    run_cli,
    start_daemon,
    stop_daemon,
    wait_until,
)
from tests.security.hostile import HUGE_BYTES

MiB = 2**20


async def forget(pg, record_id: str, *, comment: str | None = None, service: int = 1001) -> int:
    return await pg.fetchval(
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, comment) "
        "VALUES ('forget', $1, 'Contact', $2, $3) RETURNING id",
        service, record_id, comment,
    )  # fmt: skip


async def rectify(pg, record_id: str, value: str, *, comment: str | None = None) -> int:
    return await pg.fetchval(
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, field, value, comment) "
        "VALUES ('rectify', 1001, 'Contact', $1, 'Email', $2, $3) RETURNING id",
        record_id, value, comment,
    )  # fmt: skip


async def auditor_text(pg, rid: int) -> str:
    """Everything an auditor reads of one request: its last_error and every history line."""
    error = await pg.fetchval("SELECT coalesce(last_error, '') FROM gdpr_requests WHERE id = $1", rid)
    details = await pg.fetch("SELECT detail FROM gdpr_request_log WHERE request_id = $1 ORDER BY id", rid)
    return "\n".join([error, *(d["detail"] for d in details)])


def hostile_settings(settings_for, url: str, **extra):
    # Retries an hour away: each run below makes exactly one attempt per request.
    return settings_for(ownbackup_url=url, queue_backoff_base_seconds=3600, queue_backoff_max_seconds=3600, **extra)


async def test_odd_answers_fail_only_their_own_request(daemon_for, hostile, settings_for, engine, pg, rendered_log):
    """An id beyond bigint, NUL, a lone surrogate or ESC in a message: a clear error on that request only; the good
    ones are recorded once and not sent again after a restart; no database outage is logged."""
    api, url = hostile
    good = {await forget(pg, f"GOOD-{i}"): f"GOOD-{i}" for i in range(3)}
    huge = await forget(pg, "HUGE-ID-1")
    nul, surrogate, esc = await forget(pg, "NUL-1"), await forget(pg, "SURROGATE-1"), await forget(pg, "ESC-1")

    report = await asyncio.wait_for((await daemon_for(hostile_settings(settings_for, url))).run_once(), 60)
    assert (report.submitted, report.failed, report.retry_later) == (3, 3, 1)

    rows = {r["id"]: r for r in await pg.fetch("SELECT * FROM gdpr_requests")}
    for rid in good:
        assert rows[rid]["status"] == "submitted" and rows[rid]["ownbackup_request_id"] > 5000
    assert rows[huge]["status"] == "pending" and rows[huge]["ownbackup_request_id"] is None
    assert "'id' outside the 64-bit range" in rows[huge]["last_error"]
    assert "outside the 64-bit range" in await auditor_text(pg, huge)
    expected = {nul: "record \\x00 refused", surrogate: "record \\ud800 refused", esc: "refused \\x1b]0;owned\\x07"}
    for rid, shown in expected.items():
        assert rows[rid]["status"] == "failed", rows[rid]["last_error"]
        assert shown in rows[rid]["last_error"] and shown in await auditor_text(pg, rid)
        assert "\x1b" not in await auditor_text(pg, rid)

    # A restart: nothing already answered goes out again.
    await asyncio.wait_for((await daemon_for(hostile_settings(settings_for, url))).run_once(), 60)
    assert all(api.calls[record] == 1 for record in good.values()), api.calls
    assert api.calls["NUL-1"] == api.calls["SURROGATE-1"] == api.calls["ESC-1"] == api.calls["HUGE-ID-1"] == 1
    events = [e["event"] for e in rendered_log.events()]
    assert "database_unavailable" not in events and "request_submitted" in events


async def test_echoed_secrets_never_reach_storage_or_log(daemon_for, hostile, settings_for, engine, pg, rendered_log):
    """An API that repeats the form, the session id and the password in its errors (400, and 599 in the reason
    phrase too): last_error, the history and the log hold none of them, in any encoding."""
    api, url = hostile
    value = f"{pii('echo')} new@example.org"  # a space and an @: URL-encoding changes it
    comment = f"{PII_MARKER}comment Art. 16"
    records = {"ECHO-0035g00000XyZ", "ECHO5-0035g00000XyZ", "ECHO-0035g00000QrS"}
    ids = [
        await rectify(pg, "ECHO-0035g00000XyZ", value, comment=comment),
        await forget(pg, "ECHO5-0035g00000XyZ", comment=comment),
        await forget(pg, "ECHO-0035g00000QrS"),
    ]
    SECRETS_SEEN.update(records)  # never to be logged either

    await asyncio.wait_for((await daemon_for(hostile_settings(settings_for, url))).run_once(), 60)

    assert api.sessions and sum(api.calls.values()) == 3
    secrets_sent = [*records, value, quote_plus(value), comment, quote_plus(comment), SIM_PASSWORD, *api.sessions]
    rows = {r["id"]: r for r in await pg.fetch("SELECT * FROM gdpr_requests")}
    assert [rows[i]["status"] for i in ids] == ["failed", "pending", "failed"]
    for rid in ids:
        text = await auditor_text(pg, rid)
        assert "[redacted]" in rows[rid]["last_error"], rows[rid]["last_error"]
        leaked = [s for s in secrets_sent if s in text]
        assert not leaked, (leaked, text)
        assert PII_MARKER not in text
    assert "OwnBackup answered 599 Busy [redacted] to gdpr_forget" in rows[ids[1]]["last_error"], "the reason too"
    leaked = [s for s in secrets_sent if s in rendered_log.text]
    assert not leaked and PII_MARKER not in rendered_log.text


async def test_readyz_check_and_services_show_no_echo(hostile, db_url, sim_url, log_file):
    """/readyz names the failing check in its own words; `check` and `services` show the API's names with the
    session id and password redacted and escape sequences escaped; the daemon's log holds no secret."""
    api, url = hostile
    api.services_mode = "503"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = await start_daemon(db_url, url, log_file, GDPR_DAEMON_HEALTH_ADDRESS=f"127.0.0.1:{port}")
    pg = await asyncpg.connect(db_url)
    try:
        await forget(pg, "GOOD-1")  # its service must be looked up: the call that fails

        async def api_check() -> str | None:
            try:
                async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                    body = await resp.json()
            except (aiohttp.ClientError, ValueError):
                return None
            return body["checks"]["api"] if body["checks"].get("api", "ok") != "ok" else None

        shown = await wait_until(api_check, timeout=30, what="/readyz reporting the API")
    finally:
        await pg.close()
        assert await stop_daemon(proc) == 0
    assert shown.endswith(api_failure("ServerError", 503)), shown
    assert "maintenance" not in shown and "Down" not in shown and not any(s in shown for s in api.sessions)
    daemon_log = log_file.read_text()
    assert api.sessions and not [s for s in [SIM_PASSWORD, *api.sessions] if s in daemon_log]

    api.services_mode = "echo"
    sessions_before = len(api.sessions)
    for argv in (("check",), ("services",), ("services", "--format", "json"), ("services", "--format", "csv")):
        code, out, err = await run_cli(db_url, url, *argv)
        assert code == 0 or argv == ("check",), err
        assert "\x1b" not in out + err and "\u202e" not in out + err
        assert "\\x1b]0;owned" in out or "\\u001b]0;owned" in out, out
        assert not [s for s in [SIM_PASSWORD, *api.sessions] if s in out + err], out
        assert "[redacted]" in out
    assert len(api.sessions) > sessions_before


class PeakRss:
    """The highest resident set size of this process while the block runs (psutil, sampled every 5 ms)."""

    def __enter__(self) -> PeakRss:
        self.proc = psutil.Process()
        self.start = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def growth(self) -> int:
        return self.peak - self.start


@pytest.mark.parametrize("mode", ["huge", "huge-length", "gzip-bomb"])
async def test_a_one_gigabyte_answer_is_refused_with_bounded_memory(hostile, mode):
    """A 1 GiB answer to GET /api/v1/services (streamed, declared, or a gzip bomb) is a BadAnswer after at most
    ownbackup_max_response_bytes, with the process's memory growing by far less than the answer."""
    api, url = hostile
    api.services_mode = mode
    config = ClientConfig(base_url=url, auth=SessionAuth(SIM_EMAIL, SIM_PASSWORD), retry=RetryPolicy(max_retries=0))
    with PeakRss() as rss:
        async with OwnBackupClient(config) as client:
            with pytest.raises(BadAnswer, match=r"list_services with more than 16 MiB \(ownbackup_max_response_bytes\)"):
                await client.list_services()
        assert client.health.last_failure == "BadAnswer"
    assert rss.growth < 300 * MiB, f"RSS grew by {rss.growth / MiB:.0f} MiB"
    if mode != "gzip-bomb":  # a bomb's 1 GiB is a megabyte on the wire, in the socket buffers at once
        assert api.sent_bytes < HUGE_BYTES, "the client hung up before the end"


async def test_a_batch_refused_for_its_data_is_written_row_by_row(engine, pg, rendered_log):
    """Outcomes the database refuses (an id beyond bigint, NUL, a lone surrogate) in one batch with good ones: the good
    ones are recorded, each bad one is stored cleaned or failed with a sentence, and no outage is logged."""
    ids = [await forget(pg, f"GOOD-{i}") for i in range(4)] + [await forget(pg, "BAD-ID"), await forget(pg, "BAD-TEXT")]
    store = QueueStore(engine, owner="test-owner", actor="test", lease_seconds=30)
    claimed = await store.claim(10)
    assert len(claimed) == 6
    outcomes = [Outcome(rid, "submitted", f"submitted to OwnBackup: request id {700 + n}", ownbackup_request_id=700 + n)
                for n, rid in enumerate(ids[:4])]  # fmt: skip
    bad_id = Outcome(ids[4], "submitted", "submitted to OwnBackup: request id 1e20", ownbackup_request_id=10**20)
    bad_text = Outcome(ids[5], "failed", "refused: a\x00b\ud800c\x1b[2J", error="a\x00b\ud800c\x1b[2J")
    recorder = Recorder(store)
    for o in [outcomes[0], bad_id, outcomes[1], bad_text, *outcomes[2:]]:
        recorder.put(o)
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(recorder.run(stop), 30)

    rows = {r["id"]: r for r in await pg.fetch("SELECT id, status, ownbackup_request_id, last_error FROM gdpr_requests")}
    assert [(rows[rid]["status"], rows[rid]["ownbackup_request_id"]) for rid in ids[:4]] == [
        ("submitted", 700 + n) for n in range(4)
    ]
    assert rows[ids[4]]["status"] == "submitted" and rows[ids[4]]["ownbackup_request_id"] is None
    assert rows[ids[5]]["status"] == "failed" and rows[ids[5]]["last_error"] == "a\\x00b\\ud800c\\x1b[2J"
    assert await pg.fetchval("SELECT count(*) FROM gdpr_requests WHERE status = 'in_flight'") == 0
    events = [e["event"] for e in rendered_log.events()]
    assert "outcomes_refused_by_database" in events and "database_unavailable" not in events
