"""Shared fixtures: a real Postgres (one migrated template, a clone per test) and the
OwnBackup simulator over loopback.

Postgres comes from, in order: ``TEST_DATABASE_URL``; the server at 127.0.0.1:5432 when
it answers; else an embedded server this session starts itself (``GDPR_TEST_EMBEDDED=1``
forces that, to check the path a machine without Postgres takes).  Every line any part of
the suite logs goes through the production logging set-up into one file per session;
at the end the file (and the logs of every subprocess) is scanned for the passwords,
rectify values and session ids the tests used, and the run fails if one is found.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gdpr_daemon import logs
from gdpr_daemon.config import Settings, load_settings
from gdpr_daemon.db import migrate
from gdpr_daemon.db.engine import libpq_url, make_engine
from gdpr_daemon.embedded import EmbeddedPostgres
from gdpr_daemon.simulator import FaultConfig, Simulator, SimulatorConfig
from tests.helpers import LOG_DIR, LOG_ROOT, PII_MARKER, SECRETS_SEEN, SIM_EMAIL, SIM_PASSWORD, with_db

# ---- logs and the leak scan ----------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return  # an xdist worker logs into its controller's folder
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    for old in LOG_ROOT.glob("run-*"):
        pid = int(old.name.removeprefix("run-"))
        if old != LOG_DIR and not _alive(pid):
            shutil.rmtree(old, ignore_errors=True)
    stream = (LOG_DIR / "suite.log").open("a", buffering=1, encoding="utf-8")
    config._gdpr_log_stream = stream  # type: ignore[attr-defined]
    logs.configure("json", "debug", stream=stream)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    stream = getattr(session.config, "_gdpr_log_stream", None)
    if stream is not None:
        stream.flush()
    leaks: list[str] = []
    files = sorted(LOG_DIR.glob("*.log"))
    for f in files:
        text = f.read_text(encoding="utf-8", errors="replace")
        if PII_MARKER in text:
            leaks.append(f"{f.name}: a rectify value ({PII_MARKER}...)")
        for s in SECRETS_SEEN:
            if s and s in text:
                leaks.append(f"{f.name}: a secret ({s[:3]}...)")
    if leaks:
        sys.stderr.write("\nPERSONAL DATA OR SECRETS IN LOGS:\n  " + "\n  ".join(sorted(set(leaks))) + "\n")
        session.exitstatus = 1
    elif os.environ.get("GDPR_TEST_VERBOSE_LEAKSCAN", "1") == "1":
        size = sum(f.stat().st_size for f in files)
        sys.stderr.write(f"\nleak scan: {len(files)} log files, {size} bytes, no secret or rectify value found\n")


@pytest.fixture(autouse=True)
def _suite_logging(request: pytest.FixtureRequest) -> Iterator[None]:
    """Whatever a test did to the logging set-up, the next one logs into the suite's file again."""
    yield
    stream = getattr(request.config, "_gdpr_log_stream", None)
    if stream is not None and not stream.closed:
        logs.configure("json", "debug", stream=stream)


@pytest.fixture(autouse=True)
def _no_daemon_left_behind() -> Iterator[None]:
    """A test that fails before stopping its daemon subprocesses does not leave them running."""
    yield
    from tests.helpers import kill_leftover_daemons

    kill_leftover_daemons()


@pytest.fixture
def log_file() -> Path:
    """Where a subprocess started by a test should send its stderr (scanned at the end)."""
    return LOG_DIR / f"proc-{secrets.token_hex(4)}.log"


# ---- Postgres -----------------------------------------------------------------------------


