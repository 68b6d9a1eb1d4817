"""`gdpr-daemon status`: the queue, the deadlines and the event history at a glance.

For the DPO at the start of the day and for the platform team after an alert: what is
waiting, what needs a person, what is late, whether replicas are working and whether the
event history is being pulled.  Read-only; it needs the database, not the API.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from gdpr_daemon.commands.common import Needs

if TYPE_CHECKING:
    from gdpr_daemon.db.stats import StatusFigures
    from gdpr_daemon.runtime import Runtime

EXIT_OK = 0
SOON_DAYS = 7


def _ago(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "never"
    seconds = max((now - then).total_seconds(), 0.0)
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if unit == 'day' and n != 1 else ''} ago"
    return f"{int(seconds)} s ago"


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ")


def as_dict(f: StatusFigures, unconfirmed_after_hours: float) -> dict[str, Any]:
    """The figures for scripts (``--format json``)."""
    q, cursor = f.snapshot.queue, f.snapshot.cursor
    return {
        "requests": q.by_status,
        "pending_due_now": f.due_now,
        "oldest_pending_age_seconds": round(q.oldest_pending_age, 1),
        "processes_holding_claims": f.claimers,
        "submitted_unconfirmed": f.unconfirmed,
        "unconfirmed_after_hours": unconfirmed_after_hours,
        "overdue": q.overdue,
        f"due_within_{SOON_DAYS}_days": f.due_soon,
        "next_deadline": f.next_deadline,
        "event_cursor": None if cursor is None else cursor.last_event_id,
        "event_cursor_moved_at": None if cursor is None else cursor.updated_at,
        "submitted_verified": f.verified,
        "submitted_still_present": f.still_present,
    }


def as_text(f: StatusFigures, unconfirmed_after_hours: float, now: datetime) -> str:
    """The figures for a person, with what to do next where something needs doing."""
    q, cursor = f.snapshot.queue, f.snapshot.cursor
    n = q.by_status
    oldest = _ago(now - timedelta(seconds=q.oldest_pending_age), now)
    notes = {  # shown beside a status that has requests
        "awaiting_approval": "waiting for a second person: `gdpr-daemon requests approve ID`",
        "pending": f"{f.due_now:,} due now, {n['pending'] - f.due_now:,} waiting for a retry; "
        f"the oldest entered {oldest}",
        "in_flight": f"held by {f.claimers} daemon process{'es' if f.claimers != 1 else ''}",
        "failed": "need a decision: `gdpr-daemon requests show ID`, then `retry ID` or `cancel ID`",
        "rejected": "need correcting: `gdpr-daemon requests show ID` says what is wrong",
    }
    if f.unconfirmed:
        notes["submitted"] = (f"{f.unconfirmed:,} without a confirming account event after "
                              f"{unconfirmed_after_hours:g} h: `gdpr-daemon requests list --unconfirmed`")  # fmt: skip
    width = max(len(f"{v:,}") for v in n.values())
    lines = [f"requests: {sum(n.values()):,}"]
    for status, count in n.items():
        note = notes.get(status, "") if count else ""
        lines.append(f"  {status:<17} {count:>{width},}" + (f"   {note}" if note else ""))
    deadline = f"next deadline {_when(f.next_deadline)}" if f.next_deadline else "no open deadline ahead"
    overdue = (f"{q.overdue:,} overdue (`gdpr-daemon requests list --overdue`)" if q.overdue else "none overdue")
    lines.append(f"deadlines: {overdue}; {f.due_soon:,} due within {SOON_DAYS} days; {deadline}")
    if cursor is None or cursor.last_event_id is None:
        lines.append("events: none pulled yet (`gdpr-daemon events pull`, or a running daemon, pulls them)")
    else:
        lines.append(f"events: stored up to event {cursor.last_event_id:,}; the cursor last moved "
                     f"{_ago(cursor.updated_at, now)}"
                     + (f" ({_when(cursor.updated_at)})" if cursor.updated_at else ""))  # fmt: skip
    lines.append(_backups_line(f))
    return "\n".join(lines)


def _backups_line(f: StatusFigures) -> str:
    """How many submitted requests a check of a later backup proved (``requests verify``)."""
    if not f.verified and not f.still_present:
        return ("backups: no erasure checked in a backup yet (`gdpr-daemon requests verify ID`, or the "
                "daemon's verify_after_hours)")  # fmt: skip
    line = (f"backups: {f.verified:,} submitted request{'s' if f.verified != 1 else ''} verified in a backup "
            "completed after submission")  # fmt: skip
    if f.still_present:
        line += (f"; {f.still_present:,} still present in the latest backup checked "
                 "(`gdpr-daemon requests verify ID` again after the next backup)")  # fmt: skip
    return line


async def cmd_status(args: argparse.Namespace, rt: Runtime) -> int:
    from gdpr_daemon import render
    from gdpr_daemon.db.stats import status_figures

    hours = rt.settings.events_unconfirmed_after_hours
    figures = await status_figures(rt.engine, unconfirmed_after_hours=hours, soon_days=SOON_DAYS)
    if args.format == "json":
        print(render.to_json(as_dict(figures, hours)))
    else:
        print(as_text(figures, hours, datetime.now(UTC)))
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser(
        "status",
        help="the queue, the deadlines and the event history at a glance",
        description="Requests by status with what needs a person, deadlines (overdue, due within "
        f"{SOON_DAYS} days, the next one), the daemon processes holding claims, how far the "
        "account event history has been pulled, and how many submitted requests a check of a later backup "
        "proved (`requests verify`). Read-only; needs the database, not the API.",
    )
    s.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    s.set_defaults(func=cmd_status, needs=Needs())
