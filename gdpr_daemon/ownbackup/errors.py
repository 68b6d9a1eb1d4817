"""The errors of the OwnBackup client: one tree, transient or permanent at its top.

Every failure of a call leaves the client as one of these, the most specific that
fits, chained (``raise ... from exc``) to the aiohttp or JSON error behind it::

    OwnBackupError                 .status (int | None), .message (the API's), .endpoint
    |-- TransientError             trying again later may succeed
    |   |-- ConnectionFailed       no connection (refused, DNS, TLS, none within
    |   |                          connect_timeout), or dropped before a full answer
    |   |-- RequestTimeout         no answer within the timeout, or HTTP 408
    |   |-- RateLimited            HTTP 429; .retry_after in seconds, or None
    |   |-- ServerError            HTTP 5xx
    |   '-- BadAnswer              2xx, but truncated or invalid JSON, an HTML page,
    |                              or fields missing: the outcome is unknown
    '-- PermanentError             the same call will fail the same way
        |-- ClientError            HTTP 4xx other than those above; .message says why
        |   '-- NotFound           HTTP 404
        '-- AuthenticationError    login or token exchange refused, or a 401 again
                                   right after a fresh login: the daemon's
                                   credentials are wrong, not the request

A call that timed out, lost its connection mid-answer or got a ``BadAnswer`` may have
been carried out (that is why ``BadAnswer`` is transient, not permanent: nobody knows
whether the API acted); forget and rectify are idempotent, so sending them again is
safe, and the caller's history shows both attempts.

``AuthenticationError`` is deliberately not a ``ClientError``: it says the daemon's
configuration is wrong, so a caller should not hold it against the request it happened
to be sending.

``str(error)`` is one sentence a person can act on, such as "OwnBackup answered 404
Not Found to gdpr_forget: service_id 12415 not found".  No error ever carries a
request body, password, session id, token or rectify value: the API's words reach an
error only through :func:`.transport.api_message`, which redacts every secret and
personal value the client knows it sent (a hostile or careless API may echo them), and
:func:`clean_message`, which makes them one bounded line with control characters, NUL
and lone surrogates escaped (so they can be stored in Postgres and shown on a terminal).
"""

from __future__ import annotations

from http import HTTPStatus

from gdpr_daemon.safetext import escape_controls

__all__ = [
    "AuthenticationError",
    "BadAnswer",
    "ClientError",
    "ConnectionFailed",
    "NotFound",
    "OwnBackupError",
    "PermanentError",
    "RateLimited",
    "RequestTimeout",
    "ServerError",
    "TransientError",
    "error_for_status",
]

#: The API's message is shown to people and stored in ``last_error``; keep it bounded.
MAX_MESSAGE_CHARS = 300


class OwnBackupError(Exception):
    """Base of every error the OwnBackup client raises."""

    def __init__(
        self,
        sentence: str,
        *,
        status: int | None = None,
        message: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        super().__init__(sentence)
        self.status = status
        self.message = message
        self.endpoint = endpoint

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({str(self)!r}, status={self.status!r}, "
            f"endpoint={self.endpoint!r})"
        )


class TransientError(OwnBackupError):
    """Trying the same call again later may succeed."""


class PermanentError(OwnBackupError):
    """Trying the same call again will fail the same way."""


class ConnectionFailed(TransientError):
    """No connection could be made, or the connection broke before a full answer."""


class RequestTimeout(TransientError):
    """No answer within the configured timeout, or the API answered 408."""


class RateLimited(TransientError):
    """The API answered 429; ``retry_after`` is how many seconds it asked us to wait."""

    def __init__(
        self,
        sentence: str,
        *,
        status: int | None = 429,
        message: str | None = None,
        endpoint: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(sentence, status=status, message=message, endpoint=endpoint)
        self.retry_after = retry_after


class ServerError(TransientError):
    """The API answered with a 5xx status."""


class BadAnswer(TransientError):
    """The API answered 2xx with a body that cannot be read as the expected answer."""


class ClientError(PermanentError):
    """The API refused the call with a 4xx status; ``message`` carries its reason."""


class NotFound(ClientError):
    """The API answered 404: the service, backup, job or seed does not exist."""


class AuthenticationError(PermanentError):
    """The API refused our credentials: wrong email, password or API token."""


def clean_message(message: object) -> str | None:
    """The API's ``message`` as one bounded line, control characters escaped, or None."""
    if message is None:
        return None
    text = escape_controls(" ".join(str(message).split()))
    if not text:
        return None
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - 3] + "..."
    return text


def status_phrase(status: int, reason: str | None = None) -> str:
    """``404 Not Found``: the status with its standard phrase (or the server's)."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = reason or ""
    return f"{status} {phrase}".strip()


def format_seconds(seconds: float) -> str:
    """``30 s``, ``0.5 s``: a duration as people read it."""
    return f"{seconds:g} s"


def error_for_status(
    status: int,
    *,
    endpoint: str,
    message: str | None = None,
    reason: str | None = None,
    retry_after: float | None = None,
) -> OwnBackupError:
    """The error for a non-2xx HTTP answer (401 is handled by the caller first).

    A pure function: the same status, endpoint and message always give the same error.
    """
    message = clean_message(message)
    reason = clean_message(reason)  # the server's own phrase: one line, no control characters
    sentence = f"OwnBackup answered {status_phrase(status, reason)} to {endpoint}"
    if message:
        sentence += f": {message}"
    if status == 429:
        if retry_after is not None:
            sentence += f" (it asked to wait {format_seconds(retry_after)})"
        return RateLimited(
            sentence, status=status, message=message, endpoint=endpoint, retry_after=retry_after
        )
    kind: type[OwnBackupError]
    if status == 408:
        kind = RequestTimeout
    elif status >= 500:
        kind = ServerError
    elif status == 404:
        kind = NotFound
    elif status == 401:
        kind = AuthenticationError
    elif 400 <= status < 500:
        kind = ClientError
    elif 300 <= status < 400:
        # The client does not follow redirects of API calls: a POST would turn into a
        # GET, and the session header would go wherever the redirect points.
        sentence += " (redirects are not followed: check the base URL)"
        kind = ClientError
    else:
        kind = BadAnswer
    return kind(sentence, status=status, message=message, endpoint=endpoint)
