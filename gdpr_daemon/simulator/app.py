"""The aiohttp application of the simulator: routes, and the middleware around every call.

For an ``/api/...`` call the middleware, in order: counts it, asks
:func:`~gdpr_daemon.simulator.faults.decide` what should go wrong, waits the latency,
answers an injected 429/5xx/GDPR-refusal without handling the call, checks the session or
bearer token (401 in the error shape), validates the request against the shipped OpenAPI
document (400/404/415, see :mod:`gdpr_daemon.simulator.conformance`), runs the handler,
translates refusals into the vendor's error shape ``{"error": "<reason phrase>",
"message": "<sentence>"}`` (a 405 keeps its ``Allow`` header), holds the answer back
(``hang_ms``) and spoils it (``malformed_*``) when asked to.

The OAuth token path (the vendor's, ``/oauth2/aus4c3z3l8FqrbqDU4h7/v1/token``) is counted,
validated and translated but not faulted; ``/_simulator/`` (see
:mod:`gdpr_daemon.simulator.control`) is neither counted nor faulted.  The only log line is
one debug event per call with method, route and status: never a header, body or secret.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gdpr_daemon.logs import get_logger
from gdpr_daemon.simulator import control, handlers
from gdpr_daemon.simulator.config import ApiError, as_id
from gdpr_daemon.simulator.conformance import OperationCheck, compiled
from gdpr_daemon.simulator.faults import FaultDecision
from gdpr_daemon.simulator.params import SIM_KEY, bearer_of, error_response, reason

if TYPE_CHECKING:
    from gdpr_daemon.simulator.server import Simulator

log = get_logger("gdpr_daemon.simulator")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# The request checks of the routes the OpenAPI document describes (empty: no validation).
CHECKS_KEY: web.AppKey[dict[str, OperationCheck]] = web.AppKey("request_checks", dict)
_ID_KEYS = frozenset({"id", "job_id", "session_id", "event_id"})

_HTML_ERROR = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_HTML_MAINTENANCE = (
    "<!DOCTYPE html><html><head><title>OwnBackup - Maintenance</title></head>"
    "<body><h1>We'll be right back</h1><p>The service is undergoing scheduled maintenance."
    "</p></body></html>"
)


@dataclass(slots=True)
class SimulatorStats:
    """What the simulator answered: calls per endpoint and the statuses that matter."""

    calls: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    logins: int = 0
    tokens_issued: int = 0
    sent_401: int = 0
    sent_429: int = 0
    sent_5xx: int = 0

    def record_status(self, status: int) -> None:
        self.statuses[status] += 1
        if status == 401:
            self.sent_401 += 1
        elif status == 429:
            self.sent_429 += 1
        elif status >= 500:
            self.sent_5xx += 1

    def reset(self) -> None:
        self.calls.clear()
        self.statuses.clear()
        self.logins = self.tokens_issued = self.sent_401 = self.sent_429 = self.sent_5xx = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": dict(sorted(self.calls.items())),
            "total_calls": sum(self.calls.values()),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "logins": self.logins,
            "tokens_issued": self.tokens_issued,
            "sent_401": self.sent_401,
            "sent_429": self.sent_429,
            "sent_5xx": self.sent_5xx,
        }


def _route_of(request: web.Request) -> tuple[str | None, str]:
    """(route name, ``METHOD /canonical/path``) of a request; unmatched paths share a key."""
    route = request.match_info.route
    resource = getattr(route, "resource", None)
    if resource is None:
        return None, f"{request.method} <unmatched>"
    return route.name, f"{request.method} {resource.canonical}"


def _service_id(request: web.Request) -> int | None:
    raw = request.match_info.get("service_id")
    return as_id(raw) if raw is not None else None


def fault_response(decision: FaultDecision) -> web.Response:
    """The answer of an injected error: 429 with Retry-After, 5xx as HTML or JSON, 400."""
    status = decision.status
    assert status is not None
    if decision.html:
        page = _HTML_ERROR.format(status=status, reason=reason(status))
        return web.Response(text=page, status=status, content_type="text/html")
    headers = None
    if decision.retry_after_s is not None:
        headers = {"Retry-After": str(decision.retry_after_s)}
    return error_response(status, decision.message, headers)


def spoil(response: web.StreamResponse, mode: str) -> web.StreamResponse:
    """A malformed version of a successful JSON answer (other answers stay as they are)."""
    if not isinstance(response, web.Response) or response.content_type != "application/json":
        return response
    body = response.body
    if not isinstance(body, bytes | bytearray):
        return response
    if mode == "html_200":
        return web.Response(text=_HTML_MAINTENANCE, status=200, content_type="text/html")
    if mode == "truncated_json":
        cut = bytes(body[: max(len(body) // 2, 1)])
        return web.Response(body=cut, status=response.status, content_type="application/json")
    data = json.loads(body)
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in _ID_KEYS}
    elif isinstance(data, list):
        data = [
            {k: v for k, v in item.items() if k not in _ID_KEYS} if isinstance(item, dict) else item
            for item in data
        ]
    return web.json_response(data, status=response.status)


async def _translated(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run a handler; refusals and routing errors become the vendor's error shape."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:
            message = f"no such endpoint: {request.method} {request.path}"
        elif exc.status == 405:
            message = f"method {request.method} is not allowed for {request.path}"
        else:
            message = exc.text or reason(exc.status)
        allow = exc.headers.get("Allow")
        return error_response(exc.status, message, {"Allow": allow} if allow else None)
    except Exception as exc:
        # No traceback: a rendered traceback may show local variables (secrets).
        log.warning("simulator.handler_failed", path=request.path, error=type(exc).__name__)
        return error_response(500, "internal error in the simulator")


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if path.startswith("/_simulator"):
        return await _translated(request, handler)
    sim: Simulator = request.app[SIM_KEY]
    name, key = _route_of(request)
    sim.stats.calls[key] += 1
    response: web.StreamResponse
    check = request.app[CHECKS_KEY].get(name) if name is not None else None
    if not path.startswith("/api/"):
        response = await _translated(request, _checked(check, handler))
        sim.stats.record_status(response.status)
        return response

    decision = sim.decide_faults(service_id=_service_id(request), gdpr=name in handlers.GDPR_ROUTES)
    if decision.delay_s:
        await asyncio.sleep(decision.delay_s)
    if decision.status is not None:
        response = fault_response(decision)
    else:
        response = await _translated(request, _authenticated(sim, name, _checked(check, handler)))
        if decision.hang_s:
            await asyncio.sleep(decision.hang_s)
        if decision.malformed and 200 <= response.status < 300:
            response = spoil(response, decision.malformed)
    sim.stats.record_status(response.status)
    log.debug("simulator.call", method=request.method, route=key, status=response.status)
    return response


def _authenticated(sim: Simulator, name: str | None, handler: Handler) -> Handler:
    async def run(request: web.Request) -> web.StreamResponse:
        if name not in handlers.PUBLIC_ROUTES:
            sim.state.authenticate(
                request.headers.get("X-SESSION-ID"), bearer_of(request), sim.faults
            )
        return await handler(request)

    return run


def _checked(check: OperationCheck | None, handler: Handler) -> Handler:
    """The handler behind the request validation of its operation (if any)."""
    if check is None:
        return handler

    async def run(request: web.Request) -> web.StreamResponse:
        await check.check(request)
        return await handler(request)

    return run


def build_app(sim: Simulator) -> web.Application:
    """A new ``web.Application`` serving ``sim`` (its state, faults and stats).

    With ``sim.config.validate_requests`` every API request is checked against the
    shipped OpenAPI document (:mod:`gdpr_daemon.simulator.conformance`) after
    authentication and before its handler.
    """
    app = web.Application(middlewares=[api_middleware], client_max_size=4 * 1024 * 1024)
    app[SIM_KEY] = sim
    handlers.add_api_routes(app)
    control.add_control_routes(app)
    validate = sim.config.validate_requests
    app[CHECKS_KEY] = compiled().for_routes(app.router) if validate else {}
    return app
