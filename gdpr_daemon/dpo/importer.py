"""``gdpr-daemon import``: a CSV file of requests, all or nothing, every bad line reported.

The file is read once, streaming (:mod:`gdpr_daemon.dpo.csvimport`), and never held in
memory: each line is checked as it comes, ``all`` lines are expanded to every service of the
account (fetched once, only when a line asks for it), and the external_refs and (while no
problem has been found, and not with ``--check``) the requests are copied in batches into
temporary tables of one transaction (:class:`gdpr_daemon.db.imports.Staging`).  There,
the refs are compared with each other and with the table, and only if no line has a
problem is every request inserted, in one statement.  A problem anywhere means nothing is
inserted.  Memory stays flat with the file's length: what grows is a bit per line (which
lines are bad) and at most :data:`MAX_PROBLEMS` kept problems.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO

from sqlalchemy.ext.asyncio import AsyncEngine

from gdpr_daemon.db.imports import BulkResult, Staging
from gdpr_daemon.db.requests import NewRequest
from gdpr_daemon.dpo.csvimport import read_requests
from gdpr_daemon.dpo.fanout import expand, new_group_prefix, ref_too_long
from gdpr_daemon.rules import shown

__all__ = ["MAX_PROBLEMS", "ImportOutcome", "LineProblem", "import_csv"]

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
    begins.  Raises
    :class:`~gdpr_daemon.dpo.csvimport.HeaderError` when the header is unusable.
    """
    out = ImportOutcome()
    found = _Problems(max_problems)
    refs: list[tuple[str, int, int]] = []  # (ref, line, order) not yet staged
    requests: list[NewRequest] = []  # checked requests not yet staged
    seq = 0
    all_ids: Sequence[int] | None = None
    group_prefix = new_group_prefix("IMPORT")
    say = phase or (lambda _text: None)
    async with engine.begin() as conn:
        staging = await Staging.open(conn, requests=not check_only)

        async def flush(force: bool = False) -> None:
            if len(refs) >= BATCH or (force and refs):
                await staging.refs(refs)
                refs.clear()
            if len(requests) >= BATCH or (force and requests):
                if not found and not check_only:  # once a line is bad, nothing will be inserted
                    await staging.requests(requests)
                requests.clear()

        for parsed in read_requests(stream, actor=actor, now=now):
            out.records += 1
            if progress is not None and out.records % PROGRESS_EVERY == 0:
                progress(out.records)
            for p in parsed.problems:
                found.add(LineProblem(parsed.line, p))
            if not parsed.all_services:
                if parsed.external_ref is not None:
                    refs.append((parsed.external_ref, parsed.line, seq))
                    seq += 1
                if parsed.request is not None:
                    requests.append(parsed.request)
                    out.requests += 1
            elif parsed.request is not None:
                if all_ids is None:
                    all_ids = list(await service_ids())
                base = parsed.external_ref or f"{group_prefix}-L{parsed.line}"
                if not all_ids:
                    found.add(LineProblem(parsed.line, "service_id is all, but the account has no services"))
                elif ref_too_long(base, all_ids):
                    found.add(LineProblem(
                        parsed.line, "external_ref is too long to add the service ids to it (service_id all)"
                    ))  # fmt: skip
                else:
                    group = expand(parsed.request, all_ids, base)
                    for r in group:
                        assert r.external_ref is not None
                        refs.append((r.external_ref, parsed.line, seq))
                        seq += 1
                    requests += group
                    out.requests += len(group)
            await flush()
        await flush(force=True)
        if progress is not None:
            progress(out.records)
        if out.records == 0:
            found.add(LineProblem(1, "the file holds a header but no requests"))
        say(f"read {out.records:,} lines; checking external_refs against each other and the table")
        async for line, ref, first in staging.duplicates():
            found.add(LineProblem(
                line, f"external_ref {shown(ref)} is also used on line {first}; each case needs its own"
            ))  # fmt: skip
        async for line, ref, request_id in staging.taken():
            found.add(LineProblem(
                line, f"external_ref {shown(ref)} is already used by request {request_id}; each case needs its own"
            ))  # fmt: skip
        found.finish(out)
        if out.problems or check_only:
            return out
        say(f"inserting {staging.staged:,} requests in one transaction")
        out.inserted = await staging.insert()
    return out
