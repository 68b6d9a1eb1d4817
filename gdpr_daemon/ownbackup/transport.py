"""One HTTP exchange with the API, and the reading of its answer.

This is the only module that touches aiohttp requests.  :func:`exchange` sends one
request and returns an :class:`Answer` whatever its status, translating network
failures into :class:`ConnectionFailed` and :class:`RequestTimeout`; the client
decides what a status means.  :func:`json_body` and :func:`error_from_answer` are pure
functions of an answer.

An answer is read with a bound (``max_bytes``): a 2xx body over it is a
:class:`BadAnswer` after reading no more than the bound (the call may have been carried
out, so it is transient like any unreadable answer); an error status keeps its status
and drops the body.  Every answer remembers the secrets and personal values sent with it
(``Answer.sent``: form fields such as ``record_id``, ``value`` and ``password``, the
session or bearer header, and the credentials the connection passes in), and the
API's text leaves this module only with them redacted and with NUL and lone surrogates
escaped.  Downloads that stream to a file do not come through :func:`exchange`.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from gdpr_daemon import metrics
from gdpr_daemon.logs import get_logger
from gdpr_daemon.safetext import escape_controls, is_plain, scrub, secret_forms

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

#: Form fields whose values are secret or personal: redacted wherever the answer echoes them.
SENSITIVE_FIELDS = frozenset({"record_id", "value", "comment", "password", "refresh_token", "client_secret"})
#: Headers that carry a credential.
SENSITIVE_HEADERS = frozenset({"x-session-id", "authorization"})


@dataclass(frozen=True)
class Answer:
    """A complete HTTP answer: status, headers and the whole body."""

    status: int
    _: KW_ONLY
    reason: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    sent: frozenset[str] = field(default=frozenset(), repr=False)  # to redact from the answer

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


def _form_quote(text: str) -> str:
    return text if is_plain(text) else quote_plus(text)  # quote_plus('') is '' too


def encode_form(fields: Mapping[str, FormValue]) -> bytes:
    """``application/x-www-form-urlencoded``, as the vendor's own clients send.

    None is left out; booleans are ``true``/``false``; a list becomes the key repeated
    once per item (``objects=Account&objects=Contact``).  The same bytes as
    ``urllib.parse.urlencode``; plain names and ids (most fields of most calls) skip its
    quoting, which cost more than the rest of a GDPR call's own work in the client.
    """
    parts: list[str] = []
    for key, value in fields.items():
        if value is None:
            continue
        name = _form_quote(key)
        if isinstance(value, bool):
            parts.append(f"{name}={'true' if value else 'false'}")
        elif isinstance(value, list | tuple):
            parts.extend(f"{name}={_form_quote(str(item))}" for item in value)
        else:
            parts.append(f"{name}={_form_quote(str(value))}")
    return "&".join(parts).encode("ascii")


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
    secrets: Iterable[str] = (),
    max_bytes: int | None = None,
) -> Answer:
    """Send one request and read its answer (at most ``max_bytes`` of it); network
    failures become our errors.  ``secrets``: credentials to redact from the answer
    besides what this request itself carries."""
    sent = sensitive_sent(form, headers, secrets)
    send_headers, data = _request_body(headers, form)
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
            timeout=limits or session.timeout,  # the session's own unless the call has its own
        ) as resp:
            body = await _read_bounded(resp, name, max_bytes)
            # resp.headers is a read-only view that stays valid after the release.
            answer = Answer(resp.status, reason=resp.reason, headers=resp.headers, body=body, sent=sent)
            outcome = str(resp.status)
            return answer
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise _network_error(exc, name, limits or session.timeout) from exc
    finally:
        _observe_call(name, method, outcome, time.perf_counter() - started)


def _request_body(
    headers: Mapping[str, str] | None, form: Mapping[str, FormValue] | None
) -> tuple[dict[str, str], bytes | None]:
    """The headers to send and the body: the form encoded, with its Content-Type."""
    send_headers = dict(headers or {})
    if form is None:
        return send_headers, None
    send_headers["Content-Type"] = "application/x-www-form-urlencoded"
    return send_headers, encode_form(form)


def _network_error(exc: BaseException, name: str, used: aiohttp.ClientTimeout) -> OwnBackupError:
    """What a request that got no answer is told: the network failure in the user's terms.

    The order matters: a connect timeout is a timeout, a certificate error a connector error.
    """
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ConnectionFailed(
            f"No connection to OwnBackup could be made for {name} within "
            f"{format_seconds(used.connect or used.total or 0)}",
            endpoint=name,
        )
    if isinstance(exc, TimeoutError):
        return RequestTimeout(
            f"OwnBackup did not answer {name} within {format_seconds(used.total or 0)}", endpoint=name
        )
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return ConnectionFailed(
            f"OwnBackup could not be reached for {name}: the TLS certificate of "
            f"{exc.host} could not be verified",
            endpoint=name,
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.strerror or exc.os_error.__class__.__name__
        return ConnectionFailed(
            f"OwnBackup could not be reached for {name} at {exc.host}:{exc.port}: {reason}", endpoint=name
        )
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return ConnectionFailed(f"OwnBackup closed the connection during {name} without answering", endpoint=name)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return ConnectionFailed(f"OwnBackup broke off its answer to {name} before the end", endpoint=name)
    return ConnectionFailed(
        f"The connection to OwnBackup failed during {name} ({exc.__class__.__name__})", endpoint=name
    )


def _observe_call(name: str, method: str, outcome: str, elapsed: float) -> None:
    """An exchange's latency, its count by status (``outcome``: a status or ``error``) and its debug line."""
    _latency(name).observe(elapsed)
    metrics.api_call_counter(name, None if outcome == "error" else int(outcome)).inc()
    # URLs and bodies stay out of the log: a download link can carry a signature,
    # a body can carry personal data.
    log.debug("ownbackup_call", endpoint=name, method=method, outcome=outcome, seconds=round(elapsed, 4))


