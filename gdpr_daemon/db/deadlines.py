"""Deadlines (GDPR Art. 12(3)): the one extension, and what is overdue.

``due_at`` itself is computed by the database at insert (``gdpr_due_at``, migration 0001):
one calendar month from receipt as Regulation 1182/71 counts it, moved off weekends and
the days in ``gdpr_holidays``.  An extension recomputes it as ``gdpr_due_at(received_at,
1 + months)``; a trigger (migration 0003) keeps the first deadline in ``original_due_at``
and refuses a second extension, even one made with plain SQL.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gdpr_daemon.db.requests import OPEN_SQL, RequestError

__all__ = ["Extension", "OverdueReport", "claim_daily", "extend_deadline", "overdue_report"]

MAX_REASON_LENGTH = 1000
FINISHED_FOR_DEADLINE = ("submitted", "cancelled")


@dataclass(frozen=True, slots=True)
class Extension:
    request_id: int
    original_due_at: datetime
    due_at: datetime
    months: int


def _day(value: datetime) -> str:
    return value.strftime("%Y-%m-%d")


def check_reason(reason: str | None) -> str:
    """The extension's reason, or RequestError saying what is wrong with it."""
    reason = (reason or "").strip()
    if not reason:
        raise RequestError(
            "give the reason for the extension with --reason; GDPR Art. 12(3) requires telling the data subject why"
        )
    if any(unicodedata.category(ch) == "Cc" for ch in reason):
        raise RequestError("the reason contains a control character; write it on one line")
    if len(reason) > MAX_REASON_LENGTH:
        raise RequestError(f"the reason is longer than {MAX_REASON_LENGTH} characters")
    return reason


async def extend_deadline(
    engine: AsyncEngine, request_id: int, *, months: int, reason: str | None, actor: str
) -> Extension:
    """Extend the deadline once by ``months`` (1 or 2) further months; the reason goes into the history."""
    if months not in (1, 2):
        raise RequestError("a deadline can be extended by 1 or 2 further months (GDPR Art. 12(3))")
    reason = check_reason(reason)
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT status, due_at, original_due_at, due_at < now() AS passed "
                    "FROM gdpr_requests WHERE id = :id FOR UPDATE"
                ),
                {"id": request_id},
            )
        ).first()
        if row is None:
            raise RequestError(f"there is no request {request_id}")
        if row.original_due_at is not None:
            raise RequestError(
                f"the deadline of request {request_id} was extended once already (from "
                f"{_day(row.original_due_at)} to {_day(row.due_at)}); GDPR Art. 12(3) allows one extension"
            )
        if row.status in FINISHED_FOR_DEADLINE:
            raise RequestError(f"request {request_id} is {row.status}; it has no deadline left to extend")
        if row.passed:
            raise RequestError(
                f"the deadline of request {request_id} passed on {_day(row.due_at)}; GDPR Art. 12(3) allows an "
                "extension only within the first month, when the data subject is told of it"
            )
        new = (
            await conn.execute(
                text(
                    "UPDATE gdpr_requests SET due_at = gdpr_due_at(received_at, 1 + :months), "
                    "updated_at = now() WHERE id = :id RETURNING due_at, original_due_at"
                ),
                {"id": request_id, "months": months},
            )
        ).one()
        if new.original_due_at is None:  # the deadline was already as late as this (set by hand)
            raise RequestError(f"the deadline of request {request_id} is {_day(new.due_at)} already; nothing to extend")
        unit = "month" if months == 1 else "months"
        detail = (
            f"deadline extended by {months} further {unit} (GDPR Art. 12(3)) from {_day(new.original_due_at)} "
            f"to {_day(new.due_at)}: {reason}"
        )
        await conn.execute(
            text(
                "INSERT INTO gdpr_request_log (request_id, from_status, to_status, detail, actor) "
                "VALUES (:id, :status, :status, :detail, :actor)"
            ),
            {"id": request_id, "status": row.status, "detail": detail, "actor": actor},
        )
    return Extension(request_id, new.original_due_at, new.due_at, months)


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
