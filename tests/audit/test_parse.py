"""Raw events -> typed rows or quarantine reasons (pure functions, no I/O)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from gdpr_daemon.audit.parse import Event, Malformed, parse_created_at, parse_event, parse_page
from gdpr_daemon.simulator.events import format_iso, format_rfc1123

MOMENT = datetime(2018, 12, 12, 7, 57, 51, tzinfo=UTC)


def ev(event_id: object = 1, created_at: object = "Wed, 12 Dec 2018 07:57:51 GMT", **extra: object) -> dict:
    return {"event_id": event_id, "created_at": created_at, "key": "user.login", **extra}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Wed, 12 Dec 2018 07:57:51 GMT", MOMENT),  # the published example
        ("12 Dec 2018 07:57:51 GMT", MOMENT),  # RFC 1123 without the weekday
        ("Wed, 12 Dec 2018 08:57:51 +0100", MOMENT),
        ("2018-12-12T07:57:51.000Z", MOMENT),
        ("2018-12-12T07:57:51Z", MOMENT),
        ("2018-12-12T09:57:51+02:00", MOMENT),
        ("2018-12-12T07:57:51", MOMENT),  # no offset: the API's times are UTC
        ("2018-12-12T07:57:51.123456Z", MOMENT.replace(microsecond=123456)),
        ("2018-12-12", datetime(2018, 12, 12, tzinfo=UTC)),
    ],
)
def test_both_date_formats_become_utc(text, expected):
    """RFC 1123 and ISO 8601 (with or without offset) all parse to the same aware UTC instant."""
    parsed = parse_created_at(text)
    assert parsed == expected and parsed.utcoffset().total_seconds() == 0


def test_simulator_formats_round_trip():
    """The simulator's two renderings of one instant parse back to it (to the second, resp. millisecond)."""
    epoch = 1_700_000_123.456
    assert parse_created_at(format_iso(epoch)).timestamp() == pytest.approx(epoch, abs=0.001)
    assert parse_created_at(format_rfc1123(epoch)).timestamp() == int(epoch)


@pytest.mark.parametrize(
    "bad",
    ["sometime last Tuesday, 25:61", "", "Wed, 31 Feb 2018 07:57:51 GMT", "Wed, 12 Dec 2018 25:00:00 GMT",
     "2018-13-01T00:00:00Z", "Wed, 12 Foo 2018 07:57:51 GMT", None, 1544601471, ["2018-12-12"]],
)  # fmt: skip
def test_unparseable_dates_are_refused_with_a_reason(bad):
    """Anything that is not a real RFC 1123 or ISO 8601 date is a ValueError naming created_at."""
    with pytest.raises(ValueError, match="created_at"):
        parse_created_at(bad)


def test_well_formed_event():
    """A well-formed event keeps its id, UTC time, service and its raw JSON."""
    parsed = parse_event(ev(42, service_id=1001, parameters={"a": 1}))
    assert isinstance(parsed, Event)
    assert (parsed.event_id, parsed.created_at, parsed.service_id) == (42, MOMENT, 1001)
    assert json.loads(parsed.raw_json)["parameters"] == {"a": 1}


@pytest.mark.parametrize(
    ("item", "reason", "event_id"),
    [
        ({"created_at": "2018-12-12", "key": "x"}, "no event_id", None),
        (ev(created_at="sometime last Tuesday, 25:61"), "neither an RFC 1123 nor an ISO 8601", 1),
        (ev(created_at=None), "created_at is missing", 1),
        ("event 7 could not be rendered", "JSON string, not an object", None),
        (None, "JSON null", None),
        ([1, 2], "JSON array", None),
        (17, "JSON number", None),
        (ev(event_id="abc"), "not a positive 64-bit integer", None),
        (ev(event_id=-3), "not a positive 64-bit integer", None),
        (ev(event_id=True), "not a positive 64-bit integer", None),
        (ev(event_id=2**63), "not a positive 64-bit integer", None),
        (ev(service_id="S1"), "service_id", 1),
        (ev(parameters={"note": "a\x00b"}), "NUL character", 1),
        (ev(parameters={"note": "a\ud800b"}), "lone surrogate", 1),
        (ev(parameters={"x": float("nan")}), "NaN", 1),
    ],
)
def test_malformed_cases(item, reason, event_id):
    """Each kind of malformed item gets a reason, keeps the event_id when known, and storable raw JSON."""
    parsed = parse_event(item)
    assert isinstance(parsed, Malformed)
    assert reason in parsed.reason
    assert parsed.event_id == event_id
    raw = json.loads(parsed.raw_json)
    assert "\x00" not in parsed.raw_json and "\\u0000" not in parsed.raw_json
    parsed.raw_json.encode("utf-8")  # valid UTF-8, so Postgres takes it as jsonb
    assert raw is None or raw == item or isinstance(raw, dict)


def test_digit_string_ids_are_accepted():
    """An event_id or service_id sent as a string of digits is read as the number."""
    parsed = parse_event(ev("12", service_id="1001"))
    assert isinstance(parsed, Event) and (parsed.event_id, parsed.service_id) == (12, 1001)


def test_page_cursor_and_quarantine_positions():
    """The cursor is the highest event_id seen (bad dates included); a malformed item is placed after the last id before it."""
    items = [ev(11), "junk", ev(12, created_at="never"), {"key": "no id"}, ev(13), "junk", "junk"]
    page = parse_page(items, 10)
    assert page.event_ids == [11, 13] and page.cursor == 13 and page.size == 7
    placed = [(q.after_event_id, q.occurrence, q.event_id) for q in page.quarantine]
    assert placed == [(11, 0, None), (11, 0, 12), (12, 0, None), (13, 0, None), (13, 1, None)]
    assert [e["event_id"] for e in json.loads(page.events_json)] == [11, 13]


def test_trailing_item_served_again_gets_the_same_key():
    """An item without event_id at the end of a page, served again first in the next, has the same dedupe key."""
    first = parse_page([ev(1), ev(2), {"key": "lost"}], None)
    again = parse_page([{"key": "lost"}, ev(3)], first.cursor)
    (a,), (b,) = first.quarantine, again.quarantine
    assert (a.after_event_id, a.raw_sha256, a.occurrence) == (b.after_event_id, b.raw_sha256, b.occurrence)


def test_page_with_unstorable_item_keeps_the_others():
    """One event Postgres could not store is quarantined; the rest of the page goes in as usual."""
    page = parse_page([ev(1), ev(2, parameters={"x": "\x00"}), ev(3, parameters={"n": float("inf")}), ev(4)], 0)
    assert page.event_ids == [1, 4] and page.cursor == 4
    assert [q.event_id for q in page.quarantine] == [2, 3]
    assert "\\u0000" not in page.events_json


def test_gdpr_events_name_their_request():
    """A gdpr.* event with a request id in its parameters is a correlation candidate; others are not."""
    items = [
        ev(1, key="gdpr.forget", service_id=1001, parameters={"request_id": 7}),
        ev(2, key="gdpr.rectify", parameters={"job_id": "8", "field": "Email"}),
        ev(3, key="gdpr.export", parameters={"id": 9}),
        ev(4, key="gdpr.forget", parameters={"record_id": "003"}),
        ev(5, key="backup.completed", parameters={"request_id": 10}),
    ]
    gdpr = parse_page(items, 0).gdpr
    assert [(g.event_id, g.request_type, g.service_id, g.request_ref) for g in gdpr] == [
        (1, "forget", 1001, 7), (2, "rectify", None, 8), (3, None, None, 9),
    ]  # fmt: skip
