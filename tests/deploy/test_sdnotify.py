"""The systemd notify protocol, against a socket the test opens itself."""

from __future__ import annotations

import asyncio
import os

import pytest

from gdpr_daemon import sdnotify
from tests.deploy.notify_socket import NotifySocket


@pytest.fixture(params=["path", "abstract"])
def sock(request):
    s = NotifySocket(abstract=request.param == "abstract")
    yield s
    s.close()


async def test_notify_sends_one_datagram(sock):
    """notify() sends the state as one datagram to $NOTIFY_SOCKET, a path or an @abstract name."""
    assert sdnotify.notify("READY=1\nSTATUS=serving", environ={"NOTIFY_SOCKET": sock.env_value})
    assert await sock.expect("READY=1", timeout=5) == ["READY=1\nSTATUS=serving"]


def test_notify_without_socket_does_nothing():
    """Outside systemd (no $NOTIFY_SOCKET) notify() is a no-op that reports False."""
    assert sdnotify.notify("READY=1", environ={}) is False


def test_notify_to_a_missing_socket_does_not_raise(tmp_path):
    """A socket that is gone makes notify() report False, never raise into the daemon."""
    assert sdnotify.notify("READY=1", environ={"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "junk"}, None),
        ({"WATCHDOG_USEC": "60000000"}, 60.0),
        ({"WATCHDOG_USEC": "2500000", "WATCHDOG_PID": str(os.getpid())}, 2.5),
        ({"WATCHDOG_USEC": "2500000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
    ],
    ids=["unset", "zero", "junk", "set", "for-this-pid", "for-another-pid"],
)
def test_watchdog_interval(env, expected):
    """watchdog_interval() reads $WATCHDOG_USEC, and ignores a watchdog meant for another pid."""
    assert sdnotify.watchdog_interval(environ=env) == expected


async def test_watchdog_loop_pings_until_stopped(sock):
    """watchdog_loop() sends WATCHDOG=1 repeatedly and returns once stop is set."""
    stop = asyncio.Event()
    env = {"NOTIFY_SOCKET": sock.env_value, "WATCHDOG_USEC": "100000"}
    task = asyncio.create_task(sdnotify.watchdog_loop(stop, environ=env))
    await sock.expect("WATCHDOG=1", timeout=5)
    sock.messages.clear()
    await sock.expect("WATCHDOG=1", timeout=5)
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_watchdog_loop_without_watchdog_returns_at_once():
    """Without $WATCHDOG_USEC the loop has nothing to do and returns."""
    await asyncio.wait_for(sdnotify.watchdog_loop(asyncio.Event(), environ={}), 5)


async def test_supervise_ready_then_stopping(sock):
    """supervise() sends READY=1 when ready, STOPPING=1 when stop is set, in that order."""
    ready, stop = asyncio.Event(), asyncio.Event()
    env = {"NOTIFY_SOCKET": sock.env_value}
    task = asyncio.create_task(sdnotify.supervise(ready, stop, environ=env))
    await sock.expect("STATUS=starting: waiting for the database", timeout=5)
    ready.set()
    await sock.expect("READY=1", timeout=5)
    stop.set()
    await sock.expect("STOPPING=1", timeout=5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    states = [line for line in sock.lines() if not line.startswith("STATUS=")]
    assert states == ["READY=1", "STOPPING=1"]


async def test_supervise_stopped_before_ready_never_says_ready(sock):
    """A service stopped while still starting sends STOPPING=1 and never READY=1."""
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(sdnotify.supervise(ready, stop, environ={"NOTIFY_SOCKET": sock.env_value}))
    stop.set()
    await sock.expect("STOPPING=1", timeout=5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert "READY=1" not in sock.lines()
