"""The client's configuration: one frozen value object, checked when it is made."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gdpr_daemon import __version__

from .auth import OAuthAuth, SessionAuth
from .endpoints import Endpoints, check_base_url, region_url
from .retry import RetryPolicy

__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "DEFAULT_USER_AGENT", "ClientConfig"]

DEFAULT_USER_AGENT = f"gdpr-daemon/{__version__}"
#: The most of one JSON answer read into memory: far above any answer the API gives
#: (a page of events, the service list), far below the container's memory limit.
DEFAULT_MAX_RESPONSE_BYTES = 16 * 2**20


@dataclass(frozen=True, kw_only=True)
class ClientConfig:
    """Everything the client needs; made once at start-up and passed down.

    ``timeout`` bounds a whole call (connect, send, answer), ``connect_timeout`` the
    connection alone (including the wait for a free connection of the pool).  The
    ``retry`` policy applies to GET calls only; POSTs are retried by the caller.
    """

    base_url: str
    auth: SessionAuth | OAuthAuth
    timeout: float = 30.0
    connect_timeout: float = 10.0
    endpoints: Endpoints = field(default_factory=Endpoints)
    max_connections: int = 100
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    user_agent: str = DEFAULT_USER_AGENT
    allow_insecure_http: bool = False
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "base_url",
            check_base_url(self.base_url, allow_insecure_http=self.allow_insecure_http),
        )
        if not isinstance(self.auth, SessionAuth | OAuthAuth):
            raise ValueError("ClientConfig.auth must be a SessionAuth or an OAuthAuth.")
        if isinstance(self.auth, OAuthAuth):
            check_base_url(
                self.auth.token_url, what="token URL", allow_insecure_http=self.allow_insecure_http
            )
        for name in ("timeout", "connect_timeout"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ValueError(
                    f"ClientConfig.{name} must be a positive number of seconds, not {value!r}."
                )
        if (
            isinstance(self.max_connections, bool)
            or not isinstance(self.max_connections, int)
            or self.max_connections < 1
        ):
            raise ValueError(
                "ClientConfig.max_connections must be a whole number of at least 1, "
                f"not {self.max_connections!r}."
            )
        if (
            isinstance(self.max_response_bytes, bool)
            or not isinstance(self.max_response_bytes, int)
            or self.max_response_bytes < 1024
        ):
            raise ValueError(
                "ClientConfig.max_response_bytes must be a whole number of at least 1024, "
                f"not {self.max_response_bytes!r}."
            )
        if not isinstance(self.endpoints, Endpoints):
            raise ValueError("ClientConfig.endpoints must be an Endpoints.")
        if not isinstance(self.retry, RetryPolicy):
            raise ValueError("ClientConfig.retry must be a RetryPolicy.")

    @classmethod
    def for_region(
        cls, region: str, *, auth: SessionAuth | OAuthAuth, **kwargs: object
    ) -> ClientConfig:
        """The configuration for ``https://{region}.owndata.com``."""
        return cls(base_url=region_url(region), auth=auth, **kwargs)  # type: ignore[arg-type]
