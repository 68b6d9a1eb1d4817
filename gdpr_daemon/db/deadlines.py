"""Deadlines (GDPR Art. 12(3)): the one extension, and what is overdue.

``due_at`` itself is computed by the database at insert (``gdpr_due_at``, migration 0001):
one calendar month from receipt as Regulation 1182/71 counts it, moved off weekends and
the days in ``gdpr_holidays``.  An extension (``gdpr_extend_deadline``, migration 0003)
recomputes it as ``gdpr_due_at(received_at, 1 + months)``; a trigger keeps the first
deadline in ``original_due_at`` and refuses a second extension, even one made with plain SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gdpr_daemon.db.requests import OPEN_SQL, call_function

__all__ = ["Extension", "OverdueReport", "claim_daily", "extend_deadline", "overdue_report"]


@dataclass(frozen=True, slots=True)
class Extension:
    request_id: int
    original_due_at: datetime
    due_at: datetime
    months: int


async def extend_deadline(
    engine: AsyncEngine, request_id: int, *, months: int, reason: str | None, actor: str
) -> Extension:
    """Extend the deadline once by ``months`` (1 or 2) further months; the reason goes into the history.

    Refused (RequestError) when extended already, past the deadline, finished, or without
    a one-line reason: see ``gdpr_extend_deadline`` in migration 0003.
    """
    row = await call_function(
        engine,
        "SELECT first_due_at, new_due_at FROM gdpr_extend_deadline(:id, :months, :reason, :actor)",
        {"id": request_id, "months": months, "reason": reason, "actor": actor},
    )
    return Extension(request_id, row.first_due_at, row.new_due_at, months)


@dataclass(frozen=True, slots=True)
class OverdueReport:
    count: int
    oldest_due_at: datetime | None
    by_status: dict[str, int]
    sample: list[dict[str, Any]]  # the most overdue, without personal data


async def overdue_report(engine: AsyncEngine, *, sample: int = 50) -> OverdueReport:
    """Open requests past their deadline (as `requests list --overdue`), most overdue first."""
    async with engine.connect() as conn:
        counts = (
            await conn.execute(
                text(f"SELECT status, count(*) AS n, min(due_at) AS oldest FROM gdpr_requests "  # noqa: S608
                     f"WHERE due_at < now() AND {OPEN_SQL} GROUP BY status")  # fmt: skip
            )
        ).all()
        rows = await conn.execute(
            text(
                "SELECT id, request_type, service_id, status, due_at, external_ref FROM gdpr_requests "  # noqa: S608
                f"WHERE due_at < now() AND {OPEN_SQL} ORDER BY due_at, id LIMIT :n"
            ),
            {"n": sample},
        )
        listed = [dict(r._mapping) for r in rows]
    by_status = {r.status: int(r.n) for r in counts}
    oldest = min((r.oldest for r in counts), default=None)
    return OverdueReport(sum(by_status.values()), oldest, by_status, listed)


async def claim_daily(engine: AsyncEngine, key: str, day: date | None = None) -> bool:
    """True for the first caller of the (UTC) day, across every replica and restart."""
    async with engine.begin() as conn:
        claimed = (
            await conn.execute(
                text(
                    "INSERT INTO gdpr_daemon_settings (key, value) "
                    "VALUES (:key, to_jsonb(coalesce(CAST(:day AS date), (now() AT TIME ZONE 'UTC')::date)::text)) "
                    "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now() "
                    "WHERE gdpr_daemon_settings.value IS DISTINCT FROM EXCLUDED.value RETURNING key"
                ),
                {"key": key, "day": day},
            )
        ).first()
    return claimed is not None
