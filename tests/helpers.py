"""What the tests share: the suite's constants, arranging requests, waiting with a bound,
daemon subprocesses.

The constants and the set of secrets the leak scan looks for live here, not in
conftest.py: pytest imports conftest.py as the module ``conftest`` (tests/ is no package),
so ``from tests.conftest import ...`` would load a second copy with state of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

SIM_EMAIL = "dpo@example.com"
SIM_PASSWORD = "Sim-Pa55word-7f3c9e"  # scanned for in every log at the end of the run
PII_MARKER = "PII-VALUE-"  # every rectify value in the tests starts with this

# One folder per pytest run, so runs side by side never scan (or delete) each other's logs.
LOG_ROOT = Path(os.environ.get("GDPR_TEST_LOG_DIR") or Path(__file__).resolve().parent.parent / ".tmp" / "test-logs")
LOG_DIR = LOG_ROOT / f"run-{os.getpid()}"
SECRETS_SEEN: set[str] = {SIM_PASSWORD}


def with_db(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` (never string surgery: the embedded server's URL carries ?host=/path)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


def database_of(url: str) -> str:
    from sqlalchemy.engine import make_url

    return str(make_url(url).database)


def pii(n: int | str) -> str:
    """A rectify value the leak scan will recognise."""
    return f"{PII_MARKER}{n}-{secrets.token_hex(3)}"


def subprocess_env(db_url: str, sim_url: str, **extra: str) -> dict[str, str]:
    """Environment for a `gdpr-daemon` subprocess pointed at the test's database and simulator."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GDPR_DAEMON_")}
    env.update(
        GDPR_DAEMON_DATABASE_URL=db_url,
        GDPR_DAEMON_OWNBACKUP_URL=sim_url,
        GDPR_DAEMON_OWNBACKUP_EMAIL=SIM_EMAIL,
        GDPR_DAEMON_OWNBACKUP_PASSWORD=SIM_PASSWORD,
        GDPR_DAEMON_LOG_FORMAT="json",
        GDPR_DAEMON_LOG_LEVEL="debug",
        GDPR_DAEMON_QUEUE_POLL_INTERVAL_SECONDS="0.5",
        GDPR_DAEMON_QUEUE_BACKOFF_BASE_SECONDS="0.05",
        GDPR_DAEMON_QUEUE_BACKOFF_MAX_SECONDS="0.5",
        GDPR_DAEMON_QUEUE_REAPER_INTERVAL_SECONDS="0.5",
    )
    env.update(extra)
    return env


async def insert_forget(pg: asyncpg.Connection, service_id: int, n: int = 1, *, prefix: str = "003") -> list[int]:
    rows = await pg.fetch(
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id) "
        "SELECT 'forget', $1, 'Contact', $2 || lpad(g::text, 12, '0') FROM generate_series(1, $3) g RETURNING id",
        service_id, prefix, n,
    )  # fmt: skip
    return [r["id"] for r in rows]


async def insert_rectify(pg: asyncpg.Connection, service_id: int, value: str, *, field: str = "Email") -> int:
    return await pg.fetchval(
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, field, value) "
        "VALUES ('rectify', $1, 'Contact', '0035g00000AbCdE', $2, $3) RETURNING id",
        service_id, field, value,
    )  # fmt: skip


async def wait_until(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"
) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {result!r})")
        await asyncio.sleep(interval)


async def run_until_submitted(daemon: Any, pg: asyncpg.Connection, count: int, *, what: str, timeout: float = 30) -> None:
    """Run ``daemon`` until ``count`` requests are submitted (failing after ``timeout`` seconds), then stop it;
    it must exit 0."""
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    try:
        await wait_until(lambda: pg.fetchval("SELECT count(*) = $1 FROM gdpr_requests WHERE status = 'submitted'", count),
                         timeout=timeout, what=what)  # fmt: skip
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 30) == 0


async def statuses(pg: asyncpg.Connection) -> dict[str, int]:
    return {r["status"]: r["n"] for r in await pg.fetch("SELECT status, count(*) n FROM gdpr_requests GROUP BY 1")}


async def run_cli(db_url: str, sim_url: str, *args: str, stdin: bytes | None = None, **env: str) -> tuple[int, str, str]:
    """Run `gdpr-daemon ARGS` as a user would, in a subprocess; (exit status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gdpr_daemon", *args,
        env=subprocess_env(db_url, sim_url, **env),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    return proc.returncode or 0, out.decode(), err.decode()


# Daemon subprocesses started by the current test; conftest kills any still running when
# the test ends, so a test that fails half-way leaves no daemon behind.
SPAWNED: list[asyncio.subprocess.Process] = []


async def start_daemon(db_url: str, sim_url: str, log_file: Path, *args: str, **env: str) -> asyncio.subprocess.Process:
    """`gdpr-daemon run ARGS` in a subprocess, its output into the scanned log file."""
    with log_file.open("ab") as fh:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gdpr_daemon", "run", *args,
            env=subprocess_env(db_url, sim_url, **env), stdout=fh, stderr=fh,
        )  # fmt: skip
    SPAWNED.append(proc)
    return proc


async def stop_daemon(proc: asyncio.subprocess.Process, timeout: float = 30.0) -> int:
    """SIGTERM and wait (bounded); the exit status."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(proc.wait(), timeout)


def kill_leftover_daemons() -> int:
    """SIGKILL the daemons the test started and did not stop; how many there were."""
    left = [p for p in SPAWNED if p.returncode is None]
    for p in left:  # by pid: the test's event loop may be closed already
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGKILL)
    SPAWNED.clear()
    return len(left)


def log_events(log_file: Path) -> Counter[str]:
    """How often each structlog event appears in a JSON log file."""
    counts: Counter[str] = Counter()
    for line in log_file.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                counts[json.loads(line).get("event", "")] += 1
            except ValueError:
                continue
    return counts


async def wait_for_log(log_file: Path, event: str, *, more_than: int = 0, timeout: float = 20.0) -> None:
    """Wait until ``event`` appears in the JSON log more than ``more_than`` times (bounded)."""

    async def seen() -> bool:
        return log_file.exists() and log_events(log_file)[event] > more_than

    await wait_until(seen, timeout=timeout, what=f"log event {event}")
