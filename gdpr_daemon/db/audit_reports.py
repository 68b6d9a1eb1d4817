"""The report queries: auditors' view of audit_events and the DPO's view of gdpr_requests.

Every report reads in one read-only REPEATABLE READ transaction (:func:`snapshot`), so its
summary, charts and rows describe the same moment even while the daemon works.  Rows
come through a server-side cursor in batches (:func:`stream_audit_events`,
:func:`stream_requests`): a year of events exports without being held in memory.  Times
leave the database as ISO 8601 UTC text.  No query here selects a rectify ``value`` (nor
``comment``, free text that may hold personal data).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = [
    "AUDIT_COLUMNS",
    "REQUEST_COLUMNS",
    "AuditFilters",
    "Period",
    "audit_summary",
    "days_histogram",
    "requests_summary",
    "snapshot",
    "stream_attention",
    "stream_audit_events",
    "stream_requests",
    "weekly_counts",
]

BATCH = 2000
#: Whole days from receipt to submission; the last bucket holds this many days and more.
HISTOGRAM_DAYS = 31


def _iso(column: str) -> str:
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"""


AUDIT_COLUMNS = ("event_id", "created_at", "key", "source", "user_email", "user_id", "ip_address",
                 "service_id", "parameters")  # fmt: skip
REQUEST_COLUMNS = ("request_id", "external_ref", "request_type", "service_id", "received_at", "due_at",
                   "submitted_at", "confirmed_at", "ownbackup_request_id", "attempts", "status",
                   "days_to_submit", "overdue")  # fmt: skip


@dataclass(frozen=True, slots=True)
class AuditFilters:
    """``since`` inclusive, ``until`` exclusive; ``key`` a glob (``gdpr.*``) or a key."""

    since: datetime
    until: datetime
    key: str | None = None
    user_email: str | None = None
    service_id: int | None = None

    def where(self) -> tuple[str, dict[str, Any]]:
        clauses = ["created_at >= :since", "created_at < :until"]
        params: dict[str, Any] = {"since": self.since, "until": self.until}
        if self.key:
            if any(c in self.key for c in "*?"):
                escaped = self.key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                clauses.append("key LIKE :key ESCAPE '\\'")
                params["key"] = escaped.replace("*", "%").replace("?", "_")
            else:
                clauses.append("key = :key")
                params["key"] = self.key
        if self.user_email:
            clauses.append("lower(user_email) = lower(:user_email)")
            params["user_email"] = self.user_email
        if self.service_id is not None:
            clauses.append("service_id = :service_id")
            params["service_id"] = self.service_id
        return " AND ".join(clauses), params


@dataclass(frozen=True, slots=True)
class Period:
    """Requests received in [since, until); ``as_of`` is the moment overdue is judged at."""

    since: datetime
    until: datetime
    as_of: datetime

    def params(self) -> dict[str, Any]:
        return {"since": self.since, "until": self.until, "as_of": self.as_of}


