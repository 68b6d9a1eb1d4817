"""Raw account events -> typed rows or quarantine reasons.  Pure: no I/O, no clock.

An item of an events page is well formed when it is a JSON object with a positive 64-bit
``event_id``, a ``created_at`` in RFC 1123 (``Wed, 12 Dec 2018 07:57:51 GMT``, the
published example) or ISO 8601 (``2018-12-12T07:57:51.000Z``), both read as an aware UTC
datetime, and a ``service_id`` that is absent, null or a positive integer.  Anything else
is :class:`Malformed`, with a reason, to be quarantined as received.  So is an item
Postgres cannot store as jsonb (a NUL character, a lone surrogate, NaN): it is kept with
those characters replaced, so one bad item never blocks the pull.

:func:`parse_page` turns a whole page into what one bulk insert needs: typed columns,
the well-formed items as one JSON array (the text columns and ``raw`` are taken from it
in SQL, which is much faster than serialising each event in Python), the quarantine items
(with the key that makes quarantining the same item twice a no-op), the cursor the page
moves to, and the GDPR events that may confirm submitted requests.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gdpr_daemon.rules import MAX_SERVICE_ID

__all__ = [
    "PAGE_SIZE",
    "Event",
    "GdprEvent",
    "Malformed",
    "ParsedPage",
    "QuarantineItem",
    "parse_created_at",
    "parse_event",
    "parse_page",
]

#: The API answers at most this many events a page; a shorter page is the last one.
PAGE_SIZE = 1000
MAX_EVENT_ID = 2**63 - 1
GDPR_KEY_PREFIX = "gdpr."
#: Where a GDPR event names the request it is about (the id the API answered).
REQUEST_ID_PARAMETERS = ("request_id", "job_id", "id")

_MONTHS = {m: f"{i:02d}" for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}  # fmt: skip
# json.loads joins valid surrogate pairs, so any surrogate left in a str stands alone.
_SURROGATE = re.compile("[\ud800-\udfff]")
_JSON_KINDS = {str: "string", int: "number", float: "number", bool: "boolean", list: "array", type(None): "null"}
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_dumps = _ENCODER.encode
_RFC_DATES: dict[str, str] = {}  # "12 Dec 2018" -> "2018-12-12T", a few thousand at most


@dataclass(frozen=True, slots=True)
class Event:
    event_id: int
    created_at: datetime
    service_id: int | None
    key: str | None
    raw_json: str  # the item as received, serialised compactly
    request_ref: int | None = None  # a GDPR event's request id (see REQUEST_ID_PARAMETERS)


@dataclass(frozen=True, slots=True)
class Malformed:
    reason: str
    raw_json: str  # the item as received (characters Postgres refuses replaced)
    event_id: int | None = None  # known when only the date or the service was wrong


@dataclass(frozen=True, slots=True)
class QuarantineItem:
    reason: str
    raw_json: str
    raw_sha256: str
    event_id: int | None
    after_event_id: int  # the last event_id before it (0: the start of the history)
    occurrence: int  # how many identical items came before it after the same event


@dataclass(frozen=True, slots=True)
class GdprEvent:
    """A GDPR event that names a request id: it may confirm a submitted request."""

    event_id: int
    created_at: datetime
    request_type: str | None  # forget / rectify from the key, None when the key says neither
    service_id: int | None
    request_ref: int


@dataclass(slots=True)
class ParsedPage:
    """One page, split into columns for a bulk insert and the items to quarantine."""

    after: int  # the cursor the page was asked after (0: the start)
    size: int  # items in the page, well formed or not
    cursor: int | None = None  # highest event_id seen in the page; None when it had none
    event_ids: list[int] = field(default_factory=list)
    created_at: list[datetime] = field(default_factory=list)
    service_ids: list[int | None] = field(default_factory=list)
    events_json: str = "[]"  # the well-formed items, in the order of the columns
    quarantine: list[QuarantineItem] = field(default_factory=list)
    gdpr: list[GdprEvent] = field(default_factory=list)

    @property
    def events(self) -> int:
        return len(self.event_ids)


def _rfc1123(s: str) -> datetime | None:
    """The published shape without the general parser: ``Wed, 12 Dec 2018 07:57:51 GMT``."""
    if len(s) != 29 or s[3:5] != ", " or s[25:] != " GMT":
        return None
    prefix = _RFC_DATES.get(s[5:16])
    if prefix is None:
        month = _MONTHS.get(s[8:11])
        if month is None or s[7] != " " or s[11] != " " or not (s[5:7] + s[12:16]).isdigit():
            return None
        prefix = f"{s[12:16]}-{month}-{s[5:7]}T"
        datetime.fromisoformat(prefix + "00:00:00")  # a real date, or ValueError
        if len(_RFC_DATES) > 20_000:
            _RFC_DATES.clear()
        _RFC_DATES[s[5:16]] = prefix
    if s[16] != " " or not s[17:25].isascii():
        return None
    return datetime.fromisoformat(f"{prefix}{s[17:25]}+00:00")


def _iso(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def parse_created_at(value: object) -> datetime:
    """RFC 1123 or ISO 8601 -> aware UTC datetime; ValueError with a reason otherwise.

    A time without an offset is taken as UTC (the API gives every time in UTC).
    """
    if not isinstance(value, str):
        what = "missing" if value is None else f"a JSON {_JSON_KINDS.get(type(value), 'value')}"
        raise ValueError(f"created_at is {what}, not a date")
    text = value.strip()
    try:
        parsed = _rfc1123(text)
        if parsed is not None:
            return parsed
        parsed = _iso(text) if text[:4].isdigit() else None
        if parsed is None:
            parsed = email.utils.parsedate_to_datetime(text)
    except (ValueError, TypeError, IndexError, OverflowError):
        raise ValueError(f"created_at {value[:80]!r} is neither an RFC 1123 nor an ISO 8601 date") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _whole(value: object, limit: int) -> int | None:
    """A positive integer up to ``limit`` (an int, or a string of digits), else None."""
    if type(value) is int:
        return value if 0 < value <= limit else None
    if isinstance(value, str) and value.isdigit() and value.isascii() and len(value) <= 19:
        number = int(value)
        return number if 0 < number <= limit else None
    return None


def _clean(obj: Any) -> Any:
    """The item with what jsonb refuses replaced: NUL and lone surrogates, NaN and Infinity."""
    if isinstance(obj, str):
        return _SURROGATE.sub("\ufffd", obj.replace("\x00", "\ufffd"))
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    if isinstance(obj, dict):
        return {_clean(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def _storable(text: str) -> bool:
    """Whether Postgres takes this JSON text as jsonb (no NUL, valid UTF-8)."""
    if "\\u0000" in text:
        return False
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return False
    return True


def _unstorable(item: object) -> Malformed | None:
    """The quarantine entry when Postgres could not store the item as it is."""
    try:
        raw = _dumps(item)
    except ValueError:
        reason = "it holds a number JSON cannot carry (NaN or Infinity)"
    else:
        if _storable(raw) or _dumps(_clean(item)) == raw:  # "\\u0000" can be plain text
            return None
        reason = "it holds a NUL character or a lone surrogate, which Postgres cannot store"
    event_id = _whole(item.get("event_id"), MAX_EVENT_ID) if isinstance(item, dict) else None
    return Malformed(reason, _dumps(_clean(item)), event_id)


def _check(item: object) -> tuple[int, datetime, int | None] | tuple[str, int | None]:
    """(event_id, created_at, service_id) of a well-formed item, else (reason, event_id)."""
    if type(item) is not dict:
        return f"the event is a JSON {_JSON_KINDS.get(type(item), type(item).__name__)}, not an object", None
    raw_id = item.get("event_id")
    event_id = _whole(raw_id, MAX_EVENT_ID)
    if event_id is None:
        if "event_id" not in item:
            return "the event has no event_id", None
        return f"event_id {str(raw_id)[:40]!r} is not a positive 64-bit integer", None
    try:
        created_at = parse_created_at(item.get("created_at"))
    except ValueError as exc:
        return str(exc), event_id
    service = item.get("service_id")
    if service is None:
        return event_id, created_at, None
    service_id = _whole(service, MAX_SERVICE_ID)
    if service_id is None:
        return f"service_id {str(service)[:40]!r} is not a positive integer", event_id
    return event_id, created_at, service_id


def _request_ref(item: dict[str, Any]) -> tuple[str, int] | None:
    key = item.get("key")
    if not isinstance(key, str) or not key.startswith(GDPR_KEY_PREFIX):
        return None
    parameters = item.get("parameters")
    if isinstance(parameters, dict):
        for name in REQUEST_ID_PARAMETERS:
            ref = _whole(parameters.get(name), MAX_EVENT_ID)
            if ref is not None:
                return key, ref
    return None


def parse_event(item: object) -> Event | Malformed:
    """One item of a page -> an Event, or Malformed with the reason."""
    bad = _unstorable(item)
    if bad is not None:
        return bad
    checked = _check(item)
    if len(checked) == 2:
        return Malformed(checked[0], _quarantine_json(item), checked[1])
    assert isinstance(item, dict)
    ref = _request_ref(item)
    key = item.get("key")
    return Event(*checked, key=key if isinstance(key, str) else None, raw_json=_dumps(item),
                 request_ref=ref[1] if ref else None)  # fmt: skip


def parse_page(items: Sequence[object], after: int | None) -> ParsedPage:
    """A page asked for after ``after`` (None: the first pull) -> columns and quarantine."""
    page, good = _parse(items, after, check_each=False)
    try:
        text: str | None = _dumps(good)
    except ValueError:
        text = None
    if text is None or not _storable(text):
        page, good = _parse(items, after, check_each=True)  # rare: find the unstorable items
        text = _dumps(good)
    page.events_json = text
    return page


def _quarantine_json(item: object) -> str:
    try:
        raw = _dumps(item)
    except ValueError:
        return _dumps(_clean(item))
    return raw if _storable(raw) else _dumps(_clean(item))


def _parse(items: Sequence[object], after: int | None, *, check_each: bool) -> tuple[ParsedPage, list[object]]:
    page = ParsedPage(after=after or 0, size=len(items))
    good: list[object] = []
    last_known = page.after
    seen: dict[tuple[int, str], int] = {}
    eid: int | None
    for item in items:
        bad = _unstorable(item) if check_each else None
        checked = _check(item) if bad is None else (bad.reason, bad.event_id)
        if len(checked) == 3:
            eid, created_at, service_id = checked
            page.event_ids.append(eid)
            page.created_at.append(created_at)
            page.service_ids.append(service_id)
            good.append(item)
            ref = _request_ref(item)  # type: ignore[arg-type]
            if ref is not None:
                kind = ref[0][len(GDPR_KEY_PREFIX):]
                page.gdpr.append(GdprEvent(eid, created_at, kind if kind in ("forget", "rectify") else None,
                                           service_id, ref[1]))  # fmt: skip
        else:
            reason, eid = checked
            raw = bad.raw_json if bad is not None else _quarantine_json(item)
            digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()
            occurrence = seen.get((last_known, digest), 0)
            seen[(last_known, digest)] = occurrence + 1
            page.quarantine.append(QuarantineItem(reason, raw, digest, eid, last_known, occurrence))
        if eid is not None:
            last_known = eid
            if page.cursor is None or eid > page.cursor:
                page.cursor = eid
    return page, good
