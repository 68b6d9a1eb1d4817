"""The daemon's periodic retention purge: one call the scheduler makes, which never raises.

The SQL is in ``db/integrity.py``; this only applies the configured periods, logs what was
purged (counts, never contents) and rides out a database that is away.  Before each purge
it writes the periods as the database's retention floors (``db/intake_settings.py``): a
daemon login may lengthen them, and learns (a warning) when the database keeps a longer
floor than its configuration asks for, which only the schema owner can shorten.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from gdpr_daemon.config import Settings
from gdpr_daemon.db.intake_settings import write_retention_floors
from gdpr_daemon.db.integrity import PurgeResult, purge
from gdpr_daemon.logs import get_logger

log = get_logger(__name__)


async def run_purge(engine: AsyncEngine, settings: Settings, *, actor: str) -> PurgeResult | None:
    """Apply retention_days and retention_history_days once; None if the database failed."""
    from gdpr_daemon.errors import db_errors

    configured = {"retention_days": settings.retention_days, "retention_history_days": settings.retention_history_days}
    try:
        floors = await write_retention_floors(
            engine, retention_days=settings.retention_days, history_days=settings.retention_history_days
        )
        if floors.kept:
            log.warning("retention_floor_kept", floors=floors.describe_kept(configured),
                        hint="only the schema owner shortens a retention period: run `gdpr-daemon migrate` "
                        "as the owner with this configuration")  # fmt: skip
    except db_errors() as exc:
        log.warning("retention_purge_failed", error=type(exc).__name__,
                    hint="the next run tries again; `gdpr-daemon purge` runs it by hand")  # fmt: skip
        return None
    if settings.retention_days == 0 and settings.retention_history_days == 0:
        return None
    try:
        result = await purge(
            engine,
            retention_days=settings.retention_days,
            history_days=settings.retention_history_days,
            actor=actor,
        )
    except db_errors() as exc:
        log.warning("retention_purge_failed", error=type(exc).__name__,
                    hint="the next run tries again; `gdpr-daemon purge` runs it by hand")  # fmt: skip
        return None
    if result.requests_purged or result.history_deleted or result.events_deleted or result.events_scrubbed:
        log.info("retention_purged", requests=result.requests_purged, history_rows=result.history_deleted,
                 events=result.events_deleted, events_scrubbed=result.events_scrubbed,
                 retention_days=settings.retention_days,
                 history_days=settings.retention_history_days)  # fmt: skip
    return result