@asynccontextmanager
async def snapshot(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection in a read-only REPEATABLE READ transaction: one moment for a whole report."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            await conn.execute(text("SET TRANSACTION READ ONLY"))
            yield conn


async def _stream(conn: AsyncConnection, sql: str, params: dict[str, Any]) -> AsyncIterator[Sequence[Row[Any]]]:
    result = await conn.stream(text(sql).execution_options(yield_per=BATCH), params)
    try:
        async for batch in result.partitions(BATCH):
            yield batch
    finally:
        await result.close()


# ---- audit events ------------------------------------------------------------------------


async def audit_summary(conn: AsyncConnection, filters: AuditFilters) -> dict[str | None, int]:
    """Events per key in the report (its total is the sum)."""
    where, params = filters.where()
    rows = await conn.execute(
        text(f"SELECT key, count(*) FROM audit_events WHERE {where} GROUP BY key ORDER BY count(*) DESC, key"),  # noqa: S608 - fixed fragments
        params,
    )
    return {r[0]: int(r[1]) for r in rows}


async def stream_audit_events(conn: AsyncConnection, filters: AuditFilters) -> AsyncIterator[Sequence[Row[Any]]]:
    """Batches of (AUDIT_COLUMNS), oldest first; parameters as JSON text.

    A reader without access to the stored parameters (gdpr_auditor) gets them from the view
    audit_events_masked: record ids, values and comments as SHA-256 digests.
    """
    where, params = filters.where()
    can_read = text("SELECT has_column_privilege('audit_events', 'parameters', 'SELECT')")
    readable = (await conn.execute(can_read)).scalar()
    source = "audit_events" if readable else "audit_events_masked"
    sql = f"""SELECT event_id, {_iso('created_at')}, key, source, user_email, user_id, ip_address,
                     service_id, CAST(parameters AS text)
              FROM {source} WHERE {where} ORDER BY created_at, event_id"""  # noqa: S608 - fixed fragments
    async for batch in _stream(conn, sql, params):
        yield batch


# ---- requests ------------------------------------------------------------------------------

# The requests received in [since, until), with the derived figures.  Overdue: submitted
# after the deadline, or not submitted (and not cancelled) when the report was made.
_REQUESTS = """
WITH r AS (
    SELECT id, external_ref, request_type, service_id, received_at, due_at, submitted_at, confirmed_at,
           ownbackup_request_id, attempts, status,
           extract(epoch FROM submitted_at - received_at) / 86400 AS days,
           CASE WHEN submitted_at IS NOT NULL THEN submitted_at > due_at
                ELSE status <> 'cancelled' AND CAST(:as_of AS timestamptz) > due_at END AS overdue
    FROM gdpr_requests
    WHERE received_at >= :since AND received_at < :until
)
"""
_REQUEST_ROW = f"""id, external_ref, request_type, service_id, {_iso('received_at')}, {_iso('due_at')},
    {_iso('submitted_at')}, {_iso('confirmed_at')}, ownbackup_request_id, attempts, status,
    round(days, 2), overdue"""


async def requests_summary(conn: AsyncConnection, period: Period) -> dict[str, Any]:
    """Totals, counts by type, status and service, median and p95 days to submit."""
    params = period.params()
    figures = (await conn.execute(text(_REQUESTS + """
        SELECT count(*), count(*) FILTER (WHERE submitted_at IS NOT NULL),
               count(*) FILTER (WHERE confirmed_at IS NOT NULL), count(*) FILTER (WHERE overdue),
               count(*) FILTER (WHERE status = 'failed'), count(*) FILTER (WHERE overdue OR status = 'failed'),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY days),
               percentile_cont(0.95) WITHIN GROUP (ORDER BY days)
        FROM r"""), params)).one()  # noqa: S608  # fmt: skip
    groups = await conn.execute(text(_REQUESTS + """
        SELECT request_type, status, service_id, count(*) FROM r
        GROUP BY GROUPING SETS ((request_type), (status), (service_id))
        ORDER BY 1, 2, 3"""), params)  # noqa: S608  # fmt: skip
    by_type: dict[str, int] = {}
    by_status: dict[str, int] = {}
    by_service: dict[int, int] = {}
    for request_type, status, service_id, n in groups:
        if request_type is not None:
            by_type[request_type] = int(n)
        elif status is not None:
            by_status[status] = int(n)
        elif service_id is not None:
            by_service[int(service_id)] = int(n)
    total, submitted, confirmed, overdue, failed, attention, median, p95 = figures
    return {
        "requests": int(total),
        "submitted": int(submitted),
        "confirmed": int(confirmed),
        "overdue": int(overdue),
        "failed": int(failed),
        "overdue_or_failed": int(attention),
        "median_days_to_submit": None if median is None else round(float(median), 2),
        "p95_days_to_submit": None if p95 is None else round(float(p95), 2),
        "by_type": by_type,
        "by_status": by_status,
        "by_service": by_service,
    }


def stream_requests(conn: AsyncConnection, period: Period) -> AsyncIterator[Sequence[Row[Any]]]:
    """Batches of (REQUEST_COLUMNS), in order of receipt."""
    sql = _REQUESTS + f"SELECT {_REQUEST_ROW} FROM r ORDER BY received_at, id"  # noqa: S608 - fixed fragments
    return _stream(conn, sql, period.params())


def stream_attention(conn: AsyncConnection, period: Period) -> AsyncIterator[Sequence[Row[Any]]]:
    """Batches of (REQUEST_COLUMNS) of every overdue or failed request, by deadline."""
    sql = _REQUESTS + f"SELECT {_REQUEST_ROW} FROM r WHERE overdue OR status = 'failed' ORDER BY due_at, id"  # noqa: S608
    return _stream(conn, sql, period.params())


async def weekly_counts(conn: AsyncConnection, period: Period) -> list[tuple[str, int, int]]:
    """(ISO week start, received, submitted) for every week from the first to the last one with data.

    ``submitted`` counts the report's requests (received in the period) by the week they were
    submitted, which may fall after the period.
    """
    rows = await conn.execute(text(_REQUESTS + """
        , marks AS (
            SELECT date_trunc('week', received_at AT TIME ZONE 'UTC') AS week, 1 AS received, 0 AS submitted FROM r
            UNION ALL
            SELECT date_trunc('week', submitted_at AT TIME ZONE 'UTC'), 0, 1 FROM r WHERE submitted_at IS NOT NULL
        ), weeks AS (
            SELECT generate_series(min(week), max(week), interval '1 week') AS week FROM marks
        )
        SELECT to_char(w.week, 'YYYY-MM-DD'), coalesce(sum(m.received), 0), coalesce(sum(m.submitted), 0)
        FROM weeks w LEFT JOIN marks m ON m.week = w.week
        GROUP BY w.week ORDER BY w.week"""), period.params())  # noqa: S608  # fmt: skip
    return [(r[0], int(r[1]), int(r[2])) for r in rows]


async def days_histogram(conn: AsyncConnection, period: Period) -> list[tuple[int, int]]:
    """(whole days from receipt to submission, requests) for 0..HISTOGRAM_DAYS; the last is "or more"."""
    rows = await conn.execute(text(_REQUESTS + """
        SELECT b, count(r.days) FROM generate_series(0, :top) b
        LEFT JOIN r ON least(greatest(floor(r.days), 0), :top) = b
        GROUP BY b ORDER BY b"""), {**period.params(), "top": HISTOGRAM_DAYS})  # noqa: S608  # fmt: skip
    return [(int(r[0]), int(r[1])) for r in rows]
