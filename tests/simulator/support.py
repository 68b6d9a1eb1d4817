"""Helpers of the simulator tests: constants, a settable clock, a small API client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp

from gdpr_daemon.simulator import Simulator, SimulatorConfig

EMAIL = "dpo@example.com"
PASSWORD = "s3cret-Pa55word"
API_TOKEN = "api-token-for-tests"
# The vendor's token path (on auth.owndata.com there), served by the simulator on its own host.
TOKEN_PATH = "/oauth2/aus4c3z3l8FqrbqDU4h7/v1/token"
VENDOR_CLIENT_ID = "0oa4c413eq8wwcEzP4h7"
START = 1_700_000_000.0


class FakeClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def config(**changes: Any) -> SimulatorConfig:
    """The tests' simulator config: known credentials, no login events unless asked."""
    base: dict[str, Any] = {
        "email": EMAIL,
        "password": PASSWORD,
        "api_tokens": (API_TOKEN,),
        "login_events": False,
        "seed": 7,
    }
    base.update(changes)
    return SimulatorConfig(**base)


@dataclass
class Api:
    """A served simulator and a client session speaking to it."""

    sim: Simulator
    url: str
    http: aiohttp.ClientSession
    session_id: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"X-SESSION-ID": self.session_id} if self.session_id else {}

    async def login(self) -> str:
        async with self.http.post(
            self.url + "/api/auth/v1/login", data={"email": EMAIL, "password": PASSWORD}
        ) as resp:
            assert resp.status == 200, await resp.text()
            self.session_id = (await resp.json())["session_id"]
        return self.session_id

    async def call(
        self, method: str, path: str, *, auth: bool = True, **kwargs: Any
    ) -> tuple[int, Any]:
        """(status, parsed JSON or text) of one call, with the session header."""
        headers = {**(self.headers if auth else {}), **kwargs.pop("headers", {})}
        async with self.http.request(method, self.url + path, headers=headers, **kwargs) as resp:
            if resp.content_type == "application/json":
                try:
                    return resp.status, await resp.json()
                except ValueError:
                    return resp.status, await resp.text()
            return resp.status, await resp.text()

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        return await self.call("POST", path, **kwargs)
