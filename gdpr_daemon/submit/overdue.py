"""The daily overdue report: requests past their GDPR deadline, logged once a day.

:func:`log_overdue` is meant for a scheduler job that runs often (hourly, and once at
start-up): the database lets only the first call of each UTC day, across every replica
and restart, write the log line.  Every call refreshes the overdue gauge.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from gdpr_daemon import metrics
from gdpr_daemon.db.deadlines import claim_daily, overdue_report
from gdpr_daemon.logs import get_logger

__all__ = ["DAILY_KEY", "log_overdue"]

log = get_logger(__name__)

DAILY_KEY = "overdue_logged_on"  # in gdpr_daemon_settings: the UTC day of the last report
LOGGED_IDS = 50


async def log_overdue(engine: AsyncEngine, *, force: bool = False) -> int | None:
    """Log the overdue requests if no process has today; the count, or None when skipped.

    ``force`` logs regardless of the day (for a person asking, or a test).
    """
    report = await overdue_report(engine, sample=LOGGED_IDS)
    metrics.REQUESTS_OVERDUE.set(report.count)
    if not force and not await claim_daily(engine, DAILY_KEY):
        return None
    if report.count == 0:
        log.info("requests_overdue", count=0)
        return 0
    log.warning(
        "requests_overdue",
        count=report.count,
        by_status=report.by_status,
        oldest_due_at=report.oldest_due_at.isoformat() if report.oldest_due_at else None,
        request_ids=[r["id"] for r in report.sample],
        hint="see them with: gdpr-daemon requests list --overdue",
    )
    return report.count
