"""A minimal OwnBackup API for the benchmarks: the calls a draining daemon makes, nothing more.

The simulator keeps state, validates every field against the OpenAPI document and records
each call; on a 2-core machine it costs more CPU per call than the clients it serves, so it
sets the pace for the daemon and the bare loop alike and the ratio between them says little.
This server answers from precomputed bytes: login, logout, the service list, the event
history (empty) and the two GDPR calls, each with a fresh id.  It is the reference the drain
benchmark measures against; the simulator stays for the realism run.

    python bench/minimal_api.py --port 8099 [--services 20] [--latency-ms 0]

``GET /_bench/calls`` answers the GDPR calls received so far as ``[[record_id, unix time], ...]``
(for the pickup latency) and ``POST /_bench/reset`` forgets them.  A request whose
``record_id`` starts with ``pickup`` is the only kind recorded, so a drain of 20,000 costs
nothing extra.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time

from aiohttp import web

SESSION = "bench-session-0123456789abcdef"


def make_app(services: int, latency_ms: float) -> web.Application:
    ids = itertools.count(1)
    calls: list[list[object]] = []
    delay = latency_ms / 1000
    service_list = json.dumps([
        {
            "id": 1001 + i, "displayed_name": f"bench-{i}", "secondary_name": None, "provider": "SaleForce Data",
            "org_id": f"00D{i:015d}", "status": "ACTIVE", "enabled": 1, "archived": False,
            "last_backup": "2026-11-30T00:00:00.000Z", "num_items": 1, "total_size": 1,
            "return_code": 0, "return_message": "",
        }
        for i in range(services)
    ]).encode()  # fmt: skip
    login = json.dumps({"session_id": SESSION}).encode()

    async def answer_login(_request: web.Request) -> web.Response:
        return web.Response(body=login, content_type="application/json")

    async def answer_empty(_request: web.Request) -> web.Response:
        return web.Response(body=b"{}", content_type="application/json")

    async def answer_services(_request: web.Request) -> web.Response:
        return web.Response(body=service_list, content_type="application/json")

    async def answer_events(_request: web.Request) -> web.Response:
        return web.Response(body=b"[]", content_type="application/json")

    async def answer_gdpr(request: web.Request) -> web.Response:
        if request.headers.get("X-SESSION-ID") != SESSION:
            return web.json_response({"error": "Unauthorized", "message": "session expired"}, status=401)
        form = await request.post()
        if delay:
            await asyncio.sleep(delay)
        record = str(form.get("record_id", ""))
        if record.startswith("pickup"):
            calls.append([record, time.time()])
        return web.Response(body=b'{"id": %d}' % next(ids), content_type="application/json")

    async def list_calls(_request: web.Request) -> web.Response:
        return web.json_response(calls)

    async def reset(_request: web.Request) -> web.Response:
        calls.clear()
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/api/auth/v1/login", answer_login)
    app.router.add_post("/api/auth/v1/logout", answer_empty)
    app.router.add_get("/api/v1/services", answer_services)
    app.router.add_get("/api/v1/events", answer_events)
    app.router.add_post("/api/v1/services/{service_id}/gdpr/forget", answer_gdpr)
    app.router.add_post("/api/v1/services/{service_id}/gdpr/rectify", answer_gdpr)
    app.router.add_get("/_bench/calls", list_calls)
    app.router.add_post("/_bench/reset", reset)
    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--services", type=int, default=20)
    p.add_argument("--latency-ms", type=float, default=0.0, help="added to every GDPR call (a slower API)")
    args = p.parse_args()
    web.run_app(make_app(args.services, args.latency_ms), host=args.host, port=args.port, print=None,
                access_log=None)  # fmt: skip


if __name__ == "__main__":
    main()
