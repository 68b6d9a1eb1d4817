"""The plumbing under the typed calls: one aiohttp session, the credential, retries.

Per call: authenticate if needed, send, and on a 401 log in again once (shared by all
concurrent calls, see :mod:`.auth`) and repeat the call once.  GET calls are
idempotent and are retried on transient errors by the :class:`RetryPolicy`; POSTs
(GDPR, backup, export, seed) are not: the caller's durable queue retries them and
records every attempt.

Every exchange is told the credentials this connection knows (the password or API
token, and the session ids and access tokens it has used lately), besides what the
request itself carries, so an answer that echoes any of them has it redacted before its
text becomes an error, a log line or a stored value.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

import aiohttp

from gdpr_daemon import metrics
from gdpr_daemon.logs import get_logger

from .auth import SessionAuth, make_authenticator
from .config import ClientConfig
from .errors import AuthenticationError, OwnBackupError, TransientError, clean_message
from .health import ApiHealth
from .transport import (
    SENSITIVE_HEADERS,
    Answer,
    FormValue,
    api_message,
    error_from_answer,
    exchange,
    json_body,
)

__all__ = ["LOGOUT_TIMEOUT", "Connection"]

log = get_logger("gdpr_daemon.ownbackup")

#: Logging out at shutdown must not hold the shutdown up for a whole call timeout.
LOGOUT_TIMEOUT = 5.0

T = TypeVar("T")


class Connection:
    """The session, credential, retries and health under the typed calls.

    ``clock``, ``rng`` and ``sleep`` are seams for tests (token expiry, jitter, retry
    waits); production code leaves them alone.
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self._endpoints = config.endpoints
        self._auth = make_authenticator(
            config.auth,
            login_url=self._url("login"),
            logout_url=self._url("logout"),
            clock=clock,
        )
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter only
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self._origin = urlsplit(config.base_url)[:2]
        self.health = ApiHealth()
        # Credentials to redact from any answer: the configured secret, and the session ids
        # or access tokens sent lately (an answer may echo an earlier one).
        self._credentials: deque[str] = deque(maxlen=8)
        auth = config.auth
        self._secret = auth.password if isinstance(auth, SessionAuth) else auth.api_token

    # -- lifecycle ----------------------------------------------------------------
    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Create the connection pool; must run inside the event loop."""
        if self._session is not None:
            raise RuntimeError("This OwnBackupClient is already open.")
        cfg = self.config
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=cfg.max_connections),  # TLS verified
            timeout=aiohttp.ClientTimeout(total=cfg.timeout, connect=cfg.connect_timeout),
            headers={"User-Agent": cfg.user_agent, "Accept": "application/json"},
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        """Log out (session auth) within a few seconds, then close the pool."""
        if self._session is None:
            return
        try:
            await self._auth.close(self._send)
        except OwnBackupError as exc:
            log.warning("ownbackup_logout_failed", error=str(exc))
        finally:
            session, self._session = self._session, None
            await session.close()

    @property
    def logins(self) -> int:
        """How many times this client has logged in or fetched a token."""
        return self._auth.logins

    async def authenticate(self) -> None:
        """Log in now (if not logged in): ``gdpr-daemon check`` proves the credentials."""
        try:
            await self._auth.authorize(self._send)
        except OwnBackupError as exc:
            self._record(exc)
            raise
        self.health.record_success()

    # -- plumbing -------------------------------------------------------------------
    def _url(self, name: str, **params: object) -> str:
        return self.config.base_url + self._endpoints.path(name, **params)

    async def _send(
        self,
        name: str,
        method: str,
        url: str,
        *,
        form: Mapping[str, FormValue] | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        short: bool = False,
    ) -> Answer:
        if self._session is None:
            raise RuntimeError("Use the OwnBackupClient inside 'async with', or call open() first.")
        timeout = None
        if short:
            cfg = self.config
            timeout = aiohttp.ClientTimeout(
                total=min(LOGOUT_TIMEOUT, cfg.timeout),
                connect=min(LOGOUT_TIMEOUT, cfg.connect_timeout),
            )
        for key, value in (headers or {}).items():
            if key.lower() in SENSITIVE_HEADERS and value not in self._credentials:
                self._credentials.append(value)
        return await exchange(
            self._session,
            name,
            method,
            url,
            headers=headers,
            form=form,
            params=params,
            limits=timeout,
            secrets=(self._secret, *self._credentials),
            max_bytes=self.config.max_response_bytes,
        )

    async def _authorized(
        self,
        name: str,
        method: str,
        url: str,
        *,
        form: Mapping[str, FormValue] | None,
        params: Mapping[str, str] | None,
        with_auth: bool,
    ) -> Answer:
        """One call with its credential; on 401 one re-login and one repeat."""
        if not with_auth:
            answer = await self._send(name, method, url, form=form, params=params)
        else:
            headers, generation = await self._auth.authorize(self._send)
            answer = await self._send(name, method, url, form=form, params=params, headers=headers)
            if answer.status == 401:
                await self._auth.renew(self._send, generation)
                headers, generation = await self._auth.authorize(self._send)
                answer = await self._send(
                    name, method, url, form=form, params=params, headers=headers
                )
                if answer.status == 401:
                    message = clean_message(api_message(answer))
                    raise AuthenticationError(
                        f"OwnBackup answered 401 Unauthorized to {name} again right after a "
                        f"fresh login" + (f": {message}" if message else ""),
                        status=401,
                        message=message,
                        endpoint=name,
                    )
        if not answer.ok:
            raise error_from_answer(answer, name)
        return answer

    def _record(self, exc: OwnBackupError) -> None:
        if isinstance(exc, AuthenticationError):
            metrics.API_AUTH_FAILURES.inc()
        if isinstance(exc, TransientError | AuthenticationError):
            self.health.record_failure(exc)
        else:
            self.health.record_success()

    async def _call(
        self,
        name: str,
        method: str,
        url: str,
        parse: Callable[[Answer], T],
        *,
        form: Mapping[str, FormValue] | None = None,
        params: Mapping[str, str] | None = None,
        with_auth: bool = True,
    ) -> T:
        """A call with its answer parsed; GETs retried per the policy, POSTs never."""
        policy = self.config.retry
        attempt = 0
        while True:
            attempt += 1
            try:
                answer = await self._authorized(
                    name, method, url, form=form, params=params, with_auth=with_auth
                )
                result = parse(answer)
            except OwnBackupError as exc:
                self._record(exc)
                if method != "GET" or not policy.should_retry(exc, attempt):
                    raise
                delay = policy.delay(attempt, exc, self._rng)
                metrics.API_RETRIES.labels(endpoint=name).inc()
                log.debug(
                    "ownbackup_retry",
                    endpoint=name,
                    attempt=attempt,
                    delay=round(delay, 3),
                    error=str(exc),
                )
                await self._sleep(delay)
            else:
                self.health.record_success()
                return result

    async def _get_json(
        self,
        name: str,
        url: str,
        parse: Callable[[Any], T],
        *,
        params: Mapping[str, str] | None = None,
    ) -> T:
        return await self._call(
            name, "GET", url, lambda a: parse(json_body(a, name)), params=params
        )

    async def _post_json(
        self, name: str, url: str, form: Mapping[str, FormValue], parse: Callable[[Any], T]
    ) -> T:
        return await self._call(
            name, "POST", url, lambda a: parse(json_body(a, name, empty={})), form=form
        )
