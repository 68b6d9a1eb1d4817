"""Shared set-up of the benchmarks: a Postgres, fresh migrated databases, the simulator."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gdpr_daemon.db import migrate  # noqa: E402
from gdpr_daemon.db.engine import make_engine  # noqa: E402
from gdpr_daemon.embedded import EmbeddedPostgres  # noqa: E402

SIM_EMAIL = "bench@example.com"
SIM_PASSWORD = "bench-" + secrets.token_hex(6)


@contextlib.asynccontextmanager
async def postgres() -> AsyncIterator[str]:
    """An admin URL: $BENCH_DATABASE_URL, 127.0.0.1:5432 if it answers, else an embedded server."""
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        yield url
        return
    local = "postgresql://postgres@127.0.0.1:5432/postgres"

    async def probe() -> bool:
        try:
            c = await asyncpg.connect(local, timeout=3)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        await c.close()
        return True

    if await probe():
        yield local
        return
    server = EmbeddedPostgres()
    await asyncio.to_thread(server.start)
    try:
        yield server.url
    finally:
        server.stop()


def with_db(url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def fresh_database(admin_url: str) -> AsyncIterator[str]:
    name = f"gdpr_bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    url = with_db(admin_url, name)
    engine = make_engine(url, pool_size=1)
    await migrate.upgrade(engine)
    await engine.dispose()
    try:
        yield url
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def simulator(*args: str) -> Iterator[str]:
    """The simulator in its own process (its own core), as a user would run it."""
    with api_process("-m", "gdpr_daemon", "simulate", *args) as (url, _pid):
        yield url


@contextlib.contextmanager
def minimal_api(*args: str) -> Iterator[tuple[str, int]]:
    """bench/minimal_api.py in its own process: (its URL, its pid)."""
    with api_process(str(ROOT / "bench" / "minimal_api.py"), *args) as server:
        yield server


@contextlib.contextmanager
def api_process(*argv: str) -> Iterator[tuple[str, int]]:
    """``python ARGV --host 127.0.0.1 --port P`` until it accepts connections: (URL, pid)."""
    port = free_port()
    env = dict(os.environ, GDPR_DAEMON_OWNBACKUP_EMAIL=SIM_EMAIL, GDPR_DAEMON_OWNBACKUP_PASSWORD=SIM_PASSWORD)
    proc = subprocess.Popen(
        [sys.executable, *argv, "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            break
        time.sleep(0.05)
    try:
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


async def sim_control(url: str, method: str, path: str, json: object | None = None) -> object:
    async with aiohttp.ClientSession() as s, s.request(method, url + path, json=json) as r:
        r.raise_for_status()
        return await r.json()


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class CpuMeter:
    """CPU seconds spent by this process, the API server and Postgres.

    ``split()`` after ``start()`` answers the three deltas.  A Postgres backend that starts
    during the interval counts whole; one that ends before ``split()`` is lost, so take the
    split before the measured system closes its connections.  With ``start(database=NAME)``
    Postgres is the server's shared processes (WAL writer, checkpointer ...) and the
    backends and autovacuum workers of that database only, so other databases' work on a
    shared server is not charged to the measured system.
    """

    def __init__(self, api_pid: int, extra_pids: tuple[int, ...] = ()) -> None:
        import psutil

        self._psutil = psutil
        self.api = psutil.Process(api_pid)
        self.extra = [psutil.Process(p) for p in extra_pids]
        self._t0: tuple[float, float, dict[int, float]] = (0.0, 0.0, {})
        self._database: str | None = None

    @staticmethod
    def _cpu(proc: object) -> float:
        t = proc.cpu_times()  # type: ignore[attr-defined]
        return float(t.user + t.system)

    def _counts(self, title: str) -> bool:
        """Whether a Postgres process (by its title) works for the measured database."""
        if self._database is None or not title.startswith("postgres: "):
            return True  # everything, or the postmaster
        words = title.split()
        if self._database in words:
            return True  # a backend or an autovacuum worker of the measured database
        # A backend of another database: "postgres: [CLUSTER:] USER DATABASE HOST(PORT) STATE".
        return not any((w.endswith(")") and "(" in w) or w == "[local]" for w in words) and "worker" not in words

    def _postgres(self) -> dict[int, float]:
        out: dict[int, float] = {}
        for proc in self._psutil.process_iter(["name", "cmdline"]):
            if proc.info["name"] in ("postgres", "postmaster"):
                title = " ".join(proc.info["cmdline"] or ())
                if not self._counts(title):
                    continue
                with contextlib.suppress(self._psutil.Error):
                    out[proc.pid] = self._cpu(proc)
        return out

    def _own(self) -> float:
        return time.process_time() + sum(self._cpu(p) for p in self.extra)

    def start(self, database: str | None = None) -> None:
        self._database = database
        self._t0 = (self._own(), self._cpu(self.api), self._postgres())

    def split(self) -> tuple[float, float, float]:
        own0, api0, pg0 = self._t0
        pg1 = self._postgres()
        pg = sum(cpu - pg0.get(pid, 0.0) for pid, cpu in pg1.items())
        return self._own() - own0, self._cpu(self.api) - api0, pg

