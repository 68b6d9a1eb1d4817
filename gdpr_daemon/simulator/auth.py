"""Sessions and OAuth bearer tokens of the simulated account.

A session comes from ``POST /api/auth/v1/login`` and is sent as ``X-SESSION-ID``; an
access token comes from ``POST /oauth2/aus4c3z3l8FqrbqDU4h7/v1/token`` (the vendor's token
path; an API token exchanged as OAuth refresh token) and is sent as ``Authorization: Bearer``.
Both are random, kept only as dictionary keys, and never logged or shown by ``repr``.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gdpr_daemon.simulator.config import ApiError, SimulatorConfig
from gdpr_daemon.simulator.faults import FaultConfig, session_expired


@dataclass(slots=True)
class Credential:
    """A live session (``kind == "session"``) or bearer access token (``"bearer"``)."""

    kind: str
    expires_at: float | None
    calls: int = 0
    client_id: str | None = None

    def __repr__(self) -> str:  # never show the secret it is keyed by
        return f"Credential(kind={self.kind!r}, calls={self.calls})"


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison (of bytes: non-ASCII text is fine too)."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class Credentials:
    """The live sessions and access tokens; ``clock`` gives epoch seconds."""

    def __init__(self, config: SimulatorConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.now = clock
        self.sessions: dict[str, Credential] = {}
        self.tokens: dict[str, Credential] = {}
        # Every session id and token ever issued, so a test suite can scan its logs for them.
        self.issued: list[str] = []

    def login(self, email: str | None, password: str | None) -> str:
        """Open a session; the new session id.  Wrong credentials: 401."""
        if not email or password is None:
            raise ApiError(400, "email and password are required")
        ok_email = _same(email.strip().lower(), self.config.email.lower())
        ok_password = _same(password, self.config.password)
        if not (ok_email and ok_password):
            raise ApiError(401, "invalid email or password")
        session_id = secrets.token_urlsafe(24)
        ttl = self.config.session_ttl_seconds
        self.sessions[session_id] = Credential("session", self.now() + ttl if ttl else None)
        self.issued.append(session_id)
        return session_id

    def issue_token(
        self,
        grant_type: str | None,
        refresh_token: str | None,
        scope: str | None,
        client_id: str | None,
    ) -> dict[str, Any]:
        """Exchange an API token (as OAuth refresh token) for a bearer access token."""
        if grant_type != "refresh_token":
            raise ApiError(400, "grant_type must be refresh_token")
        if scope != "api:access":
            raise ApiError(400, "scope must be api:access")
        if not client_id:
            raise ApiError(400, "client_id is required")
        if not refresh_token or not any(_same(refresh_token, t) for t in self.config.api_tokens):
            raise ApiError(401, "invalid or revoked API token")
        ttl = self.config.token_ttl_seconds
        access_token = secrets.token_urlsafe(32)
        self.tokens[access_token] = Credential("bearer", self.now() + ttl, client_id=client_id)
        self.issued.append(access_token)
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": int(ttl),
            "scope": "api:access",
        }

    def authenticate(
        self, session_id: str | None, bearer: str | None, faults: FaultConfig
    ) -> Credential:
        """The live credential of a call, counted; 401 when missing, unknown or expired."""
        if session_id:
            store, secret, what = self.sessions, session_id, "session"
        elif bearer:
            store, secret, what = self.tokens, bearer, "access token"
        else:
            raise ApiError(401, "missing X-SESSION-ID header or Authorization bearer token")
        credential = store.get(secret)
        if credential is None:
            raise ApiError(401, f"invalid or expired {what}")
        expired = credential.expires_at is not None and self.now() >= credential.expires_at
        if expired or session_expired(faults, credential.calls):
            del store[secret]
            raise ApiError(401, f"{what} expired")
        credential.calls += 1
        return credential

    def logout(self, session_id: str | None, bearer: str | None) -> None:
        if session_id:
            self.sessions.pop(session_id, None)
        elif bearer:
            self.tokens.pop(bearer, None)
