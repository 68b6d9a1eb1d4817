"""Reading a CSV file of requests (``gdpr-daemon import``): streaming, checked line by line.

The header names the columns, in any order (docs/dpo-guide.md)::

    request_type,service_id,table_name,record_id,field,value,comment,external_ref,received_at,requested_by

``request_type``, ``service_id``, ``table_name`` and ``record_id`` are required; the others
may be left out of the header or left empty.  ``service_id`` may be ``all``: one request
per service of the account.  The file is UTF-8 (a byte order mark is fine), separated by
commas or, as spreadsheets in many locales save it, by semicolons.

:func:`read_requests` yields one :class:`ParsedLine` per record, with its line number and
either the request or every problem found on it.  Nothing here does I/O beyond reading
the file; expanding ``all`` and the checks against the table are the caller's.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

from gdpr_daemon.db.requests import NewRequest
from gdpr_daemon.rules import REQUEST_TYPES, request_problems, shown

__all__ = ["COLUMNS", "REQUIRED", "HeaderError", "ParsedLine", "read_requests"]

COLUMNS = (
    "request_type", "service_id", "table_name", "record_id", "field", "value", "comment",
    "external_ref", "received_at", "requested_by",
)  # fmt: skip
REQUIRED = ("request_type", "service_id", "table_name", "record_id")
ALL_SERVICES = "all"

GDPR_APPLIES = datetime(2018, 5, 25, tzinfo=UTC)
CLOCK_SKEW = timedelta(minutes=10)
_DIGITS = re.compile(r"[0-9]+\Z")


class HeaderError(Exception):
    """The first line is not a usable header; nothing after it can be read."""


@dataclass(slots=True)
class ParsedLine:
    line: int  # where the record starts (the header is line 1)
    request: NewRequest | None  # None when problems were found
    all_services: bool = False  # service_id was `all`: request.service_id is a placeholder
    external_ref: str | None = None  # kept even for a bad line, to find duplicates
    problems: list[str] = field(default_factory=list)


def _bad_encoding(values: list[str]) -> bool:
    return any("\udc80" <= ch <= "\udcff" for v in values for ch in v)


def _parse_header(first: str) -> tuple[list[str], str]:
    if _bad_encoding([first]):
        raise HeaderError("line 1 is not valid UTF-8; save the file as CSV UTF-8")
    delimiter = ";" if ";" in first and "," not in first else ","
    names = [c.strip().lower() for c in next(csv.reader([first], delimiter=delimiter), [])]
    problems = []
    unknown = [n for n in names if n not in COLUMNS]
    if unknown:
        problems.append(f"unknown column {shown(unknown[0], 40)}; the columns are {', '.join(COLUMNS)}")
    dupes = sorted({n for n in names if names.count(n) > 1 and n})
    if dupes:
        problems.append(f"column {dupes[0]} appears twice")
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        problems.append(f"the header lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    if problems:
        raise HeaderError("line 1: " + "; ".join(problems))
    return names, delimiter


def _parse_received(raw: str, now: datetime) -> tuple[datetime | None, str | None]:
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None, f"received_at {shown(raw, 40)} is not a date like 2026-03-10 or 2026-03-10T09:30:00Z"
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if parsed > now + CLOCK_SKEW:
        return None, "received_at is in the future"
    if parsed < GDPR_APPLIES:
        return None, "received_at is before 25 May 2018, when the GDPR began to apply"
    return parsed, None


def _record(
    line: int, cells: dict[str, str], *, actor: str | None, now: datetime
) -> ParsedLine:
    def opt(name: str, *, strip: bool = True) -> str | None:
        raw = cells.get(name, "")
        value = raw.strip() if strip else raw
        return value if value.strip() else None

    problems: list[str] = []
    typed = (cells.get("request_type") or "").strip()
    kind = typed.lower() if typed.lower() in REQUEST_TYPES else typed
    sid_text = (cells.get("service_id") or "").strip()
    all_services = sid_text.lower() == ALL_SERVICES
    service_id = 1  # a placeholder while service_id is `all` or wrong
    if not sid_text:
        problems.append("service_id is empty; give the service's number (see `gdpr-daemon services`) or all")
    elif not all_services and not _DIGITS.match(sid_text):
        problems.append(f"service_id {shown(sid_text, 20)} is not a whole number (or all)")
    elif not all_services:
        service_id = int(sid_text)
    received_at = None
    if opt("received_at"):
        received_at, why = _parse_received(opt("received_at") or "", now)
        if why:
            problems.append(why)
    request = NewRequest(
        request_type=kind,
        service_id=service_id,
        table_name=(cells.get("table_name") or "").strip(),
        record_id=(cells.get("record_id") or "").strip(),
        field=opt("field"),
        value=opt("value", strip=False),
        comment=opt("comment", strip=False),
        external_ref=opt("external_ref"),
        received_at=received_at,
        requested_by=opt("requested_by") or actor,
    )
    if not kind:
        problems.append("request_type is empty; write forget or rectify")
        problems += [p for p in request_problems(request) if not p.startswith("request_type")]
    else:
        problems += request_problems(request)
    ref = request.external_ref
    if problems:
        return ParsedLine(line, None, all_services, ref, problems)
    return ParsedLine(line, request, all_services, ref)


def read_requests(
    stream: BinaryIO, *, actor: str | None = None, now: datetime | None = None
) -> Iterator[ParsedLine]:
    """Every record of the file, checked; raises HeaderError when the header is unusable."""
    now = now or datetime.now(UTC)
    csv.field_size_limit(2**31 - 1)  # long values are refused by the checks, with their line
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        yield from _records(text, actor=actor, now=now)
    finally:
        text.detach()  # the caller's stream stays open (and its position readable for progress)


def _records(text: io.TextIOWrapper, *, actor: str | None, now: datetime) -> Iterator[ParsedLine]:
    first = text.readline()
    if not first.strip():
        raise HeaderError("line 1 is empty; the file must start with the header line (see docs/dpo-guide.md)")
    names, delimiter = _parse_header(first)
    reader = csv.reader(itertools.chain([first], text), delimiter=delimiter)
    next(reader)  # the header, checked above
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield ParsedLine(start, None, problems=[f"this line is not readable as CSV ({exc})"])
            continue
        if not any(c.strip() for c in cells):
            continue  # blank lines are allowed
        if _bad_encoding(cells):
            yield ParsedLine(start, None, problems=["this line is not valid UTF-8; save the file as CSV UTF-8"])
            continue
        if len(cells) != len(names):
            yield ParsedLine(
                start, None, problems=[f"this line has {len(cells)} fields, the header has {len(names)}"]
            )
            continue
        yield _record(start, dict(zip(names, cells, strict=True)), actor=actor, now=now)
