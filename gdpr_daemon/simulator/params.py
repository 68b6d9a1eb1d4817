"""Reading request bodies (form-encoded or JSON alike) and writing the vendor's answers.

The vendor's own clients send form-encoded bodies; other clients send JSON.  :class:`Params`
gives both the same face: text values, lists (repeated form keys, a JSON array, a JSON
array inside a form value, or comma-separated text) and booleans.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gdpr_daemon.simulator.state import ApiError

if TYPE_CHECKING:
    from gdpr_daemon.simulator.server import Simulator

SIM_KEY: web.AppKey[Simulator] = web.AppKey("simulator")

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", ""})


def reason(status: int) -> str:
    """The HTTP reason phrase of a status, as the ``error`` field carries it."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """The vendor's error shape: ``{"error": "<reason phrase>", "message": "<sentence>"}``."""
    return web.json_response(
        {"error": reason(status), "message": message}, status=status, headers=headers
    )


def bearer_of(request: web.BaseRequest) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


class Params:
    """The parameters of one request body; every value kept as a list of texts."""

    def __init__(self, values: dict[str, list[str]]) -> None:
        self._values = values

    @classmethod
    async def read(cls, request: web.Request) -> Params:
        """Parse the body as JSON when it says so, else as a form; 400 when unreadable."""
        values: dict[str, list[str]] = {}
        if not request.can_read_body:
            return cls(values)
        if request.content_type == "application/json":
            try:
                data = await request.json()
            except ValueError as exc:
                raise ApiError(400, "the request body is not valid JSON") from exc
            if data is None:
                return cls(values)
            if not isinstance(data, dict):
                raise ApiError(400, "the request body must be a JSON object")
            for key, value in data.items():
                if value is None:
                    continue
                items = value if isinstance(value, list) else [value]
                values[str(key)] = [
                    json.dumps(v) if isinstance(v, dict | list) else _as_text(v) for v in items
                ]
            return cls(values)
        form = await request.post()
        for key, value in form.items():
            values.setdefault(key, []).append(_as_text(value))
        return cls(values)

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def text(self, name: str) -> str | None:
        """The (last) value of ``name``, or None when absent."""
        items = self._values.get(name)
        return items[-1] if items else None

    def list(self, name: str) -> list[str] | None:
        """A list parameter, or None when absent or empty."""
        items = self._values.get(name)
        if not items:
            return None
        if len(items) == 1:
            raw = items[0].strip()
            if raw.startswith("["):
                try:
                    parsed = json.loads(raw)
                except ValueError as exc:
                    raise ApiError(400, f"{name} is not a valid JSON array") from exc
                if not isinstance(parsed, list):
                    raise ApiError(400, f"{name} must be a list")
                items = [_as_text(v) for v in parsed]
            else:
                items = raw.split(",")
        cleaned = [item.strip() for item in items if item.strip()]
        return cleaned or None

    def bool(self, name: str, default: bool = False) -> bool:
        raw = self.text(name)
        if raw is None:
            return default
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ApiError(400, f"{name} must be true or false, not {raw!r}")
