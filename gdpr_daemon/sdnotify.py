"""The systemd notify protocol (``sd_notify``), without a dependency.

A service started with ``Type=notify`` tells systemd how it is doing by sending
newline-separated ``KEY=VALUE`` lines as one datagram to the AF_UNIX socket named in
``$NOTIFY_SOCKET`` (a path, or an abstract socket when it starts with ``@``):
``READY=1`` once it serves, ``STOPPING=1`` when it begins to shut down, ``STATUS=...``
for ``systemctl status``, and ``WATCHDOG=1`` at least every ``$WATCHDOG_USEC``
microseconds when the unit sets ``WatchdogSec=``.  Outside systemd (no
``$NOTIFY_SOCKET``) every call here does nothing, so the daemon needs no special case.

A failure to notify never stops the daemon: it is logged and reported as ``False``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Mapping

from gdpr_daemon.logs import get_logger

__all__ = ["notify", "supervise", "watchdog_interval", "watchdog_loop"]

log = get_logger(__name__)


def _address(raw: str) -> str | bytes | None:
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()  # abstract namespace (Linux)
    if raw.startswith("/"):
        return raw
    return None  # vsock: and other forms systemd may add are not supported here


def notify(state: str, *, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``"READY=1"`` or ``"STOPPING=1\\nSTATUS=draining"``) to systemd.

    Returns True when the datagram was sent, False when there is no ``$NOTIFY_SOCKET``
    or sending failed (logged; never raised).
    """
    env = os.environ if environ is None else environ
    raw = env.get("NOTIFY_SOCKET", "")
    if not raw:
        return False
    address = _address(raw)
    if address is None:
        log.warning("sd_notify_failed", reason="unsupported NOTIFY_SOCKET form", socket=raw)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode(), address)
    except OSError as exc:
        log.warning("sd_notify_failed", socket=raw, error=exc.strerror or type(exc).__name__)
        return False
    return True


def watchdog_interval(*, environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds within which systemd expects ``WATCHDOG=1``, or None when no watchdog is set.

    ``$WATCHDOG_PID``, when present, names the process the watchdog is meant for; any other
    process (a child that inherited the environment) gets None.
    """
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000


async def watchdog_loop(
    stop: asyncio.Event,
    *,
    interval: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Send ``WATCHDOG=1`` every half interval until ``stop`` is set.

    The ping comes from the event loop itself, so a blocked loop (the failure a
    watchdog exists to catch) stops the pings and systemd restarts the service.
    Returns at once when there is no watchdog.
    """
    period = interval if interval is not None else watchdog_interval(environ=environ)
    if not period:
        return
    half = period / 2
    while not stop.is_set():
        notify("WATCHDOG=1", environ=environ)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), half)


async def supervise(
    ready: asyncio.Event,
    stop: asyncio.Event,
    *,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Tell systemd about the service's life until cancelled.

    ``READY=1`` when ``ready`` is set (unless ``stop`` came first), ``STOPPING=1`` as soon
    as ``stop`` is set (before the drain, not after it), and ``WATCHDOG=1`` pings the
    whole time, the drain included.  Run it as a task for the length of the service and
    cancel it at the end.  Without ``$NOTIFY_SOCKET`` it only waits.
    """
    pinging = asyncio.Event()  # set on the way out: ends the watchdog loop
    watchdog = asyncio.create_task(watchdog_loop(pinging, environ=environ), name="sd-watchdog")
    waits = [
        asyncio.create_task(ready.wait(), name="sd-wait-ready"),
        asyncio.create_task(stop.wait(), name="sd-wait-stop"),
    ]
    try:
        notify("STATUS=starting: waiting for the database", environ=environ)
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if ready.is_set() and not stop.is_set():
            notify("READY=1\nSTATUS=serving", environ=environ)
            log.debug("sd_notify", state="READY")
        await stop.wait()
        notify("STOPPING=1\nSTATUS=stopping: finishing calls in progress", environ=environ)
        log.debug("sd_notify", state="STOPPING")
        await asyncio.Event().wait()  # keep the watchdog going through the drain
    finally:
        pinging.set()
        for t in waits:
            t.cancel()
        await asyncio.gather(watchdog, *waits, return_exceptions=True)
