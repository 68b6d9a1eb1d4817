"""Reading answers and writing forms: pure functions of bytes and headers."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qsl

import pytest

from gdpr_daemon.ownbackup import BadAnswer, NotFound, RateLimited, ServerError
from gdpr_daemon.ownbackup.transport import (
    Answer,
    api_message,
    encode_form,
    error_from_answer,
    json_body,
)

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def test_encode_form() -> None:
    """Forms drop None, write booleans as true/false and repeat keys for lists."""
    body = encode_form(
        {
            "a": "x y&z",
            "n": 7,
            "t": True,
            "f": False,
            "none": None,
            "objects": ["Account", "Contact"],
        }
    )
    assert parse_qsl(body.decode(), keep_blank_values=True) == [
        ("a", "x y&z"), ("n", "7"), ("t", "true"), ("f", "false"),
        ("objects", "Account"), ("objects", "Contact"),
    ]  # fmt: skip


def test_encode_form_keeps_empty_strings() -> None:
    """An empty string is sent (an empty rectify value is a value)."""
    assert encode_form({"value": ""}) == b"value="


def test_json_body() -> None:
    """A JSON body parses; an empty body is a BadAnswer unless an empty value is given."""
    assert json_body(Answer(200, body=b'{"id": 1}'), "x") == {"id": 1}
    assert json_body(Answer(200, body=b""), "x", empty={}) == {}
    with pytest.raises(BadAnswer, match="OwnBackup answered x with an empty body"):
        json_body(Answer(200, body=b"  "), "x")


@pytest.mark.parametrize(
    ("answer", "what"),
    [
        (Answer(200, body=b'{"id": 1'), "truncated or invalid JSON"),
        (Answer(200, body=b"\xff\xfe"), "truncated or invalid JSON"),
        (
            Answer(200, headers={"Content-Type": "text/html; charset=utf-8"}, body=b"Maintenance"),
            "an HTML page",
        ),
        (Answer(200, body=b"  <!DOCTYPE html><html></html>"), "an HTML page"),
    ],
)
def test_json_body_not_json(answer: Answer, what: str) -> None:
    """A body that is not JSON is a BadAnswer saying what it looked like, chained."""
    with pytest.raises(BadAnswer) as info:
        json_body(answer, "gdpr_forget")
    assert (
        str(info.value) == f"OwnBackup answered gdpr_forget with a body that is not JSON ({what})"
    )
    assert info.value.__cause__ is not None


def test_api_message_shapes() -> None:
    """The message comes from the vendor's shape, else OAuth's, else the error field."""
    assert api_message(Answer(404, body=b'{"error": "Not Found", "message": "gone"}')) == "gone"
    assert (
        api_message(Answer(400, body=b'{"error": "invalid_grant", "error_description": "d"}'))
        == "d"
    )
    assert api_message(Answer(400, body=b'{"error": "invalid_grant"}')) == "invalid_grant"
    assert api_message(Answer(502, body=b"<html>bad gateway</html>")) is None
    assert api_message(Answer(500, body=b"[1]")) is None


def test_error_from_answer() -> None:
    """A non-2xx answer becomes the error for its status, with the API's message."""
    e = error_from_answer(
        Answer(404, reason="Not Found", body=b'{"message": "service_id 9 not found"}'),
        "get_service",
    )
    assert isinstance(e, NotFound) and e.message == "service_id 9 not found"
    assert isinstance(error_from_answer(Answer(502, body=b"<html/>"), "events"), ServerError)


def test_error_from_answer_retry_after() -> None:
    """429 reads Retry-After (case-insensitively), seconds or HTTP-date."""
    e = error_from_answer(Answer(429, headers={"retry-after": "4"}), "events", now=NOW)
    assert isinstance(e, RateLimited) and e.retry_after == 4
    e = error_from_answer(
        Answer(429, headers={"Retry-After": "Wed, 01 May 2024 12:00:10 GMT"}), "events", now=NOW
    )
    assert e.retry_after == 10  # type: ignore[attr-defined]
    e = error_from_answer(Answer(429), "events", now=NOW)
    assert e.retry_after is None  # type: ignore[attr-defined]
