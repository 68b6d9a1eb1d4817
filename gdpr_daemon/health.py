"""The health and metrics endpoints (aiohttp), for probes and Prometheus.

- ``/healthz`` answers 200 whenever the event loop does: liveness, nothing more, so a
  database outage never gets the pod restarted.
- ``/readyz`` answers 200 when the database answers, its schema is at the newest
  migration, the last API contact did not fail, and the optional ``ready_check`` passes;
  else 503.  The JSON body names each check and why it failed, in words of our own: it is
  unauthenticated, so it never repeats the API's words (which may echo what was sent)
  and a database error is described by its condition.  The database check has a short
  timeout, so a probe never hangs on a dead connection.
- ``/metrics`` is :data:`gdpr_daemon.metrics.REGISTRY` in the Prometheus text format;
  the database-derived gauges (requests by status, queue depth, oldest pending, overdue,
  due soon, unconfirmed, event cursor) are refreshed from Postgres just before rendering,
  and ``gdpr_daemon_api_up`` from the client's API health.

The server is off unless ``health_address`` is set; the daemon starts and stops it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine

from gdpr_daemon import metrics
from gdpr_daemon.db import migrate, stats
from gdpr_daemon.errors import describe
from gdpr_daemon.logs import get_logger
from gdpr_daemon.ownbackup.health import ApiHealth
from gdpr_daemon.safetext import escape_controls

__all__ = ["HealthServer", "ReadyCheck", "lifecycle_check", "parse_address"]

log = get_logger(__name__)

ReadyCheck = Callable[[], Awaitable[str | None]]
"""An extra readiness condition: returns None when ready, else a short reason."""

DB_TIMEOUT_SECONDS = 2.0
MAX_REASON = 300  # characters of an error shown by /readyz, which anyone on the network can read
OK = "ok"


#: What /readyz says of a failed API contact, by the client's error class.
API_FAILURES = {
    "AuthenticationError": "OwnBackup refused the daemon's credentials",
    "ConnectionFailed": "OwnBackup could not be reached",
    "RequestTimeout": "OwnBackup did not answer in time",
    "RateLimited": "OwnBackup asked the daemon to slow down",
    "ServerError": "OwnBackup answered with a server error",
    "BadAnswer": "OwnBackup's answer could not be read",
}


def api_failure(kind: str | None, status: int | None) -> str:
    """One sentence of our own about a failed API contact: the kind of failure and its HTTP
    status, never the API's words; the log and `gdpr-daemon check` have the details."""
    what = API_FAILURES.get(kind or "", "a call to OwnBackup failed")
    if status is not None:
        try:
            what += f" ({status} {HTTPStatus(status).phrase})"
        except ValueError:
            what += f" (HTTP {status})"
    return what + "; `gdpr-daemon check` and the log say more"


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:8080`` for IPv6) -> (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"health_address must be host:port, got {address!r}")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - an empty host means all


def lifecycle_check(ready: asyncio.Event, stop: asyncio.Event | None = None) -> ReadyCheck:
    """A ready_check for the daemon: not ready until ``ready`` is set, nor once ``stop`` is.

    Unready while draining, so a load balancer or a rollout stops counting on this
    replica as soon as it begins to shut down.
    """

    async def check() -> str | None:
        if stop is not None and stop.is_set():
            return "stopping"
        return None if ready.is_set() else "starting"

    return check


