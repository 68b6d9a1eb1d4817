"""Reading request bodies (form-encoded, multipart or JSON alike) and writing the vendor's answers.

The vendor's own clients send form-encoded bodies, others ``multipart/form-data`` or JSON.
:class:`Params` gives them all the same face: text values, lists (repeated form keys, a JSON
array, a JSON array inside a form value, or comma-separated text), booleans (``true``,
``True``...) and objects (a JSON object, or one as text in a form value).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

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


async def read_json_object(request: web.Request) -> dict[str, Any] | None:
    """The JSON body as an object (None for ``null``); 400 when it is not JSON or no object."""
    try:
        data = await request.json()
    except ValueError as exc:
        raise ApiError(400, "the request body is not valid JSON") from exc
    if data is not None and not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return data


async def read_form(request: web.Request) -> Mapping[str, Any]:
    """The body as a form, urlencoded or multipart (empty for other media types); 400 when
    it cannot be read."""
    try:
        return await request.post()
    # ValueError: e.g. multipart without a boundary, or bytes that are no text;
    # HttpProcessingError: a multipart part whose headers cannot be parsed.
    except (ValueError, HttpProcessingError) as exc:
        raise ApiError(400, "the request body is not a readable form") from exc


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, web.FileField):  # a multipart part sent with a file name
        try:
            return value.file.read().decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, f"the form field {value.name} is not UTF-8 text") from None
    return value if isinstance(value, str) else str(value)


class Params:
    """The parameters of one request body; every value kept as a list of texts."""

    def __init__(self, values: dict[str, list[str]]) -> None:
        self._values = values

    @classmethod
    async def read(cls, request: web.Request) -> Params:
        """Parse the body as JSON when it says so, else as a form; 400 when unreadable.

        When the request validation of the simulator has already read the body, its
        parameters are reused rather than parsed a second time.
        """
        checked: Params | None = request.get(PARAMS_KEY)
        if checked is not None:
            return checked
        if not request.body_exists:
            return cls({})
        if request.content_type == "application/json":
            return cls.from_json(await read_json_object(request))
        return cls.from_form(await read_form(request))

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Params:
        """The parameters of a JSON object (null values count as absent)."""
        values: dict[str, list[str]] = {}
        for key, value in (data or {}).items():
            if value is None:
                continue
            items = value if isinstance(value, list) else [value]
            values[str(key)] = [
                json.dumps(v) if isinstance(v, dict | list) else _as_text(v) for v in items
            ]
        return cls(values)

    @classmethod
    def from_form(cls, form: Mapping[str, Any]) -> Params:
        """The parameters of a form (a ``MultiDictProxy``: repeated keys kept in order)."""
        values: dict[str, list[str]] = {}
        for key, value in form.items():
            values.setdefault(key, []).append(_as_text(value))
        return cls(values)

    def texts(self) -> dict[str, list[str]]:
        """Every parameter with its values, as given."""
        return self._values

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def text(self, name: str) -> str | None:
        """The (last) value of ``name``, or None when absent."""
        items = self._values.get(name)
        return items[-1] if items else None

    def automations(self, name: str) -> dict[str, list[str]] | list[str] | None:
        """Automations by kind (a JSON object, or one as text) or a list of names."""
        items = self._values.get(name)
        if not items:
            return None
        if len(items) == 1 and items[0].lstrip().startswith("{"):
            try:
                parsed = json.loads(items[0])
            except ValueError:
                raise ApiError(400, f"{name} is not a valid JSON object") from None
            if not isinstance(parsed, dict) or not all(
                isinstance(v, list) and all(isinstance(x, str) for x in v) for v in parsed.values()
            ):
                raise ApiError(400, f"{name} must map each automation kind to a list of names")
            return parsed
        return self.list(name)

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

    # Last of the methods: its name hides the builtin ``list`` in the class body below it.
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


# The parameters the request validation read (see gdpr_daemon.simulator.conformance).
PARAMS_KEY: web.RequestKey[Params] = web.RequestKey("params", Params)
