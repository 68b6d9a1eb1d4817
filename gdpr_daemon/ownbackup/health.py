"""What the client knows of the API's health, for the daemon's ``/readyz``."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["ApiHealth"]


class ApiHealth:
    """How the API has been doing, for ``/readyz``.

    Failures are transient errors (unreachable, timeouts, 429, 5xx, unreadable
    answers) and refused credentials; a 4xx about one request (such as 404 for an
    unknown service) shows the API working and counts as a success.  ``ok`` is True
    until a failure and then until the next success.
    """

    __slots__ = ("_last_ok", "last_error", "last_failure", "last_failure_at", "last_status", "last_success_at")

    def __init__(self) -> None:
        self.last_success_at: datetime | None = None
        self.last_failure_at: datetime | None = None
        self.last_error: str | None = None
        self.last_failure: str | None = None  # the error's class name, e.g. "ServerError"
        self.last_status: int | None = None  # its HTTP status, if it had one
        self._last_ok = True

    @property
    def ok(self) -> bool:
        return self._last_ok

    def record_success(self) -> None:
        self.last_success_at = datetime.now(UTC)
        self._last_ok = True

    def record_failure(self, error: BaseException) -> None:
        self.last_failure_at = datetime.now(UTC)
        self.last_error = str(error)
        self.last_failure = type(error).__name__
        status = getattr(error, "status", None)
        self.last_status = status if isinstance(status, int) else None
        self._last_ok = False

    def __repr__(self) -> str:
        return (
            f"ApiHealth(ok={self.ok}, last_success_at={self.last_success_at}, "
            f"last_failure_at={self.last_failure_at}, last_error={self.last_error!r})"
        )
