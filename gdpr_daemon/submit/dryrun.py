"""``gdpr-daemon run --once --dry-run``: what the daemon would do now, changing nothing.

Every request waiting to be submitted (pending, or awaiting approval) is checked as the
worker checks it before a submission: the same pure checks (:func:`gdpr_daemon.rules.submission_problem`)
and the account's service list, fetched once from the API.  Nothing is claimed, written
or submitted: the requests are read in a READ ONLY transaction and the only API call is
the service list.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from gdpr_daemon import render
from gdpr_daemon.db.queue import ClaimedRequest
from gdpr_daemon.db.requests import pending_for_dry_run
from gdpr_daemon.ownbackup import Service
from gdpr_daemon.rules import AWAITING_APPROVAL, submission_problem

__all__ = ["DryRunReport", "Verdict", "dry_run", "render_report"]

SUBMIT, LATER, APPROVAL, REJECT = "submit", "later", "approval", "reject"
SHOWN_ROWS = 50


@dataclass(frozen=True, slots=True)
class Verdict:
    request_id: int
    request_type: str
    service_id: int
    table_name: str
    external_ref: str | None
    action: str  # submit | later | approval | reject
    reason: str | None = None
    not_before: datetime | None = None


@dataclass(slots=True)
class DryRunReport:
    services: list[Service]
    verdicts: list[Verdict] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(1 for v in self.verdicts if v.action == action)


_PLACEHOLDER = "(held)"  # the rectify value is never read; the checks only ask whether there is one


def _claimed(row: dict[str, Any]) -> ClaimedRequest:
    return ClaimedRequest(
        id=row["id"], request_type=row["request_type"], service_id=row["service_id"],
        table_name=row["table_name"], record_id=row["record_id"], field=row["field"],
        value=_PLACEHOLDER if row["has_value"] else None, comment=row["comment"],
        external_ref=row["external_ref"], attempts=row["attempts"],
    )  # fmt: skip


def verdict(row: dict[str, Any], known: frozenset[int]) -> Verdict:
    """What the daemon would do with one waiting request (pure)."""
    base = {
        "request_id": row["id"], "request_type": row["request_type"], "service_id": row["service_id"],
        "table_name": row["table_name"], "external_ref": row["external_ref"],
    }  # fmt: skip
    reason = submission_problem(_claimed(row))
    if reason is None and row["service_id"] not in known:
        reason = (
            f"Service {row['service_id']} is not one of the OwnBackup account's services; "
            "correct service_id (see `gdpr-daemon services`) and retry the request."
        )
    if reason:
        return Verdict(**base, action=REJECT, reason=reason)
    if row["status"] == AWAITING_APPROVAL:
        return Verdict(**base, action=APPROVAL)
    if row["later"]:
        return Verdict(**base, action=LATER, not_before=row["next_attempt_at"])
    return Verdict(**base, action=SUBMIT)


async def dry_run(engine: AsyncEngine, list_services: Callable[[], Awaitable[Sequence[Service]]]) -> DryRunReport:
    services = sorted(await list_services(), key=lambda s: s.id)
    known = frozenset(s.id for s in services)
    rows = await pending_for_dry_run(engine)
    return DryRunReport(services, [verdict(r, known) for r in rows])


def _service_note(s: Service) -> str:
    if s.archived or s.enabled is False:
        return f"{'archived' if s.archived else 'disabled'}: still submitted to, its backups hold the data"
    return ""


def render_report(report: DryRunReport, *, shown: int = SHOWN_ROWS) -> str:
    """The report as a DPO reads it."""
    per_service = Counter(v.service_id for v in report.verdicts)
    lines = ["dry run: nothing was claimed, submitted or changed.", "", "services of the OwnBackup account:"]
    lines.append(render.table(
        [{"id": s.id, "name": s.displayed_name, "status": s.status, "enabled": s.enabled,
          "waiting": per_service.get(s.id, 0), "note": _service_note(s)} for s in report.services],
        [("id", "SERVICE"), ("name", "NAME"), ("status", "STATUS"), ("enabled", "ENABLED"),
         ("waiting", "REQUESTS WAITING"), ("note", "NOTE")], max_width=70,
    ) if report.services else "  (none)")  # fmt: skip
    sections = (
        (SUBMIT, "would be submitted now"),
        (REJECT, "would be rejected"),
        (LATER, "wait for a retry (submitted when their next attempt is due)"),
        (APPROVAL, "await approval (submitted only after `gdpr-daemon requests approve ID`)"),
    )
    for action, title in sections:
        group = [v for v in report.verdicts if v.action == action]
        if not group:
            continue
        lines += ["", f"{len(group)} request{'s' if len(group) != 1 else ''} {title}:"]
        cols = [("request_id", "ID"), ("request_type", "TYPE"), ("service_id", "SERVICE"),
                ("table_name", "TABLE"), ("external_ref", "REF")]  # fmt: skip
        if action == REJECT:
            cols.append(("reason", "REASON"))
        elif action == LATER:
            cols.append(("not_before", "NEXT ATTEMPT"))
        limit = len(group) if action == REJECT else shown
        rows = [{k: getattr(v, k) for k, _ in cols} for v in group[:limit]]
        lines.append(render.table(rows, cols, max_width=110))
        if len(group) > limit:
            lines.append(f"... and {len(group) - limit} more (gdpr-daemon requests list --status pending --limit 0)")
    lines += ["", "summary: " + ", ".join(f"{report.count(a)} {t.split(' (')[0]}" for a, t in sections)]
    return "\n".join(lines)
