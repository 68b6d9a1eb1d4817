"""Streaming downloads of a backup's data: authenticated, on the API's own host, any size.

The links of a backup's object sections (``download_link`` and its kin) answer CSV files
that can hold millions of records.  JSON answers are read whole, with a size cap, by
:func:`.transport.exchange`; a download is not: :func:`stream` yields its body in chunks
as they arrive, so the caller's memory does not grow with the file.

Authentication is the same as for every call (``X-SESSION-ID`` or ``Authorization:
Bearer``), with one re-login and one repeat on a 401.  Because the credential goes with
the request, the link must be on the API's own origin (scheme, host and port of the base
URL): a link anywhere else, or one carrying user information, is refused with
:class:`ForeignLink` before any connection is made, so a hostile or spoofed objects
answer cannot make the client hand its session to a third party.  Redirects are not
followed, for the same reason.

Timeouts: the connect timeout of the configuration, and the call timeout between two
chunks (not for the whole file, which may take minutes).  A download is not retried
here: its reader has consumed what came before a failure, so retrying is the reader's
decision (:mod:`gdpr_daemon.verify` starts the file again).  URLs are never logged (a link
may carry a signature).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import aiohttp

from gdpr_daemon import metrics
from gdpr_daemon.logs import get_logger

from .errors import (
    AuthenticationError,
    ConnectionFailed,
    OwnBackupError,
    PermanentError,
    RequestTimeout,
    clean_message,
    format_seconds,
)
from .transport import Answer, api_message, error_from_answer, sensitive_sent

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["CHUNK_BYTES", "ENDPOINT", "ForeignLink", "resolve_link", "stream"]

log = get_logger("gdpr_daemon.ownbackup")

ENDPOINT = "download"
CHUNK_BYTES = 256 * 1024
ERROR_BODY_BYTES = 64 * 1024  # read of an error answer, for its message

_DEFAULT_PORTS = {"http": 80, "https": 443}


class ForeignLink(PermanentError):
    """A download link that is not on the API's own origin: refused, nothing sent."""


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1  # an unreadable port matches nothing
    return scheme, (parts.hostname or "").lower(), port if port is not None else _DEFAULT_PORTS.get(scheme)


def _shown(url: str) -> str:
    """``scheme://host:port`` of a URL, without user information, path or query (which may be secret)."""
    parts = urlsplit(url)
    if not parts.hostname:
        return "an address without a host"
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        port = ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}{port}"


def resolve_link(base_url: str, link: object) -> str:
    """The absolute URL of ``link`` (relative ones against ``base_url``), or ForeignLink.

    The origin must be the base URL's; user information (``user@host``) is refused too.
    """
    if not isinstance(link, str) or not link.strip():
        raise ForeignLink("The download link is empty: the backup section gave none", endpoint=ENDPOINT)
    full = urljoin(base_url.rstrip("/") + "/", link.strip())
    parts = urlsplit(full)
    if parts.username is not None or parts.password is not None or _origin(full) != _origin(base_url):
        raise ForeignLink(
            f"The download link points at {_shown(full)}, not at the OwnBackup API's own host "
            f"({_shown(base_url)}); it was not fetched, so no credential left this process",
            endpoint=ENDPOINT,
        )
    return full