def sensitive_sent(
    form: Mapping[str, FormValue] | None, headers: Mapping[str, str] | None, secrets: Iterable[str]
) -> frozenset[str]:
    """The secret and personal values a request carries (and ``secrets``), to redact from its answer."""
    found = {s for s in secrets if s}
    for key, value in (form or {}).items():
        if key in SENSITIVE_FIELDS and isinstance(value, str) and value:
            found.add(value)
    for key, value in (headers or {}).items():
        if key.lower() in SENSITIVE_HEADERS and value:
            found.add(value)
            found.add(value.partition(" ")[2] or value)  # the token without "Bearer "
    return frozenset(found)


def _size(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n} bytes"


async def _read_bounded(resp: aiohttp.ClientResponse, name: str, max_bytes: int | None) -> bytes:
    """The body, reading no more than ``max_bytes``; over it: BadAnswer (2xx) or no body."""
    if max_bytes is None:
        return await resp.read()
    declared = resp.content_length
    if declared is not None and declared <= max_bytes and "Content-Encoding" not in resp.headers:
        # Read at once: the parser reads no more than the declared length.  (Not when
        # compressed: the length is the compressed one, and what it inflates to is bounded
        # only by the reading below.)
        return await resp.read()
    over = declared is not None and declared > max_bytes
    chunks: list[bytes] = []
    size = 0
    if not over:
        async for chunk in resp.content.iter_chunked(2**16):
            size += len(chunk)
            if size > max_bytes:
                over = True
                break
            chunks.append(chunk)
    if not over:
        return b"".join(chunks)
    chunks.clear()
    resp.close()  # the rest is never read: the connection is closed, not reused
    if 200 <= resp.status < 300:
        raise BadAnswer(
            f"OwnBackup answered {name} with more than {_size(max_bytes)} "
            "(ownbackup_max_response_bytes); the answer was not read",
            status=resp.status,
            endpoint=name,
        )
    return b""  # an error status says enough without its oversized page


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
        obj = json.loads(answer.body)
    except (ValueError, RecursionError) as exc:  # also a number of more than 4300 digits
        what = "an HTML page" if _looks_like_html(answer) else "truncated or invalid JSON"
        raise BadAnswer(
            f"OwnBackup answered {endpoint} with a body that is not JSON ({what})",
            status=answer.status,
            endpoint=endpoint,
        ) from exc
    if _needs_cleaning(answer):
        obj = _clean(obj, answer.sent)
    return obj


def _needs_cleaning(answer: Answer) -> bool:
    """Whether a string of the decoded body could hold a NUL, a lone surrogate or a value we sent.

    NUL and surrogates can only come as JSON escapes (a backslash), a sent value either
    escaped or as it is; most answers have neither and are not walked.
    """
    body = answer.body
    if b"\\" in body:
        return True
    # Every form of a value is at least as long as the value: most answers ({"id": 123}) are
    # shorter than any value sent, and are not searched at all.
    return any(
        form.encode("utf-8", "surrogatepass") in body
        for s in answer.sent
        if len(s) <= len(body)
        for form in secret_forms(s)
    )


def _clean(obj: Any, sent: frozenset[str]) -> Any:
    """Every string of a decoded body (keys too) without the values we sent, NUL or surrogates."""
    if isinstance(obj, str):
        text = scrub(obj, sent) if sent else obj
        return _escape_unstorable(text)
    if isinstance(obj, list):
        return [_clean(v, sent) for v in obj]
    if isinstance(obj, dict):
        return {_clean(k, sent): _clean(v, sent) for k, v in obj.items()}
    return obj


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _escape_unstorable(text: str) -> str:
    """NUL and lone surrogates (which Postgres and UTF-8 refuse) shown as escapes; the rest kept."""
    return _UNSTORABLE.sub(lambda m: escape_controls(m.group()), text) if _UNSTORABLE.search(text) else text


def api_message(answer: Answer) -> str | None:
    """The ``message`` of an error body ``{"error": ..., "message": ...}``, if any."""
    try:
        obj = json.loads(answer.body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    for key in ("message", "error_description", "error"):
        value = obj.get(key)
        if isinstance(value, str) and value.strip():
            return scrub(value, answer.sent)
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
        reason=scrub(answer.reason, answer.sent) if answer.reason else None,
        retry_after=retry_after,
    )
