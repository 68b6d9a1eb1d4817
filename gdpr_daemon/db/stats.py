"""Read-only figures about the queue and the event cursor, for ``/metrics``.

One connection, one scan of ``gdpr_requests`` grouped by status (the overdue count uses
the same definition as ``gdpr-daemon requests list --overdue``), and the event cursor
when its table exists: ``event_cursors`` comes with a later migration than the queue,
so a database at an older revision simply reports no cursor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gdpr_daemon.db.verification import verification_counts
from gdpr_daemon.rules import CANCELLED, PENDING, STATUSES, SUBMITTED

__all__ = ["CursorStats", "QueueStats", "Snapshot", "StatusFigures", "snapshot", "status_figures"]

# Statuses whose requests still need something done before their deadline.
_NOT_OPEN = (SUBMITTED, CANCELLED)

_BY_STATUS = text("""
SELECT status,
       count(*) AS n,
       count(*) FILTER (WHERE due_at < now()) AS overdue,
       EXTRACT(epoch FROM now() - min(created_at))::float8 AS oldest_age,
       count(*) FILTER (WHERE due_at >= now() AND due_at < now() + make_interval(days => :soon_days)) AS due_soon,
       count(*) FILTER (WHERE confirmed_at IS NULL
                        AND submitted_at < now() - make_interval(secs => :unconfirmed_after)) AS unconfirmed,
       to_regclass('event_cursors') IS NOT NULL AS has_cursors
FROM gdpr_requests
GROUP BY status
""")

_HAS_CURSORS = text("SELECT to_regclass('event_cursors') IS NOT NULL")

# One deployment serves one account (README, "Running it in production"), so max() is that account's row.
_CURSOR = text("SELECT max(last_event_id) AS last_event_id, max(updated_at) AS updated_at FROM event_cursors")


@dataclass(frozen=True, slots=True)
class QueueStats:
    by_status: dict[str, int] = field(default_factory=dict)  # every known status, 0 when absent
    pending: int = 0
    oldest_pending_age: float = 0.0  # seconds; 0 when nothing is pending
    overdue: int = 0
    due_soon: int = 0  # open, due within ``soon_days``, not yet overdue
    unconfirmed: int = 0  # submitted longer ago than the bound, no confirming event yet


@dataclass(frozen=True, slots=True)
class CursorStats:
    last_event_id: int | None
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    queue: QueueStats
    cursor: CursorStats | None  # None when the event_cursors table does not exist yet


async def snapshot(engine: AsyncEngine, *, unconfirmed_after_hours: float = 24.0, soon_days: int = 7) -> Snapshot:
    """The queue's figures and the event cursor, read in one short connection."""
    async with engine.connect() as conn:
        return await _snapshot(conn, unconfirmed_after_hours=unconfirmed_after_hours, soon_days=soon_days)


async def _snapshot(conn: AsyncConnection, *, unconfirmed_after_hours: float = 24.0, soon_days: int = 7) -> Snapshot:
    params = {"unconfirmed_after": unconfirmed_after_hours * 3600, "soon_days": soon_days}
    rows = (await conn.execute(_BY_STATUS, params)).all()
    if rows:
        has_cursors = bool(rows[0].has_cursors)
    else:
        has_cursors = bool((await conn.execute(_HAS_CURSORS)).scalar_one())
    cursor = None
    if has_cursors:
        row = (await conn.execute(_CURSOR)).one()
        cursor = CursorStats(last_event_id=row.last_event_id, updated_at=row.updated_at)
    by_status = dict.fromkeys(STATUSES, 0)
    oldest = 0.0
    overdue = due_soon = unconfirmed = 0
    for r in rows:
        by_status[r.status] = int(r.n)
        if r.status not in _NOT_OPEN:
            overdue += int(r.overdue)
            due_soon += int(r.due_soon)
        if r.status == SUBMITTED:
            unconfirmed = int(r.unconfirmed)
        if r.status == PENDING:
            oldest = max(float(r.oldest_age or 0.0), 0.0)
    queue = QueueStats(by_status=by_status, pending=by_status[PENDING], oldest_pending_age=oldest, overdue=overdue,
                       due_soon=due_soon, unconfirmed=unconfirmed)  # fmt: skip
    return Snapshot(queue=queue, cursor=cursor)


# What `gdpr-daemon status` adds to the snapshot: one more scan, for a person, not a scrape.
_STATUS = text("""
SELECT count(*) FILTER (WHERE status = 'pending' AND next_attempt_at <= now()) AS due_now,
       count(DISTINCT lease_owner) FILTER (WHERE status = 'in_flight') AS claimers,
       count(*) FILTER (WHERE status = 'submitted' AND confirmed_at IS NULL
                        AND submitted_at < now() - make_interval(secs => :unconfirmed_after)) AS unconfirmed,
       count(*) FILTER (WHERE status NOT IN ('submitted', 'cancelled')
                        AND due_at >= now() AND due_at < now() + make_interval(days => :soon_days)) AS due_soon,
       min(due_at) FILTER (WHERE status NOT IN ('submitted', 'cancelled') AND due_at >= now()) AS next_deadline
FROM gdpr_requests
""")


@dataclass(frozen=True, slots=True)
class StatusFigures:
    snapshot: Snapshot
    due_now: int  # pending and due (not waiting for a retry)
    claimers: int  # processes holding claims now
    unconfirmed: int  # submitted longer ago than the bound, no confirming event yet
    due_soon: int  # open, due within ``soon_days``, not yet overdue
    next_deadline: datetime | None  # the earliest deadline of an open request not yet overdue
    verified: int = 0  # submitted, and the latest check of a backup found the erasure (`requests verify`)
    still_present: int = 0  # submitted, and the latest check of a backup found the old data still there


async def status_figures(engine: AsyncEngine, *, unconfirmed_after_hours: float, soon_days: int = 7) -> StatusFigures:
    """The snapshot and the figures a person asks for at a glance."""
    async with engine.connect() as conn:
        snap = await _snapshot(conn, unconfirmed_after_hours=unconfirmed_after_hours, soon_days=soon_days)
        row = (
            await conn.execute(
                _STATUS, {"unconfirmed_after": unconfirmed_after_hours * 3600, "soon_days": soon_days}
            )
        ).one()
        checked = await verification_counts(conn)
    return StatusFigures(
        snapshot=snap,
        due_now=int(row.due_now),
        claimers=int(row.claimers),
        unconfirmed=int(row.unconfirmed),
        due_soon=int(row.due_soon),
        next_deadline=row.next_deadline,
        verified=checked.verified,
        still_present=checked.still_present,
    )
