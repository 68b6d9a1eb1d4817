"""Configuration the database itself must know: four eyes and the public holidays.

Intake tools insert rows without going through the daemon, so the insert trigger reads
``require_approval`` from ``gdpr_daemon_settings`` and the deadline function reads
``gdpr_holidays``.  The daemon writes both from its configuration at start-up
(``authoritative``: it may switch four eyes off and remove holidays).  The DPO's commands
write them too, so four eyes works before the daemon ever ran, but only in the safe
direction: a command run with a configuration lacking these keys never switches four
eyes off nor removes a holiday.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["IntakeSettingsWritten", "read_require_approval", "write_intake_settings"]

REQUIRE_APPROVAL = "require_approval"
HOLIDAY_NAME = "configured (intake_holidays)"

_UPSERT = text("""
INSERT INTO gdpr_daemon_settings (key, value) VALUES (:key, CAST(:value AS jsonb))
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
WHERE gdpr_daemon_settings.value IS DISTINCT FROM EXCLUDED.value
RETURNING key
""")

_ADD_HOLIDAYS = text("""
INSERT INTO gdpr_holidays (day, name)
SELECT d, :name FROM unnest(CAST(:days AS date[])) AS d
ON CONFLICT (day) DO NOTHING
RETURNING day
""")

_REMOVE_OTHER_HOLIDAYS = text("DELETE FROM gdpr_holidays WHERE NOT (day = ANY(CAST(:days AS date[]))) RETURNING day")


@dataclass(frozen=True, slots=True)
class IntakeSettingsWritten:
    """What changed in the database (for the caller to log)."""

    require_approval_changed: bool = False
    holidays_added: int = 0
    holidays_removed: int = 0


async def write_intake_settings(
    engine: AsyncEngine,
    *,
    require_approval: bool,
    holidays: Sequence[date] | None,
    authoritative: bool,
) -> IntakeSettingsWritten:
    """Write four eyes and the holidays; one transaction, idempotent.

    ``authoritative`` (the daemon): the database then matches the configuration exactly.
    Otherwise (a DPO's command): four eyes is only switched on, holidays only added.
    """
    changed = False
    added = removed = 0
    async with engine.begin() as conn:
        if require_approval or authoritative:
            value = "true" if require_approval else "false"
            changed = (await conn.execute(_UPSERT, {"key": REQUIRE_APPROVAL, "value": value})).first() is not None
        if holidays is not None:
            days = sorted(set(holidays))
            added = len((await conn.execute(_ADD_HOLIDAYS, {"days": days, "name": HOLIDAY_NAME})).all())
            if authoritative:
                removed = len((await conn.execute(_REMOVE_OTHER_HOLIDAYS, {"days": days})).all())
    return IntakeSettingsWritten(changed, added, removed)


async def read_require_approval(engine: AsyncEngine) -> bool:
    """Whether new requests currently wait for a second person."""
    async with engine.connect() as conn:
        value = (
            await conn.execute(
                text("SELECT value = 'true'::jsonb FROM gdpr_daemon_settings WHERE key = :key"),
                {"key": REQUIRE_APPROVAL},
            )
        ).scalar()
    return bool(value)