def _reachable(url: str) -> bool:
    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(url, timeout=3)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A superuser URL of a running Postgres server."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield libpq_url(url)
        return
    local = "postgresql://postgres@127.0.0.1:5432/postgres"
    if os.environ.get("GDPR_TEST_EMBEDDED") != "1" and _reachable(local):
        yield local
        return
    server = EmbeddedPostgres()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def template_db(pg_admin_url: str) -> AsyncIterator[str]:
    name = f"gdpr_tpl_{os.getpid()}_{secrets.token_hex(3)}"
    conn = await asyncpg.connect(pg_admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        engine = make_engine(with_db(pg_admin_url, name), pool_size=1)
        await migrate.upgrade(engine)
        await engine.dispose()
        yield name
        await asyncio.gather(*_DROPS, return_exceptions=True)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


_DROPS: list[asyncio.Task[None]] = []


async def _drop_later(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def db_url(pg_admin_url: str, template_db: str) -> AsyncIterator[str]:
    """A fresh, migrated database of this test's own (cloned from the template).

    Dropping it runs in the background while the next test starts (the session's
    template fixture waits for all drops at the end).
    """
    name = f"gdpr_t_{secrets.token_hex(5)}"
    conn = await asyncpg.connect(pg_admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    finally:
        await conn.close()
    yield with_db(pg_admin_url, name)
    _DROPS.append(asyncio.create_task(_drop_later(pg_admin_url, name)))


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[Any]:
    eng = make_engine(db_url, pool_size=5)
    yield eng
    await eng.dispose()


@pytest.fixture
async def daemon_for(engine: Any) -> AsyncIterator[Any]:
    """``await daemon_for(settings)``: a Daemon on a runtime with the API client open and the
    test's engine (or ``engine=``, a login's); every runtime made is closed (API logout) when
    the test ends."""
    from gdpr_daemon.daemon import Daemon
    from gdpr_daemon.runtime import open_runtime

    async with contextlib.AsyncExitStack() as stack:

        async def make(settings: Settings, *, engine: Any = engine) -> Daemon:
            rt = await stack.enter_async_context(open_runtime(settings, api=True, engine=engine))
            return Daemon(rt)

        yield make


@pytest.fixture
async def pg(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the test's database, for arranging and asserting."""
    conn = await asyncpg.connect(db_url)
    yield conn
    await conn.close()


# ---- the simulator ------------------------------------------------------------------------


@pytest.fixture(scope="session")
async def simulator_server() -> AsyncIterator[tuple[Simulator, str]]:
    sim = Simulator(SimulatorConfig(email=SIM_EMAIL, password=SIM_PASSWORD, services=6, seed=7))
    async with sim.serve(host="127.0.0.1", port=0) as url:
        yield sim, url
        SECRETS_SEEN.update(sim.state.credentials.issued)


@pytest.fixture
async def sim(simulator_server: tuple[Simulator, str]) -> AsyncIterator[Simulator]:
    """The session's simulator, reset to a clean account and no faults for this test."""
    s, _url = simulator_server
    SECRETS_SEEN.update(s.state.credentials.issued)
    s.reset()
    s.faults = FaultConfig()
    yield s
    SECRETS_SEEN.update(s.state.credentials.issued)
    s.reset()


@pytest.fixture
def sim_url(simulator_server: tuple[Simulator, str]) -> str:
    return simulator_server[1]


@pytest.fixture
def settings_for(db_url: str, sim_url: str):  # type: ignore[no-untyped-def]
    """Settings pointing at this test's database and the simulator, fast timings."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": db_url,
            "ownbackup_url": sim_url,
            "ownbackup_email": SIM_EMAIL,
            "ownbackup_password": SIM_PASSWORD,
            "ownbackup_timeout_seconds": 5.0,
            "queue_poll_interval_seconds": 0.5,
            "queue_backoff_base_seconds": 0.05,
            "queue_backoff_max_seconds": 0.5,
            "queue_reaper_interval_seconds": 0.5,
            "queue_shutdown_timeout_seconds": 5.0,
            "log_format": "json",
            "instance_name": "test-daemon",
        }
        values.update(overrides)
        return load_settings(None, environ={}, **values)

    return make