class HealthServer:
    """Serves /healthz, /readyz and /metrics on ``address`` between start() and stop()."""

    def __init__(
        self,
        address: str,
        engine: AsyncEngine,
        api_health: ApiHealth | None,
        *,
        ready_check: ReadyCheck | None = None,
        db_timeout: float = DB_TIMEOUT_SECONDS,
        unconfirmed_after_hours: float = 24.0,
        events_pull_interval: float | None = None,
    ) -> None:
        self.host, self._port = parse_address(address)
        self.engine = engine
        self.api_health = api_health
        self.ready_check = ready_check
        self.db_timeout = db_timeout
        self.unconfirmed_after_hours = unconfirmed_after_hours
        if events_pull_interval is not None:
            metrics.EVENTS_PULL_INTERVAL.set(events_pull_interval)
        self._head = migrate.head_revision()  # the newest migration this version ships
        self._known = migrate.known_revisions()
        self._runner: web.AppRunner | None = None
        self._was_ready: bool | None = None
        self._db_up: bool | None = None

    # ---- lifecycle -------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def start(self) -> None:
        # No access log: probes every few seconds would drown the useful lines.
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self._port, reuse_address=True).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        log.info("health_server_started", address=f"{self.host}:{self.port}")

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def port(self) -> int:
        """The bound port (the real one when the address asked for port 0)."""
        if self._runner is not None:
            for addr in self._runner.addresses:
                if isinstance(addr, tuple) and len(addr) >= 2:
                    return int(addr[1])
        return self._port

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host  # noqa: S104
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    # ---- checks ----------------------------------------------------------------------

    async def _database(self) -> tuple[str, str]:
        """(database check, schema check), each ``ok`` or a reason."""
        try:
            async with asyncio.timeout(self.db_timeout):
                current = await migrate.current_revision(self.engine)
        except TimeoutError:
            return f"no answer within {self.db_timeout:g} s", "not checked"
        except Exception as exc:  # any failure means not ready
            return escape_controls(describe(exc))[:MAX_REASON], "not checked"
        if current == self._head:
            return OK, OK
        if current is not None and current not in self._known:
            # A newer version migrated the database (a rollout under way): not this one's to fix.
            return OK, f"at revision {current}, newer than this version knows (its newest is {self._head})"
        return OK, f"at revision {current or 'none'}, this version needs {self._head}: run `gdpr-daemon migrate`"

    def _api(self) -> str:
        h = self.api_health
        if h is None or h.ok:
            return OK
        since = h.last_failure_at.isoformat() if h.last_failure_at else "?"
        return f"last contact failed at {since}: {api_failure(h.last_failure, h.last_status)}"

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        """Run every readiness check; (all ok, check name -> ``ok`` or reason)."""
        checks: dict[str, str] = {}
        checks["database"], checks["schema"] = await self._database()
        checks["api"] = self._api()
        if self.ready_check is not None:
            try:
                reason = await self.ready_check()
            except Exception as exc:  # a broken check means not ready
                reason = describe(exc)
            checks["daemon"] = reason or OK
        ready = all(v == OK for v in checks.values())
        if ready != self._was_ready:
            failing = sorted(k for k, v in checks.items() if v != OK)
            (log.info if ready else log.warning)("readiness_changed", ready=ready, failing=failing)
            self._was_ready = ready
        return ready, checks

    async def refresh_metrics(self) -> None:
        """Set the database-derived gauges (on failure they keep their last values) and api_up."""
        if self.api_health is not None:
            metrics.API_UP.set(1 if self.api_health.ok else 0)
        try:
            async with asyncio.timeout(self.db_timeout):
                snap = await stats.snapshot(
                    self.engine, unconfirmed_after_hours=self.unconfirmed_after_hours, soon_days=metrics.DUE_SOON_DAYS
                )
        except Exception as exc:  # /metrics still answers, database_up says 0
            metrics.DATABASE_UP.set(0)
            if self._db_up is not False:  # once per outage, not once per scrape
                reason = f"no answer within {self.db_timeout:g} s" if isinstance(exc, TimeoutError) else describe(exc)
                log.warning("metrics_database_unavailable", error=reason)
            self._db_up = False
            return
        self._db_up = True
        metrics.DATABASE_UP.set(1)
        q = snap.queue
        for status, n in q.by_status.items():
            metrics.REQUESTS_BY_STATUS.labels(status=status).set(n)
        metrics.QUEUE_DEPTH.set(q.pending)
        metrics.OLDEST_PENDING_AGE.set(q.oldest_pending_age)
        metrics.REQUESTS_OVERDUE.set(q.overdue)
        metrics.REQUESTS_DUE_SOON.set(q.due_soon)
        metrics.REQUESTS_UNCONFIRMED.set(q.unconfirmed)
        if snap.cursor is not None:
            if snap.cursor.last_event_id is not None:
                metrics.EVENT_CURSOR.set(snap.cursor.last_event_id)
            if snap.cursor.updated_at is not None:
                # The puller sets this in-process after every pull (also one that found
                # nothing new); the table covers pulls by other replicas.  Keep the later.
                seen = metrics.REGISTRY.get_sample_value("gdpr_daemon_last_event_pull_timestamp_seconds") or 0.0
                metrics.LAST_PULL.set(max(seen, snap.cursor.updated_at.timestamp()))

    # ---- handlers --------------------------------------------------------------------

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        ready, checks = await self.readiness()
        body: dict[str, Any] = {"status": "ready" if ready else "not ready", "checks": checks}
        return web.json_response(body, status=200 if ready else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        await self.refresh_metrics()
        return web.Response(body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})
