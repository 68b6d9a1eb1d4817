"""Bulk insert of checked requests: COPY into a temporary table, then one INSERT ... SELECT.

One statement inserts every row, so the insert triggers do their per-statement work once
(one history INSERT of all rows, one NOTIFY) and 100,000 rows take seconds.  Everything
runs in the caller's transaction: all or nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gdpr_daemon.db.requests import NewRequest

__all__ = ["BulkResult", "bulk_insert", "existing_refs"]

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


async def existing_refs(conn: AsyncConnection, refs: Iterable[str]) -> dict[str, int]:
    """Which of ``refs`` are in the table already, with the id of the request holding each."""
    wanted = list(refs)
    if not wanted:
        return {}
    rows = await conn.execute(
        text(
            "SELECT external_ref, id FROM gdpr_requests WHERE external_ref = ANY(CAST(:refs AS text[]))"
        ),
        {"refs": wanted},
    )
    return {r[0]: int(r[1]) for r in rows}


async def bulk_insert(conn: AsyncConnection, requests: Sequence[NewRequest]) -> BulkResult:
    """Insert every request in the caller's transaction, in order."""
    if not requests:
        return BulkResult(0, 0, None, None)
    # Created through SQLAlchemy first, so the transaction has begun before COPY uses the
    # driver's connection directly.
    await conn.execute(_CREATE)
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    records = (
        (n, r.request_type, r.service_id, r.table_name, r.record_id, r.field, r.value, r.comment,
         r.external_ref, r.received_at, r.requested_by)
        for n, r in enumerate(requests)
    )  # fmt: skip
    await driver.copy_records_to_table("gdpr_import", records=records, columns=_COLUMNS)
    row = (await conn.execute(_INSERT)).one()
    await conn.execute(text("DROP TABLE gdpr_import"))
    return BulkResult(int(row.n), int(row.awaiting), row.first_id, row.last_id)
