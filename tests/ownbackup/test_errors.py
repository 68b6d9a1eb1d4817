"""The error tree: classes for statuses, one-sentence messages, no secrets."""

from __future__ import annotations

import pytest

from gdpr_daemon.ownbackup import (
    AuthenticationError,
    BadAnswer,
    ClientError,
    ConnectionFailed,
    NotFound,
    OwnBackupError,
    PermanentError,
    RateLimited,
    RequestTimeout,
    ServerError,
    TransientError,
)
from gdpr_daemon.ownbackup.errors import clean_message, error_for_status


@pytest.mark.parametrize(
    ("cls", "parent"),
    [
        (TransientError, OwnBackupError),
        (PermanentError, OwnBackupError),
        (ConnectionFailed, TransientError),
        (RequestTimeout, TransientError),
        (RateLimited, TransientError),
        (ServerError, TransientError),
        (BadAnswer, TransientError),
        (ClientError, PermanentError),
        (NotFound, ClientError),
        (AuthenticationError, PermanentError),
    ],
)
def test_tree(cls: type, parent: type) -> None:
    """Each class sits where the errors.py docstring says."""
    assert issubclass(cls, parent)


def test_authentication_error_is_not_a_client_error() -> None:
    """Wrong daemon credentials are not mistaken for a bad request by `except ClientError`."""
    assert not issubclass(AuthenticationError, ClientError)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, ClientError),
        (403, ClientError),
        (404, NotFound),
        (405, ClientError),
        (408, RequestTimeout),
        (409, ClientError),
        (422, ClientError),
        (429, RateLimited),
        (401, AuthenticationError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
        (599, ServerError),
        (301, ClientError),
        (302, ClientError),
        (101, BadAnswer),
    ],
)
def test_error_for_status_picks_the_most_specific_class(status: int, cls: type) -> None:
    """Each status maps to exactly the class the transient/permanent rules ask."""
    error = error_for_status(status, endpoint="gdpr_forget")
    assert type(error) is cls
    assert error.status == status
    assert error.endpoint == "gdpr_forget"


def test_not_found_sentence_carries_the_api_message() -> None:
    """404 reads as one sentence naming status, call and the API's message."""
    error = error_for_status(404, endpoint="gdpr_forget", message="service_id 12415 not found")
    assert (
        str(error) == "OwnBackup answered 404 Not Found to gdpr_forget: service_id 12415 not found"
    )
    assert error.message == "service_id 12415 not found"


def test_sentence_without_message() -> None:
    """Without an API message the sentence ends after the call name."""
    assert str(error_for_status(503, endpoint="list_services")) == (
        "OwnBackup answered 503 Service Unavailable to list_services"
    )


def test_unknown_status_uses_server_reason() -> None:
    """A status Python does not know uses the server's reason phrase."""
    error = error_for_status(599, endpoint="events", reason="Network Connect Timeout")
    assert str(error) == "OwnBackup answered 599 Network Connect Timeout to events"


def test_rate_limited_sentence_and_retry_after() -> None:
    """429 carries retry_after and says how long the API asked to wait."""
    error = error_for_status(429, endpoint="events", message="slow down", retry_after=3)
    assert isinstance(error, RateLimited)
    assert error.retry_after == 3
    assert str(error) == (
        "OwnBackup answered 429 Too Many Requests to events: slow down (it asked to wait 3 s)"
    )


def test_redirect_sentence_says_why() -> None:
    """A 3xx is refused with a hint at the base URL instead of being followed."""
    assert "check the base URL" in str(error_for_status(301, endpoint="list_services"))


def test_message_is_one_bounded_line() -> None:
    """The API's message is folded onto one line and cut to a bounded length."""
    assert clean_message("a\n  b\tc") == "a b c"
    assert clean_message("   ") is None
    assert clean_message(None) is None
    long = clean_message("x" * 1000)
    assert long is not None and len(long) == 300 and long.endswith("...")


def test_repr_names_class_status_and_endpoint() -> None:
    """repr() is useful in logs of tests and debuggers."""
    r = repr(NotFound("OwnBackup answered 404", status=404, endpoint="get_service"))
    assert r.startswith("NotFound(") and "404" in r and "get_service" in r


def test_attributes_default_to_none() -> None:
    """Errors built from a sentence alone have no status, message or endpoint."""
    e = ConnectionFailed("no route")
    assert (e.status, e.message, e.endpoint, str(e)) == (None, None, None, "no route")
