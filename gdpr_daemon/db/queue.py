"""The daemon's side of the request queue: claim, record, renew, release, reap.

Every statement changes request rows and writes their history rows in the same
transaction (data-modifying CTEs), so the history can never disagree with the table.
Claims are leases: the row carries this process's random token and an expiry; every
write back checks state and token together, so a process whose lease lapsed can never
overwrite the work of the one that took the row over.

Claim and reap lock rows ``FOR NO KEY UPDATE`` (they change no key): that lock does not
block the foreign-key check of a history row another transaction writes for the same
request (a late answer), which matters because history inserts take the hash chain's
lock (migration 0004) before that check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gdpr_daemon.db.tables import FAILED, PENDING, REJECTED, SUBMITTED


@dataclass(frozen=True, slots=True)
class ClaimedRequest:
    id: int
    request_type: str
    service_id: int
    table_name: str
    record_id: str
    field: str | None
    value: str | None
    comment: str | None
    external_ref: str | None
    attempts: int

    def __repr__(self) -> str:  # never show the value, even in a traceback
        return (
            f"ClaimedRequest(id={self.id}, type={self.request_type}, service_id={self.service_id},"
            f" attempt={self.attempts})"
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one attempt; ``status`` is the state the request moves to."""

    request_id: int
    status: str  # submitted | pending (retry later) | failed | rejected
    detail: str  # the history sentence (never personal data)
    ownbackup_request_id: int | None = None
    error: str | None = None  # becomes last_error
    retry_in: float = 0.0  # seconds, for status pending

    def __post_init__(self) -> None:
        assert self.status in (SUBMITTED, PENDING, FAILED, REJECTED), self.status


_CLAIM = text("""
WITH c AS (
    SELECT id FROM gdpr_requests
    WHERE status = 'pending' AND next_attempt_at <= now()
      AND NOT (service_id = ANY(CAST(:busy AS integer[])))
    ORDER BY next_attempt_at, id
    LIMIT :n
    FOR NO KEY UPDATE SKIP LOCKED
), u AS (
    UPDATE gdpr_requests r
    SET status = 'in_flight', attempts = r.attempts + 1, lease_owner = :owner,
        lease_expires_at = now() + make_interval(secs => :lease), updated_at = now()
    FROM c WHERE r.id = c.id
    RETURNING r.id, r.request_type, r.service_id, r.table_name, r.record_id, r.field, r.value,
              r.comment, r.external_ref, r.attempts
), l AS (
    INSERT INTO gdpr_request_log (request_id, from_status, to_status, detail, actor)
    SELECT id, 'pending', 'in_flight', 'claimed for attempt ' || attempts, :actor FROM u
)
SELECT * FROM u ORDER BY id
""")

_RECORD = text("""
WITH o AS (
    SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS text[]), CAST(:details AS text[]),
                         CAST(:ob_ids AS bigint[]), CAST(:errors AS text[]), CAST(:delays AS float8[]))
        AS o(id, status, detail, ob_id, error, delay)
), u AS (
    UPDATE gdpr_requests r
    SET status = o.status,
        ownbackup_request_id = coalesce(o.ob_id, r.ownbackup_request_id),
        last_error = o.error,
        submitted_at = CASE WHEN o.status = 'submitted' THEN now() ELSE r.submitted_at END,
        next_attempt_at = CASE WHEN o.status = 'pending'
                               THEN now() + make_interval(secs => o.delay) ELSE r.next_attempt_at END,
        value_sha256 = CASE WHEN o.status = 'submitted' AND r.value IS NOT NULL
                            THEN encode(sha256(convert_to(r.value, 'UTF8')), 'hex')
                            ELSE r.value_sha256 END,
        value = CASE WHEN o.status = 'submitted' AND :erase THEN NULL ELSE r.value END,
        lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
    FROM o
    WHERE r.id = o.id AND r.status = 'in_flight' AND r.lease_owner = :owner
    RETURNING r.id, o.status, o.detail
), l AS (
    INSERT INTO gdpr_request_log (request_id, from_status, to_status, detail, actor)
    SELECT id, 'in_flight', status, detail, :actor FROM u
)
SELECT id FROM u
""")

# An answer that arrives after this process lost its lease changes nothing, but the
# history must still say what the API did (it may mean the request went out twice).
_RECORD_LATE = text("""
INSERT INTO gdpr_request_log (request_id, from_status, to_status, detail, actor)
SELECT r.id, r.status, r.status,
       'answer of an attempt whose lease had expired (recorded, state unchanged): ' || o.detail, :actor
FROM unnest(CAST(:ids AS bigint[]), CAST(:details AS text[])) AS o(id, detail)
JOIN gdpr_requests r ON r.id = o.id
""")

_RENEW = text("""
UPDATE gdpr_requests SET lease_expires_at = now() + make_interval(secs => :lease)
WHERE status = 'in_flight' AND lease_owner = :owner
""")

