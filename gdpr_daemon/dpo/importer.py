"""``gdpr-daemon import``: a CSV file of requests, all or nothing, every bad line reported.

The file is read once, streaming (:mod:`gdpr_daemon.dpo.csvimport`); each line is checked
as it comes, ``all`` lines are expanded to every service of the account (fetched once,
only when a line asks for it), and external_refs are compared with every earlier line.
Then, in one transaction, the refs are compared with the table and, only if no line has
a problem, every request is inserted in one statement.  A problem anywhere means nothing
is inserted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO

from sqlalchemy.ext.asyncio import AsyncEngine

from gdpr_daemon.db.imports import BulkResult, bulk_insert, existing_refs
from gdpr_daemon.db.requests import NewRequest
from gdpr_daemon.dpo.checks import shown
from gdpr_daemon.dpo.csvimport import read_requests
from gdpr_daemon.dpo.fanout import expand, new_group_prefix, ref_too_long

__all__ = ["ImportOutcome", "LineProblem", "import_csv"]

PROGRESS_EVERY = 1000  # records between progress reports


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
    problems: list[LineProblem] = field(default_factory=list)
    inserted: BulkResult | None = None  # None when nothing was inserted

    @property
    def bad_lines(self) -> int:
        return len({p.line for p in self.problems})


class _Refs:
    """external_ref -> first line using it, to report duplicates within the file."""

    def __init__(self) -> None:
        self.first_line: dict[str, int] = {}

    def claim(self, ref: str | None, line: int) -> LineProblem | None:
        if ref is None:
            return None
        first = self.first_line.setdefault(ref, line)
        if first != line:
            return LineProblem(line, f"external_ref {shown(ref)} is also used on line {first}; each case needs its own")
        return None


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
) -> ImportOutcome:
    """Read, check and (unless ``check_only`` or a line has a problem) insert the file's requests.

    ``service_ids`` is called at most once, at the first ``all`` line.  ``progress`` gets
    the number of lines read every 1000 lines, ``phase`` a sentence as each later step
    begins.  Raises
    :class:`~gdpr_daemon.dpo.csvimport.HeaderError` when the header is unusable.
    """
    out = ImportOutcome()
    refs = _Refs()
    requests: list[NewRequest] = []
    all_ids: Sequence[int] | None = None
    group_prefix = new_group_prefix("IMPORT")
    for parsed in read_requests(stream, actor=actor, now=now):
        out.records += 1
        if progress is not None and out.records % PROGRESS_EVERY == 0:
            progress(out.records)
        out.problems += [LineProblem(parsed.line, p) for p in parsed.problems]
        if not parsed.all_services:
            dup = refs.claim(parsed.external_ref, parsed.line)
            if dup:
                out.problems.append(dup)
            if parsed.request is not None:
                requests.append(parsed.request)
            continue
        if parsed.request is None:
            continue
        if all_ids is None:
            all_ids = list(await service_ids())
        if not all_ids:
            out.problems.append(LineProblem(parsed.line, "service_id is all, but the account has no services"))
            continue
        base = parsed.external_ref or f"{group_prefix}-L{parsed.line}"
        if ref_too_long(base, all_ids):
            out.problems.append(LineProblem(
                parsed.line, "external_ref is too long to add the service ids to it (service_id all)"
            ))  # fmt: skip
            continue
        group = expand(parsed.request, all_ids, base)
        for r in group:
            dup = refs.claim(r.external_ref, parsed.line)
            if dup:
                out.problems.append(dup)
                break
        requests += group
    if progress is not None:
        progress(out.records)
    out.requests = len(requests)
    if out.records == 0:
        out.problems.append(LineProblem(1, "the file holds a header but no requests"))
    say = phase or (lambda _text: None)
    async with engine.begin() as conn:
        say(f"read {out.records:,} lines; checking external_refs against the table")
        taken = await existing_refs(conn, refs.first_line)
        for ref, request_id in taken.items():
            out.problems.append(LineProblem(
                refs.first_line[ref],
                f"external_ref {shown(ref)} is already used by request {request_id}; each case needs its own",
            ))  # fmt: skip
        out.problems.sort()
        if out.problems or check_only:
            return out
        say(f"inserting {len(requests):,} requests in one transaction")
        out.inserted = await bulk_insert(conn, requests)
    return out
