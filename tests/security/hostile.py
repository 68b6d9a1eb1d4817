"""A hostile OwnBackup API: a real aiohttp server on loopback that answers as an attacker
(or a badly broken API) would.

It speaks enough of the API for the daemon to log in, list services, submit and pull
events, and it decides each GDPR answer by the record id sent, so one test can mix good
requests with bad ones:

- ``GOOD-...``      ``{"id": N}``, a fresh id each time
- ``HUGE-ID-...``   ``{"id": 100000000000000000000}``, beyond bigint
- ``NUL-...``       400 whose message holds ``\\u0000``
- ``SURROGATE-...`` 400 whose message holds a lone surrogate ``\\ud800``
- ``ESC-...``       400 whose message holds a terminal escape sequence
- ``ECHO-...``      400 whose message repeats everything sent: the form (record id, value,
                    comment), the session id and the password
- ``ECHO5-...``     599 (a 5xx no standard names) whose reason phrase and message repeat
                    the session id and password

``services_mode`` makes ``GET /api/v1/services`` answer a normal list (``"ok"``), a list whose
names echo the session id and password and hold escape sequences (``"echo"``), a 503
echoing them (``"503"``), or about 1 GB, streamed from one preallocated chunk so the server
itself allocates nothing (``"huge"`` chunked, ``"huge-length"`` with a Content-Length,
``"gzip-bomb"`` compressed).  It counts the bytes it managed to send.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import zlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from aiohttp import web

HUGE_BYTES = 2**30  # what a "huge" answer would be, in full
CHUNK = b" " * 2**20  # one preallocated MiB, sent again and again (whitespace: still "JSON")
ESC = "\x1b]0;owned\x07\x1b[2J"  # set the terminal title, clear the screen


@dataclass
class HostileApi:
    email: str
    password: str
    services: tuple[int, ...] = (1001, 1002)
    services_mode: str = "ok"
    sessions: list[str] = field(default_factory=list)  # every session id issued
    calls: Counter[str] = field(default_factory=Counter)  # record id -> GDPR calls received
    sent_bytes: int = 0  # of the last huge answer, before the client hung up
    _next_id: int = 5000

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/auth/v1/login", self.login)
        app.router.add_post("/api/auth/v1/logout", self.logout)
        app.router.add_get("/api/v1/services", self.list_services)
        app.router.add_post("/api/v1/services/{sid}/gdpr/forget", self.gdpr)
        app.router.add_post("/api/v1/services/{sid}/gdpr/rectify", self.gdpr)
        app.router.add_get("/api/v1/events", self.events)
        return app

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            await runner.cleanup()

    # ---- handlers ----------------------------------------------------------------

    async def login(self, request: web.Request) -> web.Response:
        form = parse_qs((await request.read()).decode())
        if form.get("email") != [self.email] or form.get("password") != [self.password]:
            return web.json_response({"message": "wrong email or password"}, status=401)
        sid = "HOSTILE-SESSION-" + secrets.token_hex(8)
        self.sessions.append(sid)
        return web.json_response({"session_id": sid})

    async def logout(self, _request: web.Request) -> web.Response:
        return web.json_response({})

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("X-SESSION-ID") in self.sessions

    async def list_services(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            return web.json_response({"message": "log in first"}, status=401)
        sid = request.headers["X-SESSION-ID"]
        mode = self.services_mode
        if mode == "echo":
            names = [f"{ESC}Sales {sid} {self.password}", "Service\u202eevil"]
            return web.json_response(
                [{"id": s, "displayed_name": names[i % 2]} for i, s in enumerate(self.services)]
            )
        if mode == "503":
            return web.json_response(
                {"message": f"maintenance; your session {sid}, your password {self.password}"},
                status=503, reason=f"Down {sid}",
            )  # fmt: skip
        if mode.startswith("huge") or mode == "gzip-bomb":
            return await self._huge(request, mode)
        return web.json_response([{"id": s, "displayed_name": f"Service {s}"} for s in self.services])

    async def _huge(self, request: web.Request, mode: str) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        if mode == "huge-length":
            resp.content_length = HUGE_BYTES
        if mode == "gzip-bomb":
            resp.headers["Content-Encoding"] = "gzip"
        await resp.prepare(request)
        self.sent_bytes = 0
        packer = zlib.compressobj(1, zlib.DEFLATED, 31) if mode == "gzip-bomb" else None
        try:
            while self.sent_bytes < HUGE_BYTES:
                if request.transport is None or request.transport.is_closing():
                    break  # the client hung up
                data = CHUNK if packer is None else packer.compress(CHUNK)
                if data:
                    await resp.write(data)
                self.sent_bytes += len(CHUNK)  # counted as the client would see it
                await asyncio.sleep(0)  # the client runs in this event loop too
            if packer is not None:
                await resp.write(packer.flush())
            await resp.write_eof()
        except (ConnectionError, RuntimeError):  # the client hung up: what we want
            pass
        return resp

    async def gdpr(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"message": "log in first"}, status=401)
        raw = (await request.read()).decode()
        form = {k: v[0] for k, v in parse_qs(raw).items()}
        record = form.get("record_id", "")
        self.calls[record] += 1
        sid = request.headers["X-SESSION-ID"]
        if record.startswith("GOOD-"):
            self._next_id += 1
            return web.json_response({"id": self._next_id})
        if record.startswith("HUGE-ID-"):
            return web.Response(text='{"id": 100000000000000000000}', content_type="application/json")
        if record.startswith("NUL-"):
            return _raw(400, '{"message": "record \\u0000 refused"}')
        if record.startswith("SURROGATE-"):
            return _raw(400, '{"message": "record \\ud800 refused"}')
        if record.startswith("ESC-"):
            return web.json_response({"message": f"refused {ESC}done"}, status=400)
        if record.startswith("ECHO5-"):
            return web.json_response(
                {"message": f"overloaded; session {sid}; password {self.password}; you sent {raw}"},
                status=599, reason=f"Busy {sid}",
            )  # fmt: skip
        if record.startswith("ECHO-"):
            message = (f"refused: record_id={form.get('record_id')} value={form.get('value')} "
                       f"comment={form.get('comment')} session={sid} password={self.password} "
                       f"body={raw} json={json.dumps(form)}")  # fmt: skip
            return web.json_response({"message": message}, status=400)
        return web.json_response({"message": "unexpected record"}, status=400)

    async def events(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"message": "log in first"}, status=401)
        return web.json_response([])


def _raw(status: int, body: str) -> web.Response:
    return web.Response(status=status, text=body, content_type="application/json")