@asynccontextmanager
async def stream(conn: Connection, link: str, *, chunk_bytes: int = CHUNK_BYTES) -> AsyncIterator[AsyncIterator[bytes]]:
    """``async with stream(client, link) as chunks: async for chunk in chunks: ...``.

    The errors are those of the client's tree; :class:`ForeignLink` for a link elsewhere.
    """
    url = resolve_link(conn.config.base_url, link)
    session = conn._session
    if session is None:
        raise RuntimeError("Use the OwnBackupClient inside 'async with', or call open() first.")
    cfg = conn.config
    timeout = aiohttp.ClientTimeout(total=None, connect=cfg.connect_timeout, sock_read=cfg.timeout)
    started = time.perf_counter()
    status: int | None = None
    try:
        headers, generation = await conn._auth.authorize(conn._send)
        resp = await _get(session, url, headers, timeout)
        if resp.status == 401:
            resp.release()
            await conn._auth.renew(conn._send, generation)
            headers, _ = await conn._auth.authorize(conn._send)
            resp = await _get(session, url, headers, timeout)
            if resp.status == 401:
                answer = await _error_answer(resp, _secrets(conn, headers))
                message = clean_message(api_message(answer))
                raise AuthenticationError(
                    f"OwnBackup answered 401 Unauthorized to {ENDPOINT} again right after a fresh login"
                    + (f": {message}" if message else ""),
                    status=401,
                    message=message,
                    endpoint=ENDPOINT,
                )
        status = resp.status
        if not 200 <= resp.status < 300:
            raise error_from_answer(await _error_answer(resp, _secrets(conn, headers)), ENDPOINT)
        try:
            yield _chunks(resp, chunk_bytes, cfg.timeout)
        finally:
            resp.release()  # read to the end: back to the pool; stopped early: the connection is closed
    except OwnBackupError as exc:
        conn._record(exc)
        raise
    else:
        conn.health.record_success()
    finally:
        elapsed = time.perf_counter() - started
        metrics.API_LATENCY.labels(endpoint=ENDPOINT).observe(elapsed)
        metrics.api_call_counter(ENDPOINT, status).inc()
        log.debug("ownbackup_call", endpoint=ENDPOINT, method="GET", outcome=str(status or "error"),
                  seconds=round(elapsed, 4))  # fmt: skip


async def _get(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], timeout: aiohttp.ClientTimeout
) -> aiohttp.ClientResponse:
    send = {**headers, "Accept": "text/csv, */*"}
    try:
        return await session.get(url, headers=send, allow_redirects=False, timeout=timeout)
    except aiohttp.ConnectionTimeoutError as exc:
        raise ConnectionFailed(
            f"No connection to OwnBackup could be made for {ENDPOINT} within {format_seconds(timeout.connect or 0)}",
            endpoint=ENDPOINT,
        ) from exc
    except TimeoutError as exc:
        raise RequestTimeout(
            f"OwnBackup did not start answering {ENDPOINT} within {format_seconds(timeout.sock_read or 0)}",
            endpoint=ENDPOINT,
        ) from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise ConnectionFailed(
            f"OwnBackup could not be reached for {ENDPOINT} ({exc.__class__.__name__})", endpoint=ENDPOINT
        ) from exc


def _secrets(conn: Connection, headers: dict[str, str]) -> frozenset[str]:
    """What an error answer must not echo back: the credential sent and the ones the client knows."""
    return sensitive_sent(None, headers, (conn._secret, *conn._credentials))


async def _error_answer(resp: aiohttp.ClientResponse, sent: frozenset[str]) -> Answer:
    """The error answer with at most ERROR_BODY_BYTES of its body (enough for its message), which
    :func:`.transport.api_message` reads with ``sent`` redacted."""
    try:
        body = await resp.content.read(ERROR_BODY_BYTES)
    except (aiohttp.ClientError, OSError, TimeoutError):
        body = b""
    finally:
        resp.close()
    return Answer(resp.status, reason=resp.reason, headers=resp.headers, body=body, sent=sent)


async def _chunks(resp: aiohttp.ClientResponse, size: int, read_timeout: float) -> AsyncIterator[bytes]:
    try:
        async for chunk in resp.content.iter_chunked(size):
            yield chunk
    except TimeoutError as exc:
        raise RequestTimeout(
            f"OwnBackup sent nothing more of {ENDPOINT} for {format_seconds(read_timeout)}", endpoint=ENDPOINT
        ) from exc
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
        raise ConnectionFailed(f"OwnBackup broke off {ENDPOINT} before the end of the file", endpoint=ENDPOINT) from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise ConnectionFailed(
            f"The connection to OwnBackup failed during {ENDPOINT} ({exc.__class__.__name__})", endpoint=ENDPOINT
        ) from exc
