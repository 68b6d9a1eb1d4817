"""Small helpers shared by tests: arranging requests, waiting with a bound."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg


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


async def statuses(pg: asyncpg.Connection) -> dict[str, int]:
    return {r["status"]: r["n"] for r in await pg.fetch("SELECT status, count(*) n FROM gdpr_requests GROUP BY 1")}


async def run_cli(db_url: str, sim_url: str, *args: str, stdin: bytes | None = None, **env: str) -> tuple[int, str, str]:
    """Run `gdpr-daemon ARGS` as a user would, in a subprocess; (exit status, stdout, stderr)."""
    from tests.conftest import subprocess_env

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
    from tests.conftest import subprocess_env

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
