"""``gdpr-daemon import``: a CSV file of requests, read as it streams, all or nothing.

**Reading.** The header names the columns, in any order (docs/dpo-guide.md)::

    request_type,service_id,table_name,record_id,field,value,comment,external_ref,received_at,requested_by

``request_type``, ``service_id``, ``table_name`` and ``record_id`` are required; the others
may be left out of the header or left empty.  ``service_id`` may be ``all``: one request
per service of the account.  The file is UTF-8 (a byte order mark is fine), separated by
commas or, as spreadsheets in many locales save it, by semicolons.  :func:`read_requests`
yields one :class:`ParsedLine` per record, with its line number and either the request or
every problem found on it (the rules of :mod:`gdpr_daemon.rules`).

**Importing.** :func:`import_csv` reads the file once and never holds it in memory: each
line is checked as it comes, ``all`` lines are expanded to every service of the account
(fetched once, only when a line asks for it), and the external_refs and (while no problem
has been found, and not with ``--check``) the requests are copied in batches into
temporary tables of one transaction (:class:`gdpr_daemon.db.imports.Staging`, the SQL
side).  There, the refs are compared with each other and with the table, and only if no
line has a problem is every request inserted, in one statement.  A problem anywhere means
nothing is inserted.  Memory stays flat with the file's length: what grows is a bit per
line (which lines are bad) and at most :data:`MAX_PROBLEMS` kept problems.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

from sqlalchemy.ext.asyncio import AsyncEngine

from gdpr_daemon.db.imports import BulkResult, Staging
from gdpr_daemon.db.requests import NewRequest
from gdpr_daemon.dpo.fanout import expand, new_group_prefix, ref_too_long
from gdpr_daemon.rules import REQUEST_TYPES, request_problems, shown

__all__ = ["COLUMNS", "MAX_PROBLEMS", "REQUIRED", "HeaderError", "ImportOutcome", "LineProblem", "ParsedLine",
           "import_csv", "read_requests"]  # fmt: skip


# ---- reading the file -------------------------------------------------------------------------

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


# ---- importing: check, stage, insert ------------------------------------------------------------

PROGRESS_EVERY = 1000  # records between progress reports
BATCH = 5000  # refs or requests per COPY
MAX_PROBLEMS = 10_000  # problems kept (those of the first lines); the rest are counted


@dataclass(frozen=True, slots=True, order=True)
class LineProblem:
    line: int
    message: str  # one sentence, without a full stop

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}."


@dataclass(slots=True)
class ImportOutcome:
    records: int = 0  # non-blank lines after the header
    requests: int = 0  # requests they make (an `all` line makes one per service)
    problems: list[LineProblem] = field(default_factory=list)  # the first MAX_PROBLEMS, by line
    more_problems: int = 0  # problems found beyond those kept
    bad_lines: int = 0  # lines with at least one problem
    inserted: BulkResult | None = None  # None when nothing was inserted


class _Problems:
    """The problems found, in bounded memory: the first ``keep`` by line, the rest counted,
    and a bit per line saying whether it has one."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.kept: list[LineProblem] = []
        self.dropped = 0
        self._bad = bytearray()
        self.bad_lines = 0

    def add(self, problem: LineProblem) -> None:
        byte, bit = divmod(problem.line, 8)
        if byte >= len(self._bad):
            self._bad.extend(bytes(max(byte + 1 - len(self._bad), len(self._bad))))
        if not self._bad[byte] & (1 << bit):
            self._bad[byte] |= 1 << bit
            self.bad_lines += 1
        self.kept.append(problem)
        if len(self.kept) > 2 * self.keep:
            self._trim()

    def _trim(self) -> None:
        self.kept.sort()
        self.dropped += max(len(self.kept) - self.keep, 0)
        del self.kept[self.keep :]

    def __bool__(self) -> bool:
        return self.bad_lines > 0

    def finish(self, out: ImportOutcome) -> None:
        self._trim()
        out.problems, out.more_problems, out.bad_lines = self.kept, self.dropped, self.bad_lines


