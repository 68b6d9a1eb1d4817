"""Simulator-only control endpoints under ``/_simulator/``: no authentication, no faults.

``GET  /_simulator/faults``   the fault config as JSON (see :class:`FaultConfig`)
``PUT  /_simulator/faults``   replace it; fields left out take their defaults
``PATCH /_simulator/faults``  change only the fields given (a 429 burst under way goes on)
``POST /_simulator/reset``    rebuild the account, clear sessions, calls and stats, and
                             restore the faults the simulator was started with
``GET  /_simulator/calls``    the accepted GDPR calls (rectify values only as sha256)
``POST /_simulator/events``   ``{"count": N}`` adds N synthetic events; optionally
                             ``{"malformed": [{"event_id": 7, "kind": "not_object"}]}``
                             (kinds: missing_event_id, bad_created_at, not_object);
                             answers ``{"last_event_id": N}``
``GET  /_simulator/stats``    calls per endpoint, statuses, logins, 401s, 429s and 5xx sent

A bad body answers 400 in the same error shape as the API.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gdpr_daemon.simulator.faults import FaultConfig
from gdpr_daemon.simulator.params import SIM_KEY
from gdpr_daemon.simulator.state import ApiError

PREFIX = "/_simulator"


async def _json_object(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError as exc:
        raise ApiError(400, "the request body is not valid JSON") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return data


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIM_KEY].faults.to_json())


async def put_faults(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    try:
        sim.faults = FaultConfig.from_json(await _json_object(request))
    except (ValueError, TypeError) as exc:
        raise ApiError(400, str(exc)) from exc
    return web.json_response(sim.faults.to_json())


async def patch_faults(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    try:
        sim.update_faults(await _json_object(request))
    except (ValueError, TypeError) as exc:
        raise ApiError(400, str(exc)) from exc
    return web.json_response(sim.faults.to_json())


async def reset(request: web.Request) -> web.Response:
    request.app[SIM_KEY].reset()
    return web.json_response({"reset": True})


async def calls(request: web.Request) -> web.Response:
    return web.json_response([c.to_json() for c in request.app[SIM_KEY].state.gdpr_calls])


async def grow_events(request: web.Request) -> web.Response:
    state = request.app[SIM_KEY].state
    body = await _json_object(request)
    count = body.get("count", 0)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ApiError(400, "count must be a non-negative integer")
    malformed = body.get("malformed", [])
    if not isinstance(malformed, list):
        raise ApiError(400, "malformed must be a list of {event_id, kind} objects")
    for item in malformed:
        if not isinstance(item, dict) or not isinstance(item.get("event_id"), int):
            raise ApiError(400, "each malformed entry needs an integer event_id and a kind")
        try:
            state.inject_malformed_event(item["event_id"], str(item.get("kind")))
        except ValueError as exc:
            raise ApiError(400, str(exc)) from exc
    last = state.add_events(count)
    return web.json_response({"last_event_id": last})


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIM_KEY].stats.to_json())


def add_control_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(PREFIX + "/faults", get_faults, name="control_get_faults")
    r.add_put(PREFIX + "/faults", put_faults, name="control_put_faults")
    r.add_patch(PREFIX + "/faults", patch_faults, name="control_patch_faults")
    r.add_post(PREFIX + "/reset", reset, name="control_reset")
    r.add_get(PREFIX + "/calls", calls, name="control_calls")
    r.add_post(PREFIX + "/events", grow_events, name="control_events")
    r.add_get(PREFIX + "/stats", stats, name="control_stats")
