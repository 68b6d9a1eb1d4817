"""Raw account events -> typed rows or quarantine reasons.  Pure: no I/O, no clock.

An item of an events page becomes an :class:`Event` when it is a JSON object with a
positive integer ``event_id`` and a ``created_at`` in RFC 1123 (``Wed, 12 Dec 2018
07:57:51 GMT``, the published example) or ISO 8601 (``2018-12-12T07:57:51.000Z``); both
become an aware UTC datetime.  Anything else becomes a :class:`Malformed` with a reason,
to be quarantined with the item as received.  So does an item Postgres cannot store as
jsonb (a NUL character, a lone surrogate, NaN): it is kept with those characters
replaced, so one bad item never blocks the pull.

:func:`parse_page` turns a whole page into column lists ready for one bulk insert, the
quarantine items (with the key that makes quarantining the same item twice a no-op), the
cursor the page moves to, and the GDPR events to correlate with submitted requests.
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

__all__ = [
    "MAX_EVENT_ID",
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
MAX_SERVICE_ID = 2**31 - 1
GDPR_KEY_PREFIX = "gdpr."
#: Where a GDPR event names the request it is about (the id the API answered).
REQUEST_ID_PARAMETERS = ("request_id", "job_id", "id")

_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}  # fmt: skip
# json.loads joins valid surrogate pairs, so any surrogate left in a str stands alone.
_SURROGATE = re.compile("[\ud800-\udfff]")
_JSON_KINDS = {str: "string", int: "number", float: "number", bool: "boolean", list: "array", type(None): "null"}


@dataclass(frozen=True, slots=True)
class Event:
    event_id: int
    created_at: datetime
    key: str | None
    source: str | None
    user_email: str | None
    user_id: str | None
    ip_address: str | None
    service_id: int | None
    raw_json: str  # the item as received, re-serialised compactly
    request_ref: int | None = None  # a GDPR event's request id (see REQUEST_ID_PARAMETERS)


@dataclass(frozen=True, slots=True)
class Malformed:
    reason: str
    raw_json: str  # the item as received (characters Postgres refuses replaced)
    event_id: int | None = None  # known when only the date was wrong


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
    cursor: int | None  # highest event_id seen in the page; None when it had none
    event_ids: list[int] = field(default_factory=list)
    created_at: list[datetime] = field(default_factory=list)
    keys: list[str | None] = field(default_factory=list)
    sources: list[str | None] = field(default_factory=list)
    user_emails: list[str | None] = field(default_factory=list)
    user_ids: list[str | None] = field(default_factory=list)
    ip_addresses: list[str | None] = field(default_factory=list)
    service_ids: list[int | None] = field(default_factory=list)
    raws: list[str] = field(default_factory=list)
    quarantine: list[QuarantineItem] = field(default_factory=list)
    gdpr: list[GdprEvent] = field(default_factory=list)

    @property
    def events(self) -> int:
        return len(self.event_ids)


def _rfc1123(s: str) -> datetime | None:
    """The exact published shape, without the general parser: ``Wed, 12 Dec 2018 07:57:51 GMT``."""
    if len(s) != 29 or s[3:5] != ", " or s[25:] != " GMT" or s[19] != ":" or s[22] != ":":
        return None
    month = _MONTHS.get(s[8:11])
    digits = s[5:7] + s[12:16] + s[17:19] + s[20:22] + s[23:25]
    if month is None or not digits.isdigit() or not digits.isascii():
        return None
    return datetime(int(s[12:16]), month, int(s[5:7]), int(s[17:19]), int(s[20:22]), int(s[23:25]), tzinfo=UTC)


def parse_created_at(value: object) -> datetime:
    """RFC 1123 or ISO 8601 -> aware UTC datetime; ValueError with a reason otherwise.

    A time without an offset is taken as UTC (the API gives every time in UTC).
    """
    if not isinstance(value, str):
        raise ValueError(f"created_at is {type(value).__name__ if value is not None else 'missing'}, not a date")
    text = value.strip()
    try:
        parsed = _rfc1123(text)
        if parsed is not None:
            return parsed
        if text[:1].isdigit():
            parsed = datetime.fromisoformat(text)
        else:
            parsed = email.utils.parsedate_to_datetime(text)
    except (ValueError, TypeError, IndexError, OverflowError):
        raise ValueError(f"created_at {value[:80]!r} is neither an RFC 1123 nor an ISO 8601 date") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _whole(value: object, limit: int) -> int | None:
    """A positive integer up to ``limit`` (an int, or a string of digits), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value <= limit else None
    if isinstance(value, str) and value.isdigit() and value.isascii() and len(value) <= 19:
        number = int(value)
        return number if 0 < number <= limit else None
    return None


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _dumps(item: object) -> str:
    return json.dumps(item, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


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


def _unstorable(item: object) -> tuple[str, str] | None:
    """(reason, cleaned JSON) when Postgres could not store the item as it is."""
    try:
        raw = _dumps(item)
    except ValueError:
        return "it holds a number JSON cannot carry (NaN or Infinity)", _dumps(_clean(item))
    if "\\u0000" in raw and _dumps(_clean(item)) != raw:
        return "it holds a NUL character, which Postgres cannot store", _dumps(_clean(item))
    if not raw.isascii():
        try:
            raw.encode("utf-8")
        except UnicodeEncodeError:
            return "it holds text that is not valid Unicode (a lone surrogate)", _dumps(_clean(item))
    return None


def _request_ref(key: str | None, parameters: object) -> int | None:
    if key is None or not key.startswith(GDPR_KEY_PREFIX) or not isinstance(parameters, dict):
        return None
    for name in REQUEST_ID_PARAMETERS:
        ref = _whole(parameters.get(name), MAX_EVENT_ID)
        if ref is not None:
            return ref
    return None


def parse_event(item: object) -> Event | Malformed:
    """One item of a page -> an Event, or Malformed with the reason."""
    bad = _unstorable(item)
    if bad is not None:
        event_id = _whole(item.get("event_id"), MAX_EVENT_ID) if isinstance(item, dict) else None
        return Malformed(bad[0], bad[1], event_id)
    raw = _dumps(item)
    if not isinstance(item, dict):
        kind = _JSON_KINDS.get(type(item), type(item).__name__)
        return Malformed(f"the event is a JSON {kind}, not an object", raw)
    if "event_id" not in item:
        return Malformed("the event has no event_id", raw)
    event_id = _whole(item["event_id"], MAX_EVENT_ID)
    if event_id is None:
        return Malformed(f"event_id {str(item['event_id'])[:40]!r} is not a positive 64-bit integer", raw)
    try:
        created_at = parse_created_at(item.get("created_at"))
    except ValueError as exc:
        return Malformed(str(exc), raw, event_id)
    service = item.get("service_id")
    service_id = None if service is None else _whole(service, MAX_SERVICE_ID)
    if service is not None and service_id is None:
        return Malformed(f"service_id {str(service)[:40]!r} is not a positive integer", raw, event_id)
    key = _text(item.get("key"))
    return Event(
        event_id,
        created_at,
        key,
        _text(item.get("source")),
        _text(item.get("user_email")),
        _text(item.get("user_id")),
        _text(item.get("ip_address")),
        service_id,
        raw,
        _request_ref(key, item.get("parameters")),
    )


def parse_page(items: Sequence[object], after: int | None) -> ParsedPage:
    """A page asked for after ``after`` (None: the first pull) -> columns and quarantine."""
    start = after or 0
    page = ParsedPage(after=start, size=len(items), cursor=None)
    last_known = start
    seen: dict[tuple[int, str], int] = {}
    for item in items:
        parsed = parse_event(item)
        if isinstance(parsed, Event):
            eid = parsed.event_id
            page.event_ids.append(eid)
            page.created_at.append(parsed.created_at)
            page.keys.append(parsed.key)
            page.sources.append(parsed.source)
            page.user_emails.append(parsed.user_email)
            page.user_ids.append(parsed.user_id)
            page.ip_addresses.append(parsed.ip_address)
            page.service_ids.append(parsed.service_id)
            page.raws.append(parsed.raw_json)
            if parsed.request_ref is not None:
                kind = parsed.key[len(GDPR_KEY_PREFIX):] if parsed.key else None
                page.gdpr.append(GdprEvent(eid, parsed.created_at, kind if kind in ("forget", "rectify") else None,
                                           parsed.service_id, parsed.request_ref))  # fmt: skip
        else:
            eid = parsed.event_id
            digest = hashlib.sha256(parsed.raw_json.encode("utf-8")).hexdigest()
            occurrence = seen.get((last_known, digest), 0)
            seen[(last_known, digest)] = occurrence + 1
            page.quarantine.append(
                QuarantineItem(parsed.reason, parsed.raw_json, digest, eid, last_known, occurrence)
            )
        if eid is not None:
            last_known = eid
            if page.cursor is None or eid > page.cursor:
                page.cursor = eid
    return page
