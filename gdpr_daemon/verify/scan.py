"""Looking for one record in a backup section's CSV, read incrementally from byte chunks.

:func:`scan_csv` takes the chunks as they arrive (from
:meth:`~gdpr_daemon.ownbackup.OwnBackupClient.stream_download`) and holds no more than
one chunk and an unfinished record at a time, whatever the file's size.  Chunks are
decoded with an incremental UTF-8 decoder and cut at the last line break where the count
of quote characters is even: a quoted field may hold line breaks (RFC 4180), and a
complete block of records is then parsed by the :mod:`csv` module.

It looks in the ``Id`` column for the record id, or, when retention has purged the id
and kept only its SHA-256, for a cell with that digest.  For a rectify it then compares
the SHA-256 of the record's cell in the rectified field with the new value's digest (the
value itself is erased after submission).  Nothing of the file is logged or kept: only
counts and whether the record was found.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
from collections.abc import AsyncIterable
from dataclasses import dataclass

__all__ = ["MAX_RECORD_BYTES", "CsvProblem", "ScanResult", "Target", "scan_csv"]

#: The longest CSV record read; a longer one (or a file that never ends a quoted field)
#: is a CsvProblem rather than a buffer that grows without bound.
MAX_RECORD_BYTES = 16 * 2**20


class CsvProblem(Exception):
    """The file cannot be read as the section's CSV; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Target:
    """The record to look for: its id, or the SHA-256 of a purged id; for rectify, the field
    and the SHA-256 of the new value."""

    record_id: str | None = None
    record_id_sha256: str | None = None
    field: str | None = None
    value_sha256: str | None = None

    def __post_init__(self) -> None:
        if not self.record_id and not self.record_id_sha256:
            raise ValueError("a Target needs the record id or its SHA-256")
        if (self.field is None) != (self.value_sha256 is None):
            raise ValueError("a rectify Target needs both the field and the value's SHA-256")

    def __repr__(self) -> str:  # the record id is personal data
        return f"Target(field={self.field!r}, by_digest={self.record_id is None})"


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What one scan found.  ``rows``: records read (the scan stops at the record)."""

    rows: int
    found: bool
    new_value: bool | None = None  # rectify, record found: whether the field holds the new value
    short_rows: int = 0  # records with fewer cells than the columns looked at (skipped)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _column(header: list[str], name: str, what: str) -> int:
    if name in header:
        return header.index(name)
    folded = [h.strip().casefold() for h in header]
    if name.casefold() in folded:
        return folded.index(name.casefold())
    raise CsvProblem(f"the CSV has no {what} column {name!r} (its columns: {', '.join(header[:20])})")


class _Matcher:
    """Checks parsed records against the target; knows the header once it has seen it."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.id_col = -1
        self.field_col = -1
        self.width = 0
        self.rows = 0
        self.short = 0
        self.found = False
        self.new_value: bool | None = None

    def header(self, row: list[str]) -> None:
        if row and row[0].startswith("\ufeff"):
            row[0] = row[0][1:]
        self.id_col = _column(row, "Id", "record id")
        self.width = self.id_col + 1
        if self.target.field is not None:
            self.field_col = _column(row, self.target.field, "field")
            self.width = max(self.width, self.field_col + 1)

    def feed(self, rows: list[list[str]]) -> bool:
        """Look at a block of records; True once the record is found (stop reading)."""
        t, col = self.target, self.id_col
        index = None
        if t.record_id is not None:
            rid = t.record_id
            for i, row in enumerate(rows):
                if len(row) > col and row[col] == rid:
                    index = i
                    break
        else:
            digest = t.record_id_sha256
            for i, row in enumerate(rows):
                if len(row) > col and _sha256(row[col]) == digest:
                    index = i
                    break
        seen = rows if index is None else rows[: index + 1]
        self.rows += len(seen)
        self.short += sum(1 for row in seen if len(row) < self.width)
        if index is None:
            return False
        self.found = True
        if t.field is not None:
            row = rows[index]
            self.new_value = len(row) > self.field_col and _sha256(row[self.field_col]) == t.value_sha256
        return True


async def scan_csv(chunks: AsyncIterable[bytes], target: Target) -> ScanResult:
    """Read CSV ``chunks`` until the target record is found or the file ends."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    matcher = _Matcher(target)
    pending = ""  # decoded text from a record boundary on, not parsed yet
    header_seen = False
    records = 0  # records parsed so far, header included (for messages)

    def parse(block: str) -> list[list[str]]:
        nonlocal header_seen, records
        try:
            rows = list(csv.reader(io.StringIO(block, newline=""), strict=True))
        except csv.Error as exc:
            raise CsvProblem(f"the CSV is not readable after record {records:,}: {exc}") from None
        records += len(rows)
        if not header_seen and rows:
            header_seen = True
            matcher.header(rows[0])
            rows = rows[1:]
        return rows

    async for chunk in chunks:
        pending += decoder.decode(chunk)
        cut = pending.rfind("\n") + 1
        if cut and pending.count('"', 0, cut) % 2 == 0:
            block, pending = pending[:cut], pending[cut:]
            if matcher.feed(parse(block)):
                return _result(matcher)
        if len(pending) > MAX_RECORD_BYTES:
            raise CsvProblem(
                f"the CSV has a record (after record {records:,}) longer than {MAX_RECORD_BYTES // 2**20} MiB, "
                "or a quoted field that never ends"
            )
    pending += decoder.decode(b"", final=True)
    if pending.count('"') % 2:
        raise CsvProblem(f"the CSV ends inside a quoted field after record {records:,}: the file is cut short")
    if pending.strip():
        matcher.feed(parse(pending))
    if not header_seen:
        raise CsvProblem("the CSV is empty: not even a header line")
    return _result(matcher)


def _result(m: _Matcher) -> ScanResult:
    return ScanResult(rows=m.rows, found=m.found, new_value=m.new_value, short_rows=m.short)
