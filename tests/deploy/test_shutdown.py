"""SIGTERM at every phase of `gdpr-daemon run`: exit 0, promptly, structured log lines only.

The phases: importing, waiting for a database that does not answer, the first login against an
API that accepts connections and never answers, and just after start while the periodic jobs
run.  Each test makes the phase one that would last long (a 60 s API timeout, a database that
never comes) so that "promptly" is measured against minutes, not against a tight bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import SPAWNED, insert_forget, subprocess_env, wait_for_log, wait_until

# Far below what the phase would take without the fix (a 60 s timeout, a database never up),
# far above what a loaded machine needs to stop.
PROMPT = 15.0


async def spawn(db_url: str, api_url: str, log_file: Path, **env: str) -> asyncio.subprocess.Process:
    with log_file.open("ab") as fh:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gdpr_daemon", "run",
            env=subprocess_env(db_url, api_url, **env), stdout=fh, stderr=fh,
        )  # fmt: skip
    SPAWNED.append(proc)
    return proc


def sigterm_caught(pid: int) -> bool:
    """Whether the process has a handler for SIGTERM yet (Linux: SigCgt in /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


async def stop_and_time(proc: asyncio.subprocess.Process) -> tuple[int, float]:
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(proc.wait(), 60)
    return code, time.monotonic() - t0


def assert_clean_output(log_file: Path) -> None:
    """Only JSON log lines; no traceback, no job error, nothing logged at error level."""
    text = log_file.read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]
    for line in text.splitlines():
        if not line.strip():
            continue
        event = json.loads(line)  # a plain-text line fails here
        assert event.get("level") not in ("error", "critical"), line
        assert "raised an exception" not in line, line


@contextlib.asynccontextmanager
async def silent_api():
    """A TCP server on loopback that accepts connections and never answers: (URL, connections seen)."""
    seen = asyncio.Event()
    writers = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        seen.set()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        for w in writers:
            w.close()
        server.close()


async def test_sigterm_while_importing_exits_0(db_url, sim_url, log_file):
    """SIGTERM as soon as the process can catch it (still importing): exit 0 at once, nothing printed."""
    proc = await spawn(db_url, sim_url, log_file)
    await wait_until(lambda: asyncio.sleep(0, sigterm_caught(proc.pid)), timeout=30, interval=0.002,
                     what="the SIGTERM handler")  # fmt: skip
    code, took = await stop_and_time(proc)
    assert code == 0, log_file.read_text(errors="replace")[-2000:]
    assert took < PROMPT
    assert_clean_output(log_file)


async def test_sigterm_while_waiting_for_the_database_exits_0(sim_url, log_file, tmp_path):
    """Postgres does not answer at start: the daemon waits with backoff, and SIGTERM ends the wait, exit 0."""
    nowhere = "postgresql://postgres@127.0.0.1:9/postgres"  # port 9 (discard): refused
    proc = await spawn(nowhere, sim_url, log_file)
    await wait_for_log(log_file, "database_unavailable", timeout=30)
    code, took = await stop_and_time(proc)
    assert code == 0
    assert took < PROMPT
    text = log_file.read_text(errors="replace")
    assert "Traceback" not in text
    assert all(line.startswith("{") for line in text.splitlines() if line.strip()), text[-2000:]


async def test_sigterm_during_first_login_to_a_silent_api_exits_0(db_url, log_file):
    """The API accepts the login's connection and never answers (60 s timeout): SIGTERM ends it, exit 0."""
    async with silent_api() as (url, connected):
        proc = await spawn(db_url, url, log_file, GDPR_DAEMON_OWNBACKUP_TIMEOUT_SECONDS="60")
        await asyncio.wait_for(connected.wait(), 30)
        code, took = await stop_and_time(proc)
    assert code == 0
    assert took < PROMPT
    assert_clean_output(log_file)


@pytest.mark.slow
async def test_sigterm_right_after_start_with_jobs_running_is_clean(sim, db_url, sim_url, pg, log_file):
    """SIGTERM just after start, while the first event pull, overdue log and claims run, five times over:
    exit 0 every time, no traceback and no job error in the log."""
    await insert_forget(pg, 1001, 40)
    for i in range(5):
        proc = await spawn(db_url, sim_url, log_file, GDPR_DAEMON_INSTANCE_NAME=f"stopper-{i}")
        await wait_for_log(log_file, "daemon_started", more_than=i, timeout=30)
        code, took = await stop_and_time(proc)
        assert code == 0
        assert took < PROMPT
    assert_clean_output(log_file)
