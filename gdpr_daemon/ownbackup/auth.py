"""Authentication: session login or OAuth bearer tokens, and one re-login per expiry.

:class:`SessionAuth` and :class:`OAuthAuth` are the configuration (frozen, secrets kept
out of ``repr``).  The client turns one into an authenticator that holds the current
credential and a *generation* counter, bumped at every successful login.

Why a generation: when N concurrent calls all get 401 for the same expired session,
each reports the generation its request carried.  Under one :class:`asyncio.Lock` the
first logs in again (generation g -> g+1); the others find the generation already moved
past the one that failed and simply repeat their call with the new credential.  N
failures, one re-login.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from gdpr_daemon import metrics
from gdpr_daemon.logs import get_logger

from .errors import (
    AuthenticationError,
    BadAnswer,
    OwnBackupError,
    TransientError,
    clean_message,
    status_phrase,
)
from .transport import Answer, FormValue, api_message, error_from_answer, json_body

__all__ = [
    "VENDOR_CLIENT_ID",
    "VENDOR_TOKEN_URL",
    "Authenticator",
    "OAuthAuth",
    "SessionAuth",
    "make_authenticator",
]

log = get_logger("gdpr_daemon.ownbackup")

#: The vendor's OAuth token URL and public client id: the same for every region (the token
#: server is another host than the API's).
VENDOR_TOKEN_URL = "https://auth.owndata.com/oauth2/aus4c3z3l8FqrbqDU4h7/v1/token"  # noqa: S105 - a public URL
VENDOR_CLIENT_ID = "0oa4c413eq8wwcEzP4h7"


@dataclass(frozen=True)
class SessionAuth:
    """Published API 1.0: log in with email and password, send ``X-SESSION-ID``."""

    email: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.email, str) or not self.email.strip():
            raise ValueError("SessionAuth needs the email of the OwnBackup API user.")
        if not isinstance(self.password, str) or not self.password:
            raise ValueError(f"SessionAuth needs the password of {self.email}.")


@dataclass(frozen=True)
class OAuthAuth:
    """API tokens: exchange the token as an OAuth refresh token for bearer access tokens.

    ``OAuthAuth.vendor(api_token)`` uses the vendor's token URL and public client id.
    """

    token_url: str
    client_id: str
    api_token: str = field(repr=False)
    scope: str = "api:access"

    @classmethod
    def vendor(cls, api_token: str) -> OAuthAuth:
        """The vendor's token URL and public client id, with this API token."""
        return cls(VENDOR_TOKEN_URL, VENDOR_CLIENT_ID, api_token)

    def __post_init__(self) -> None:
        if not isinstance(self.token_url, str) or not self.token_url.strip():
            raise ValueError("OAuthAuth needs the token URL of the OwnBackup account.")
        if not isinstance(self.client_id, str) or not self.client_id.strip():
            raise ValueError("OAuthAuth needs the OAuth client_id.")
        if not isinstance(self.api_token, str) or not self.api_token:
            raise ValueError("OAuthAuth needs the OwnBackup API token.")


class Send(Protocol):
    """The client's single exchange, without authentication: name, method, URL, form."""

    def __call__(
        self,
        name: str,
        method: str,
        url: str,
        *,
        form: Mapping[str, FormValue] | None = None,
        headers: Mapping[str, str] | None = None,
        short: bool = False,
    ) -> Awaitable[Answer]: ...


