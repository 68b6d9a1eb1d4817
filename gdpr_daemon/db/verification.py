"""The database side of verifying erasures in the backups: what to verify, and the counts.

No schema of its own: a verification is a row of the request's history
(``gdpr_request_log``, written by :func:`gdpr_daemon.db.requests.record_verification`),
from the submitted status to itself, whose detail begins ``verified: `` or ``still present
in backup ``.  A request's verification state is its latest such row, found through the
history's ``(request_id, id)`` index.

Reading a request for verification never selects the rectify value, only its SHA-256;
a request whose record id retention purged is read with the id's SHA-256 instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gdpr_daemon.verify.verifier import STILL_PRESENT_PREFIX, VERIFIED_PREFIX, VerifyTarget

__all__ = ["VERIFY_LOCK", "DueRequest", "VerificationCounts", "due_requests", "targets", "verification_counts",
           "verify_lock"]  # fmt: skip

#: pg_try_advisory_lock key of the daemon's verification job ("gdprvf"): one replica at a time.
VERIFY_LOCK = 0x6764_7072_7666

# The latest verification row of request r (a LATERAL subquery).
_LATEST = f"""
    SELECT l.detail, l.at FROM gdpr_request_log l
    WHERE l.request_id = r.id
      AND (starts_with(l.detail, '{VERIFIED_PREFIX}') OR starts_with(l.detail, '{STILL_PRESENT_PREFIX}'))
    ORDER BY l.id DESC LIMIT 1
"""  # noqa: S608 - fixed fragments

_TARGETS = text("""
SELECT id, request_type, service_id, table_name, status, submitted_at,
       CASE WHEN purged_at IS NULL THEN record_id END AS record_id,
       CASE WHEN purged_at IS NOT NULL THEN record_id_sha256 END AS record_id_sha256,
       field,
       coalesce(value_sha256, encode(sha256(convert_to(value, 'UTF8')), 'hex')) AS value_sha256
FROM gdpr_requests WHERE id = ANY(CAST(:ids AS bigint[]))
""")

_DUE = text(f"""
SELECT r.id, v.detail
FROM gdpr_requests r
LEFT JOIN LATERAL ({_LATEST}) v ON TRUE
WHERE r.status = 'submitted' AND r.submitted_at < now() - make_interval(secs => :after)
  AND (v.detail IS NULL OR NOT starts_with(v.detail, '{VERIFIED_PREFIX}'))
ORDER BY v.at NULLS FIRST, r.submitted_at, r.id
LIMIT :limit
""")  # noqa: S608 - fixed fragments

_COUNTS = f"""
SELECT count(*) FILTER (WHERE starts_with(v.detail, '{VERIFIED_PREFIX}')) AS verified,
       count(*) FILTER (WHERE starts_with(v.detail, '{STILL_PRESENT_PREFIX}')) AS still_present
FROM gdpr_requests r
CROSS JOIN LATERAL ({_LATEST}) v
WHERE r.status = 'submitted'
"""  # noqa: S608 - fixed fragments


@dataclass(frozen=True, slots=True)
class DueRequest:
    id: int
    last_detail: str | None  # its latest "still present ..." sentence, if any


@dataclass(frozen=True, slots=True)
class VerificationCounts:
    verified: int  # submitted requests whose latest verification found the erasure
    still_present: int  # submitted requests whose latest verification found the old data


async def targets(engine: AsyncEngine, ids: Sequence[int]) -> dict[int, VerifyTarget]:
    """The requests ``ids`` as verification reads them (missing ids are left out)."""
    async with engine.connect() as conn:
        rows = await conn.execute(_TARGETS, {"ids": list(ids)})
        return {int(r.id): VerifyTarget(**r._mapping) for r in rows}


async def due_requests(engine: AsyncEngine, *, after_hours: float, limit: int) -> list[DueRequest]:
    """Submitted requests older than ``after_hours`` not yet verified: never checked first."""
    async with engine.connect() as conn:
        rows = await conn.execute(_DUE, {"after": after_hours * 3600.0, "limit": limit})
        return [DueRequest(int(r.id), r.detail) for r in rows]


async def verification_counts(
    conn: AsyncConnection, *, since: datetime | None = None, until: datetime | None = None
) -> VerificationCounts:
    """Verified and still-present counts of submitted requests (received in [since, until) if given)."""
    sql, params = _COUNTS, {}
    if since is not None and until is not None:
        sql += " AND r.received_at >= :since AND r.received_at < :until"
        params = {"since": since, "until": until}
    row = (await conn.execute(text(sql), params)).one()
    return VerificationCounts(int(row.verified), int(row.still_present))


@asynccontextmanager
async def verify_lock(engine: AsyncEngine) -> AsyncIterator[bool]:
    """Hold the verification job's advisory lock (True), or yield False when another process has it.

    A session-level lock, so it needs a direct connection (not a transaction-mode pooler).
    """
    async with engine.connect() as conn:
        locked = bool((await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": VERIFY_LOCK})).scalar())
        await conn.commit()
        try:
            yield locked
        except BaseException:
            if locked:
                await conn.invalidate()  # closing the session surely releases its lock
            raise
        if locked:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": VERIFY_LOCK})
            await conn.commit()