class _Reading:
    """One import while its file is read: what waits to be staged, the problems, the counts."""

    def __init__(self, staging: Staging, *, check_only: bool, max_problems: int,
                 service_ids: Callable[[], Awaitable[Sequence[int]]]) -> None:  # fmt: skip
        self.staging, self.check_only, self.service_ids = staging, check_only, service_ids
        self.out = ImportOutcome()
        self.found = _Problems(max_problems)
        self.refs: list[tuple[str, int, int]] = []  # (ref, line, order) not yet staged
        self.requests: list[NewRequest] = []  # checked requests not yet staged
        self.seq = 0
        self.all_ids: Sequence[int] | None = None  # fetched at the first `all` line
        self.group_prefix = new_group_prefix("IMPORT")

    def problem(self, line: int, message: str) -> None:
        self.found.add(LineProblem(line, message))

    def _ref(self, ref: str, line: int) -> None:
        self.refs.append((ref, line, self.seq))
        self.seq += 1

    async def add(self, parsed: ParsedLine) -> None:
        self.out.records += 1
        for p in parsed.problems:
            self.problem(parsed.line, p)
        if parsed.all_services:
            if parsed.request is not None:
                await self._add_to_every_service(parsed, parsed.request)
        else:
            if parsed.external_ref is not None:
                self._ref(parsed.external_ref, parsed.line)
            if parsed.request is not None:
                self.requests.append(parsed.request)
                self.out.requests += 1
        await self.flush()

    async def _add_to_every_service(self, parsed: ParsedLine, request: NewRequest) -> None:
        if self.all_ids is None:
            self.all_ids = list(await self.service_ids())
        base = parsed.external_ref or f"{self.group_prefix}-L{parsed.line}"
        if not self.all_ids:
            self.problem(parsed.line, "service_id is all, but the account has no services")
        elif ref_too_long(base, self.all_ids):
            self.problem(parsed.line, "external_ref is too long to add the service ids to it (service_id all)")
        else:
            group = expand(request, self.all_ids, base)
            for r in group:
                assert r.external_ref is not None
                self._ref(r.external_ref, parsed.line)
            self.requests += group
            self.out.requests += len(group)

    async def flush(self, force: bool = False) -> None:
        """Stage what waits, in batches of :data:`BATCH` (all of it with ``force``)."""
        if len(self.refs) >= BATCH or (force and self.refs):
            await self.staging.refs(self.refs)
            self.refs.clear()
        if len(self.requests) >= BATCH or (force and self.requests):
            if not self.found and not self.check_only:  # once a line is bad, nothing will be inserted
                await self.staging.requests(self.requests)
            self.requests.clear()

    async def check_refs(self) -> None:
        """external_refs used twice in the file, or already in the table: a problem on their line."""
        async for line, ref, first in self.staging.duplicates():
            self.problem(line, f"external_ref {shown(ref)} is also used on line {first}; each case needs its own")
        async for line, ref, request_id in self.staging.taken():
            self.problem(
                line, f"external_ref {shown(ref)} is already used by request {request_id}; each case needs its own"
            )


async def import_csv(
    engine: AsyncEngine,
    stream: BinaryIO,
    *,
    actor: str,
    service_ids: Callable[[], Awaitable[Sequence[int]]],
    check_only: bool = False,
    progress: Callable[[int], None] | None = None,
    phase: Callable[[str], None] | None = None,
    now: datetime | None = None,
    max_problems: int = MAX_PROBLEMS,
) -> ImportOutcome:
    """Read, check and (unless ``check_only`` or a line has a problem) insert the file's requests.

    ``service_ids`` is called at most once, at the first ``all`` line.  ``progress`` gets
    the number of lines read every 1000 lines, ``phase`` a sentence as each later step
    begins.  Raises :class:`HeaderError` when the header is unusable.
    """
    say = phase or (lambda _text: None)
    async with engine.begin() as conn:
        staging = await Staging.open(conn, requests=not check_only)
        run = _Reading(staging, check_only=check_only, max_problems=max_problems, service_ids=service_ids)
        out = run.out
        for parsed in read_requests(stream, actor=actor, now=now):
            await run.add(parsed)
            if progress is not None and out.records % PROGRESS_EVERY == 0:
                progress(out.records)
        await run.flush(force=True)
        if progress is not None:
            progress(out.records)
        if out.records == 0:
            run.problem(1, "the file holds a header but no requests")
        say(f"read {out.records:,} lines; checking external_refs against each other and the table")
        await run.check_refs()
        run.found.finish(out)
        if out.problems or check_only:
            return out
        say(f"inserting {staging.staged:,} requests in one transaction")
        out.inserted = await staging.insert()
    return out
