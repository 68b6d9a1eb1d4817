"""One HTTP exchange with the API, and the reading of its answer.

This is the only module that touches aiohttp requests.  :func:`exchange` sends one
request and returns an :class:`Answer` whatever its status, translating network
failures into :class:`ConnectionFailed` and :class:`RequestTimeout`; the client
decides what a status means.  :func:`json_body` and :func:`error_from_answer` are pure
functions of an answer.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from gdpr_daemon import metrics
from gdpr_daemon.logging import get_logger

from .errors import (
    BadAnswer,
    ConnectionFailed,
    OwnBackupError,
    RequestTimeout,
    error_for_status,
    format_seconds,
)
from .retry import parse_retry_after

__all__ = ["Answer", "encode_form", "error_from_answer", "exchange", "json_body"]

log = get_logger("gdpr_daemon.ownbackup")

FormValue = str | int | bool | list[str] | tuple[str, ...] | None


@dataclass(frozen=True)
class Answer:
    """A complete HTTP answer: status, headers and the whole body."""

    status: int
    _: KW_ONLY
    reason: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def __post_init__(self) -> None:
        # Header names are case-insensitive; tests may build answers from plain dicts.
        if not isinstance(self.headers, CIMultiDictProxy | CIMultiDict):
            object.__setattr__(self, "headers", CIMultiDict(self.headers))

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def encode_form(fields: Mapping[str, FormValue]) -> bytes:
    """``application/x-www-form-urlencoded``, as the vendor's own clients send.

    None is left out; booleans are ``true``/``false``; a list becomes the key repeated
    once per item (``objects=Account&objects=Contact``).
    """
    pairs: list[tuple[str, str]] = []
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, bool):
            pairs.append((key, "true" if value else "false"))
        elif isinstance(value, list | tuple):
            pairs.extend((key, str(item)) for item in value)
        else:
            pairs.append((key, str(value)))
    return urlencode(pairs).encode("ascii")


async def exchange(
    session: aiohttp.ClientSession,
    name: str,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    form: Mapping[str, FormValue] | None = None,
    params: Mapping[str, str] | None = None,
    limits: aiohttp.ClientTimeout | None = None,
) -> Answer:
    """Send one request and read its whole answer; network failures become our errors."""
    send_headers = dict(headers or {})
    data: bytes | None = None
    if form is not None:
        data = encode_form(form)
        send_headers["Content-Type"] = "application/x-www-form-urlencoded"
    used = limits or session.timeout
    started = time.perf_counter()
    outcome = "error"
    try:
        async with session.request(
            method,
            url,
            headers=send_headers,
            data=data,
            params=params,
            allow_redirects=False,
            **({"timeout": limits} if limits is not None else {}),
        ) as resp:
            body = await resp.read()
            # resp.headers is a read-only view that stays valid after the release.
            answer = Answer(resp.status, reason=resp.reason, headers=resp.headers, body=body)
            outcome = str(resp.status)
            return answer
    except aiohttp.ConnectionTimeoutError as exc:
        raise ConnectionFailed(
            f"No connection to OwnBackup could be made for {name} within "
            f"{format_seconds(used.connect or used.total or 0)}",
            endpoint=name,
        ) from exc
    except TimeoutError as exc:
        raise RequestTimeout(
            f"OwnBackup did not answer {name} within {format_seconds(used.total or 0)}",
            endpoint=name,
        ) from exc
    except aiohttp.ClientConnectorCertificateError as exc:
        raise ConnectionFailed(
            f"OwnBackup could not be reached for {name}: the TLS certificate of "
            f"{exc.host} could not be verified",
            endpoint=name,
        ) from exc
    except aiohttp.ClientConnectorError as exc:
        reason = exc.strerror or exc.os_error.__class__.__name__
        raise ConnectionFailed(
            f"OwnBackup could not be reached for {name} at {exc.host}:{exc.port}: {reason}",
            endpoint=name,
        ) from exc
    except aiohttp.ServerDisconnectedError as exc:
        raise ConnectionFailed(
            f"OwnBackup closed the connection during {name} without answering",
            endpoint=name,
        ) from exc
    except aiohttp.ClientPayloadError as exc:
        raise ConnectionFailed(
            f"OwnBackup broke off its answer to {name} before the end", endpoint=name
        ) from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise ConnectionFailed(
            f"The connection to OwnBackup failed during {name} ({exc.__class__.__name__})",
            endpoint=name,
        ) from exc
    finally:
        elapsed = time.perf_counter() - started
        _latency(name).observe(elapsed)
        metrics.api_call_counter(name, None if outcome == "error" else int(outcome)).inc()
        # URLs and bodies stay out of the log: a download link can carry a signature,
        # a body can carry personal data.
        log.debug(
            "ownbackup_call",
            endpoint=name,
            method=method,
            outcome=outcome,
            seconds=round(elapsed, 4),
        )


@functools.cache
def _latency(endpoint: str) -> Any:
    """The latency histogram's child of an endpoint, looked up once (the names are few)."""
    return metrics.API_LATENCY.labels(endpoint=endpoint)


def _looks_like_html(answer: Answer) -> bool:
    head = answer.body.lstrip()[:64].lower()
    return answer.content_type in ("text/html", "application/xhtml+xml") or head.startswith(b"<")


def json_body(answer: Answer, endpoint: str, *, empty: Any = ...) -> Any:
    """The answer's body as JSON, or BadAnswer saying why it is not.

    ``empty`` is what an empty body stands for; by default an empty body is a BadAnswer.
    """
    if not answer.body.strip():
        if empty is not ...:
            return empty
        raise BadAnswer(
            f"OwnBackup answered {endpoint} with an empty body",
            status=answer.status,
            endpoint=endpoint,
        )
    try:
        return json.loads(answer.body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        what = "an HTML page" if _looks_like_html(answer) else "truncated or invalid JSON"
        raise BadAnswer(
            f"OwnBackup answered {endpoint} with a body that is not JSON ({what})",
            status=answer.status,
            endpoint=endpoint,
        ) from exc


def api_message(answer: Answer) -> str | None:
    """The ``message`` of an error body ``{"error": ..., "message": ...}``, if any."""
    try:
        obj = json.loads(answer.body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(obj, dict):
        return None
    for key in ("message", "error_description", "error"):
        value = obj.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return None


def error_from_answer(
    answer: Answer, endpoint: str, *, now: datetime | None = None
) -> OwnBackupError:
    """The error for a non-2xx answer, with the API's message and Retry-After."""
    retry_after = None
    if answer.status == 429:
        retry_after = parse_retry_after(answer.headers.get("Retry-After"), now or datetime.now(UTC))
    return error_for_status(
        answer.status,
        endpoint=endpoint,
        message=api_message(answer),
        reason=answer.reason,
        retry_after=retry_after,
    )
