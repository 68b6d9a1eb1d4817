"""A real `gdpr-daemon run` under the systemd notify protocol, with its health endpoints."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys

import aiohttp

from gdpr_daemon.simulator import FaultConfig
from tests.deploy.notify_socket import NotifySocket
from tests.helpers import insert_forget, subprocess_env, wait_until

DRAIN_BOUND = 5.0  # GDPR_DAEMON_QUEUE_SHUTDOWN_TIMEOUT_SECONDS for these runs
EXIT_MARGIN = 10.0  # process start-up costs and logout on top of the bound; not a measurement


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def expect_while_running(notify: NotifySocket, proc: asyncio.subprocess.Process, line: str,
                               timeout: float) -> None:  # fmt: skip
    """Wait for ``line`` from the daemon, failing at once (with its exit status) if it exits first."""
    expecting = asyncio.ensure_future(notify.expect(line, timeout=timeout))
    exiting = asyncio.ensure_future(proc.wait())
    try:
        await asyncio.wait({expecting, exiting}, return_when=asyncio.FIRST_COMPLETED)
        if not expecting.done():
            raise AssertionError(f"the daemon exited with {proc.returncode} before sending {line!r}")
        expecting.result()
    finally:
        expecting.cancel()
        exiting.cancel()


async def http_get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http, http.get(url) as resp:
        return resp.status, await resp.text()


async def test_ready_watchdog_sigterm_stopping_exit_0(sim, db_url, sim_url, pg, log_file):
    """READY=1 once up, watchdog pings, /readyz 200; SIGTERM mid-call gives STOPPING=1, a finished call, exit 0."""
    notify = NotifySocket(abstract=True)
    port = free_port()
    fh = log_file.open("ab")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gdpr_daemon", "run",
        env=subprocess_env(
            db_url, sim_url,
            NOTIFY_SOCKET=notify.env_value,
            WATCHDOG_USEC="1000000",
            GDPR_DAEMON_HEALTH_ADDRESS=f"127.0.0.1:{port}",
            GDPR_DAEMON_QUEUE_SHUTDOWN_TIMEOUT_SECONDS=str(DRAIN_BOUND),
        ),
        stdout=fh, stderr=fh,
    )  # fmt: skip
    fh.close()
    try:
        await expect_while_running(notify, proc, "READY=1", timeout=30)
        assert await http_get(f"http://127.0.0.1:{port}/healthz") == (200, '{"status": "ok"}')
        assert (await http_get(f"http://127.0.0.1:{port}/readyz"))[0] == 200
        await expect_while_running(notify, proc, "WATCHDOG=1", timeout=10)

        # A call that is still under way when SIGTERM arrives: the drain lets it finish.
        sim.faults = FaultConfig(latency_ms=1500)
        (rid,) = await insert_forget(pg, 1001)
        await wait_until(lambda: pg.fetchval("SELECT status = 'in_flight' FROM gdpr_requests WHERE id = $1", rid),
                         timeout=20, what="the claim")  # fmt: skip
        proc.send_signal(signal.SIGTERM)
        await notify.expect("STOPPING=1", timeout=10)
        code = await asyncio.wait_for(proc.wait(), DRAIN_BOUND + EXIT_MARGIN)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        notify.close()
    assert code == 0
    states = [line for line in notify.lines() if line in ("READY=1", "STOPPING=1")]
    assert states == ["READY=1", "STOPPING=1"], "READY once, then STOPPING once"
    assert await pg.fetchval("SELECT status FROM gdpr_requests WHERE id = $1", rid) == "submitted"


async def test_not_ready_while_the_database_schema_is_old(sim, db_url, sim_url, pg, log_file):
    """With a schema older than it needs the daemon never sends READY=1 and exits 1 (run migrate first)."""
    await pg.execute("UPDATE alembic_version SET version_num = '0001'")
    notify = NotifySocket()
    port = free_port()
    fh = log_file.open("ab")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gdpr_daemon", "run",
        env=subprocess_env(db_url, sim_url, NOTIFY_SOCKET=notify.env_value,
                           GDPR_DAEMON_HEALTH_ADDRESS=f"127.0.0.1:{port}"),
        stdout=fh, stderr=fh,
    )  # fmt: skip
    fh.close()
    try:
        code = await asyncio.wait_for(proc.wait(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        notify.close()
    assert code == 1, "a schema older than this version needs is a start-up failure (run migrate)"
    assert "READY=1" not in notify.lines()