class Authenticator:
    """Holds the credential; logs in lazily, once per expiry, under one lock.

    Callers that waited on the lock while a login failed get that login's error
    instead of trying again: a wrong password met by fifty concurrent calls is one
    refused login at the API, not fifty (which could lock the account).
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self.generation = 0
        self.logins = 0
        self._finished = 0  # login attempts that have ended, either way
        self._last_failure: OwnBackupError | None = None

    # -- to be provided by the two kinds ------------------------------------------
    def _valid(self) -> bool:
        raise NotImplementedError

    def _headers(self) -> dict[str, str]:
        raise NotImplementedError

    def _forget(self) -> None:
        raise NotImplementedError

    def _still_usable(self) -> bool:
        """Whether the current credential may be sent although renewal is due."""
        return False

    async def _login(self, send: Send) -> None:
        raise NotImplementedError

    async def close(self, send: Send) -> None:
        """End the credential at the API where that is possible."""
        self._forget()

    # -- shared ---------------------------------------------------------------------
    async def authorize(self, send: Send) -> tuple[dict[str, str], int]:
        """Headers for a call and the generation they belong to; logs in when needed."""
        if not self._valid():
            seen = self._finished
            async with self._lock:
                if not self._valid():
                    reason = "renewal due" if self.generation else "first call"
                    try:
                        self._raise_if_failed_since(seen)
                        await self._do_login(send, reason=reason)
                    except TransientError as exc:
                        # A renewal that failed for a passing reason is no reason to
                        # fail the call while the current credential still works.
                        if not self._still_usable():
                            raise
                        log.warning("ownbackup_renewal_failed", error=str(exc))
        return self._headers(), self.generation

    async def renew(self, send: Send, failed_generation: int) -> None:
        """The API answered 401 to a call made with ``failed_generation``: log in again,
        unless another call already did since."""
        seen = self._finished
        async with self._lock:
            if self.generation != failed_generation and self._valid():
                return
            self._raise_if_failed_since(seen)
            self._forget()
            metrics.API_RELOGINS.inc()
            await self._do_login(send, reason="the API answered 401")

    def _raise_if_failed_since(self, seen: int) -> None:
        """Re-raise the failure of a login that ended while this caller waited."""
        if self._finished != seen and self._last_failure is not None:
            raise self._last_failure

    async def _do_login(self, send: Send, *, reason: str) -> None:
        try:
            await self._login(send)
        except OwnBackupError as exc:
            self._last_failure = exc
            raise
        finally:
            self._finished += 1
        self._last_failure = None
        self.logins += 1
        self.generation += 1
        if reason == "the API answered 401":
            log.info("ownbackup_reauthenticated", reason=reason, generation=self.generation)
        else:
            log.debug("ownbackup_authenticated", reason=reason, generation=self.generation)


class SessionAuthenticator(Authenticator):
    def __init__(self, auth: SessionAuth, login_url: str, logout_url: str) -> None:
        super().__init__()
        self._auth = auth
        self._login_url = login_url
        self._logout_url = logout_url
        self._session_id: str | None = None

    def _valid(self) -> bool:
        return self._session_id is not None

    def _headers(self) -> dict[str, str]:
        assert self._session_id is not None
        return {"X-SESSION-ID": self._session_id}

    def _forget(self) -> None:
        self._session_id = None

    async def _login(self, send: Send) -> None:
        answer = await send(
            "login",
            "POST",
            self._login_url,
            form={"email": self._auth.email, "password": self._auth.password},
        )
        if answer.status in (400, 401, 403):
            message = clean_message(api_message(answer)) or status_phrase(answer.status)
            raise AuthenticationError(
                f"OwnBackup refused the login for {self._auth.email}: {message}",
                status=answer.status,
                message=clean_message(api_message(answer)),
                endpoint="login",
            )
        if not answer.ok:
            raise error_from_answer(answer, "login")
        obj = json_body(answer, "login")
        session_id = obj.get("session_id") if isinstance(obj, dict) else None
        if not isinstance(session_id, str) or not session_id:
            raise BadAnswer(
                "OwnBackup answered login without a session_id",
                status=answer.status,
                endpoint="login",
            )
        self._session_id = session_id

    async def close(self, send: Send) -> None:
        if self._session_id is None:
            return
        headers = self._headers()
        self._forget()
        answer = await send("logout", "POST", self._logout_url, headers=headers, short=True)
        if not answer.ok and answer.status != 401:
            log.warning("ownbackup_logout_refused", status=answer.status)


class OAuthAuthenticator(Authenticator):
    """Bearer tokens, renewed when less than a tenth of their lifetime (at least a
    minute, at most half) is left, and after a 401.  If a renewal fails transiently the
    current token is used until it really expires."""

    def __init__(self, auth: OAuthAuth, clock: Callable[[], float]) -> None:
        super().__init__()
        self._auth = auth
        self._clock = clock
        self._token: str | None = None
        self._renew_at: float | None = None
        self._expires_at: float | None = None

    @staticmethod
    def renewal_margin(lifetime: float) -> float:
        """Seconds before expiry at which a token is renewed."""
        return min(max(0.1 * lifetime, 60.0), 0.5 * lifetime)

    def _valid(self) -> bool:
        if self._token is None:
            return False
        return self._renew_at is None or self._clock() < self._renew_at

    def _headers(self) -> dict[str, str]:
        assert self._token is not None
        return {"Authorization": f"Bearer {self._token}"}

    def _forget(self) -> None:
        self._token = None
        self._renew_at = None
        self._expires_at = None

    def _still_usable(self) -> bool:
        if self._token is None:
            return False
        return self._expires_at is None or self._clock() < self._expires_at

    async def _login(self, send: Send) -> None:
        started = self._clock()
        answer = await send(
            "oauth_token",
            "POST",
            self._auth.token_url,
            form={
                "grant_type": "refresh_token",
                "refresh_token": self._auth.api_token,
                "scope": self._auth.scope,
                "client_id": self._auth.client_id,
            },
        )
        if answer.status in (400, 401, 403):
            message = clean_message(api_message(answer)) or status_phrase(answer.status)
            raise AuthenticationError(
                f"OwnBackup refused the API token of client {self._auth.client_id}: {message}",
                status=answer.status,
                message=clean_message(api_message(answer)),
                endpoint="oauth_token",
            )
        if not answer.ok:
            raise error_from_answer(answer, "oauth_token")
        obj = json_body(answer, "oauth_token")
        token = obj.get("access_token") if isinstance(obj, dict) else None
        if not isinstance(token, str) or not token:
            raise BadAnswer(
                "OwnBackup answered oauth_token without an access_token",
                status=answer.status,
                endpoint="oauth_token",
            )
        expires_in = obj.get("expires_in")
        if isinstance(expires_in, str) and expires_in.strip().isdigit():
            expires_in = int(expires_in)
        if (
            isinstance(expires_in, int | float)
            and not isinstance(expires_in, bool)
            and expires_in > 0
        ):
            self._expires_at = started + expires_in
            self._renew_at = self._expires_at - self.renewal_margin(float(expires_in))
        else:
            # No lifetime given: use the token until the API answers 401.
            self._renew_at = self._expires_at = None
        self._token = token


def make_authenticator(
    auth: SessionAuth | OAuthAuth,
    *,
    login_url: str,
    logout_url: str,
    clock: Callable[[], float] = time.monotonic,
) -> Authenticator:
    if isinstance(auth, SessionAuth):
        return SessionAuthenticator(auth, login_url, logout_url)
    if isinstance(auth, OAuthAuth):
        return OAuthAuthenticator(auth, clock)
    raise TypeError(f"auth must be SessionAuth or OAuthAuth, not {type(auth).__name__}")