_RELEASE = text("""
WITH u AS (
    UPDATE gdpr_requests r
    SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, updated_at = now(),
        next_attempt_at = now(),
        attempts = CASE WHEN :started THEN r.attempts ELSE greatest(r.attempts - 1, 0) END
    WHERE r.id = ANY(CAST(:ids AS bigint[])) AND r.status = 'in_flight' AND r.lease_owner = :owner
    RETURNING r.id
), l AS (
    INSERT INTO gdpr_request_log (request_id, from_status, to_status, detail, actor)
    SELECT id, 'in_flight', 'pending', :detail, :actor FROM u
)
SELECT count(*) FROM u
""")

# Only other processes' claims: this process still holds its own, expired or not (after
# a database outage longer than a lease, say), and will record or release each of them;
# reaping them would send requests whose answers it holds a second time.
_REAP = text("""
WITH x AS (
    SELECT id, lease_owner FROM gdpr_requests
    WHERE status = 'in_flight' AND lease_expires_at < now() AND lease_owner IS DISTINCT FROM :owner
    ORDER BY lease_expires_at
    LIMIT 1000
    FOR NO KEY UPDATE SKIP LOCKED
), u AS (
    UPDATE gdpr_requests r
    SET status = CASE WHEN r.attempts >= :max_attempts THEN 'failed' ELSE 'pending' END,
        last_error = CASE WHEN r.attempts >= :max_attempts
            THEN 'The outcome of attempt ' || r.attempts || ' is unknown (the process holding it stopped)'
                 || ' and no attempts are left; retry it with `gdpr-daemon requests retry ' || r.id || '`.'
            ELSE r.last_error END,
        next_attempt_at = now(), lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
    FROM x WHERE r.id = x.id
    RETURNING r.id, r.status, r.attempts, x.lease_owner
), l AS (
    INSERT INTO gdpr_request_log (request_id, from_status, to_status, detail, actor)
    SELECT id, 'in_flight', status,
           'lease of attempt ' || attempts || ' held by process ' || coalesce(lease_owner, '?')
           || ' expired: outcome unknown, '
           || CASE WHEN status = 'failed' THEN 'no attempts left' ELSE 'it will be submitted again' END,
           :actor
    FROM u
)
SELECT count(*) FROM u
""")


class QueueStore:
    """SQL of the daemon's queue; one instance per process, holding its lease token."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        owner: str,
        actor: str,
        lease_seconds: float,
        erase_value: bool = True,
    ) -> None:
        self.engine = engine
        self.owner = owner
        self.actor = actor
        self.lease_seconds = lease_seconds
        self.erase_value = erase_value

    async def claim(self, limit: int, busy_services: Sequence[int] = ()) -> list[ClaimedRequest]:
        if limit <= 0:
            return []
        async with self.engine.begin() as conn:
            rows = await conn.execute(
                _CLAIM,
                {
                    "n": limit,
                    "busy": list(busy_services),
                    "owner": self.owner,
                    "lease": self.lease_seconds,
                    "actor": self.actor,
                },
            )
            return [ClaimedRequest(*row) for row in rows]

    async def record(self, outcomes: Sequence[Outcome]) -> tuple[int, int]:
        """Write outcomes; returns (applied, late).  Late ones are only logged."""
        if not outcomes:
            return 0, 0
        async with self.engine.begin() as conn:
            rows = await conn.execute(
                _RECORD,
                {
                    "ids": [o.request_id for o in outcomes],
                    "statuses": [o.status for o in outcomes],
                    "details": [o.detail for o in outcomes],
                    "ob_ids": [o.ownbackup_request_id for o in outcomes],
                    "errors": [o.error for o in outcomes],
                    "delays": [float(o.retry_in) for o in outcomes],
                    "erase": self.erase_value,
                    "owner": self.owner,
                    "actor": self.actor,
                },
            )
            applied = {r[0] for r in rows}
            late = [o for o in outcomes if o.request_id not in applied]
            if late:
                await conn.execute(
                    _RECORD_LATE,
                    {
                        "ids": [o.request_id for o in late],
                        "details": [o.detail for o in late],
                        "actor": self.actor,
                    },
                )
        return len(applied), len(late)

    async def renew_leases(self) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(_RENEW, {"lease": self.lease_seconds, "owner": self.owner})
            return int(result.rowcount)

    async def release(self, ids: Sequence[int], *, started: bool, detail: str) -> int:
        """Return claimed rows to ``pending`` (at shutdown).  ``started``: a call was made."""
        if not ids:
            return 0
        async with self.engine.begin() as conn:
            result = await conn.execute(
                _RELEASE,
                {
                    "ids": list(ids),
                    "started": started,
                    "owner": self.owner,
                    "detail": detail,
                    "actor": self.actor,
                },
            )
            return int(result.scalar_one())

    async def reap_expired(self, max_attempts: int) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                _REAP, {"max_attempts": max_attempts, "actor": self.actor, "owner": self.owner}
            )
            return int(result.scalar_one())
