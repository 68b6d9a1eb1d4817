"""Configuration the database itself must know: four eyes, public holidays, retention floors.

Intake tools insert rows without going through the daemon, so the insert trigger reads
``require_approval`` from ``gdpr_daemon_settings`` and the deadline function reads
``gdpr_holidays``.  The daemon writes both from its configuration at start-up
(``authoritative``: it may switch four eyes off and remove holidays).  The DPO's commands
write them too, so four eyes works before the daemon ever ran, but only in the safe
direction: a command run with a configuration lacking these keys never switches four
eyes off nor removes a holiday.

The retention floors (``retention_days``, ``retention_history_days``) are what the
database's purge functions keep at least, whatever period a caller asks for (migration
0005).  The database lets only the schema owner shorten one: ``gdpr-daemon migrate``
(run as the owner) writes the configured values, the daemon writes them too and learns
when the database kept a longer floor than its configuration asks for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "IntakeSettingsWritten",
    "RetentionFloors",
    "read_require_approval",
    "write_intake_settings",
    "write_retention_floors",
]

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


@dataclass(frozen=True, slots=True)
class RetentionFloors:
    """The floors the database keeps after a write, and which configured ones it refused."""

    retention_days: int
    retention_history_days: int
    kept: tuple[str, ...] = ()  # keys whose shorter configured value only the owner may write

    def describe_kept(self, configured: dict[str, int]) -> str:
        def days(n: int) -> str:
            return "forever" if n == 0 else f"{n} days"

        now = {"retention_days": self.retention_days, "retention_history_days": self.retention_history_days}
        return "; ".join(f"{k} stays {days(now[k])} (configured: {days(configured[k])})" for k in self.kept)


_FLOOR_KEYS = ("retention_days", "retention_history_days")
_READ_FLOORS = text("SELECT key, value #>> '{}' FROM gdpr_daemon_settings WHERE key = ANY(CAST(:keys AS text[]))")
INSUFFICIENT_PRIVILEGE = "42501"


def _sqlstate(exc: BaseException) -> str | None:
    seen: BaseException | None = exc
    while seen is not None:
        state = getattr(seen, "sqlstate", None)
        if state:
            return str(state)
        seen = getattr(seen, "orig", None) or seen.__cause__
    return None


async def write_retention_floors(engine: AsyncEngine, *, retention_days: int, history_days: int) -> RetentionFloors:
    """Write the configured retention periods as the database's floors, each in its own transaction.

    A login that is not the schema owner may raise a floor but not shorten it: such a
    refusal is not an error here, the key is named in ``kept``.
    """
    kept: list[str] = []
    for key, days in zip(_FLOOR_KEYS, (retention_days, history_days), strict=True):
        try:
            async with engine.begin() as conn:
                await conn.execute(_UPSERT, {"key": key, "value": str(int(days))})
        except DBAPIError as exc:
            if _sqlstate(exc) != INSUFFICIENT_PRIVILEGE:
                raise
            kept.append(key)
    async with engine.connect() as conn:
        now = {k: int(v) for k, v in await conn.execute(_READ_FLOORS, {"keys": list(_FLOOR_KEYS)})}
    return RetentionFloors(now.get("retention_days", retention_days), now.get("retention_history_days", history_days),
                           tuple(kept))  # fmt: skip
