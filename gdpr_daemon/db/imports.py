"""Bulk insert of checked requests, staged as the file streams by: COPY into temporary tables,
then one INSERT ... SELECT.

``gdpr-daemon import`` never holds a file in memory: as lines are read, their external_refs
(with line numbers) and, while no problem has been found, their requests are copied in
batches into temporary tables of the caller's transaction.  The duplicates within the file
and against the table are then found by SQL, and one statement inserts every row, so the
insert triggers do their per-statement work once (one history INSERT of all rows, one
NOTIFY) and 100,000 rows take seconds.  Everything runs in the caller's transaction: all
or nothing; the temporary tables go with its end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gdpr_daemon.db.requests import NewRequest

__all__ = ["BulkResult", "Staging"]

_COLUMNS = (
    "n", "request_type", "service_id", "table_name", "record_id", "field", "value", "comment",
    "external_ref", "received_at", "requested_by",
)  # fmt: skip

_CREATE = text("""
CREATE TEMPORARY TABLE gdpr_import (
    n int, request_type text, service_id int, table_name text, record_id text, field text, value text,
    comment text, external_ref text, received_at timestamptz, requested_by text
) ON COMMIT DROP
""")

_CREATE_REFS = text("""
CREATE TEMPORARY TABLE gdpr_import_refs (ref text NOT NULL, line int NOT NULL, seq bigint NOT NULL) ON COMMIT DROP
""")
_REF_COLUMNS = ("ref", "line", "seq")

# Every later use of a ref the file used before: the line, the ref, and the line that used it
# first; one per line (its first such ref, for a line of service_id all).
_DUPLICATES = text("""
SELECT DISTINCT ON (line) line, ref, first_line
FROM (SELECT line, ref, seq, min(line) OVER (PARTITION BY ref) AS first_line FROM gdpr_import_refs) r
WHERE line > first_line
ORDER BY line, seq
""")

# Refs of the file that a request in the table holds already, at the first line using each.
_TAKEN = text("""
SELECT f.first_line, f.ref, q.id
FROM (SELECT ref, min(line) AS first_line FROM gdpr_import_refs GROUP BY ref) f
JOIN gdpr_requests q ON q.external_ref = f.ref
ORDER BY f.first_line
""")

_INSERT = text("""
WITH ins AS (
    INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, field, value, comment,
                               external_ref, received_at, requested_by)
    SELECT request_type, service_id, table_name, record_id, field, value, comment, external_ref,
           coalesce(received_at, now()), coalesce(requested_by, current_user)
    FROM gdpr_import ORDER BY n
    RETURNING id, status
)
SELECT count(*) AS n, count(*) FILTER (WHERE status = 'awaiting_approval') AS awaiting,
       min(id) AS first_id, max(id) AS last_id
FROM ins
""")


@dataclass(frozen=True, slots=True)
class BulkResult:
    inserted: int
    awaiting_approval: int
    first_id: int | None
    last_id: int | None


class Staging:
    """The temporary tables of one import, in the caller's transaction.

    ``requests=False`` (``--check``, or once a problem is found) stages refs only.
    """

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.staged = 0  # requests copied so far
        self._requests_table = False

    @classmethod
    async def open(cls, conn: AsyncConnection, *, requests: bool) -> Staging:
        staging = cls(conn)
        # Created through SQLAlchemy first, so the transaction has begun before COPY uses the
        # driver's connection directly.
        await conn.execute(_CREATE_REFS)
        if requests:
            await conn.execute(_CREATE)
            staging._requests_table = True
        return staging

    async def _copy(self, table: str, columns: Sequence[str], records: Iterable[tuple[Any, ...]]) -> None:
        raw = await self.conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        await driver.copy_records_to_table(table, records=records, columns=columns)

    async def refs(self, rows: Sequence[tuple[str, int, int]]) -> None:
        """(external_ref, line, order within the file) of a batch of lines."""
        if rows:
            await self._copy("gdpr_import_refs", _REF_COLUMNS, rows)

    async def requests(self, requests: Sequence[NewRequest]) -> None:
        """A batch of checked requests, after those staged before."""
        if not requests or not self._requests_table:
            return
        first = self.staged
        records = (
            (first + n, r.request_type, r.service_id, r.table_name, r.record_id, r.field, r.value, r.comment,
             r.external_ref, r.received_at, r.requested_by)
            for n, r in enumerate(requests)
        )  # fmt: skip
        await self._copy("gdpr_import", _COLUMNS, records)
        self.staged += len(requests)

    async def duplicates(self) -> AsyncIterator[tuple[int, str, int]]:
        """(line, external_ref, first line using it) for each line reusing a ref of an earlier one."""
        result = await self.conn.stream(_DUPLICATES)
        async for row in result:
            yield int(row[0]), row[1], int(row[2])

    async def taken(self) -> AsyncIterator[tuple[int, str, int]]:
        """(first line, external_ref, request id) for each ref the table holds already."""
        result = await self.conn.stream(_TAKEN)
        async for row in result:
            yield int(row[0]), row[1], int(row[2])

    async def insert(self) -> BulkResult:
        """Insert every staged request, in file order, in one statement."""
        if not self.staged:
            return BulkResult(0, 0, None, None)
        row = (await self.conn.execute(_INSERT)).one()
        await self.conn.execute(text("DROP TABLE gdpr_import"))
        return BulkResult(int(row.n), int(row.awaiting), row.first_id, row.last_id)
