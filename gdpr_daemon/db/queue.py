"""The daemon's side of the request queue: claim, start, record, renew, release, reap.

A claim is a lease on a ``pending`` row: the row carries this process's random token and
an expiry, and nothing else changes (no attempt counted, no history: nothing happened to
the request yet).  Just before its call goes out, a request is *started*: it moves to
``in_flight``, its attempt is counted and its history says so, in a transaction committed
before the call.  So ``in_flight`` means "a call may have gone out", and only such rows
are ever reaped as "outcome unknown"; a claim of a stopped process that was never started
is simply taken over by the next claim of any process, with a history row saying it was
never sent.  Starts and outcomes that come together share one statement (:meth:`flush`).

Every statement that changes a request's status writes its history rows in the same
statement (data-modifying CTEs), so the history can never disagree with the table.
Every write back checks state and token together, so a process whose lease lapsed can
never overwrite the work of the one that took the row over.  Each method is one
statement, run outside an explicit transaction (a statement is atomic on its own): one
round trip instead of three.

Claim and reap lock rows ``FOR NO KEY UPDATE`` (they change no key): that lock does not
block the foreign-key check of a history row another transaction writes for the same
request (a late answer), which matters because history inserts take the hash chain's
lock (migration 0004) before that check.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

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
    attempts: int  # attempts made so far (a start counts the next one)

    def __repr__(self) -> str:  # never show the value, even in a traceback
        return (
            f"ClaimedRequest(id={self.id}, type={self.request_type}, service_id={self.service_id},"
            f" attempts={self.attempts})"
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one claim; ``status`` is the state the request moves to.

    ``called``: whether a call to OwnBackup was made (the request was started and is
    ``in_flight``); an outcome found before any call (a rejection, the service list not
    available) moves the request on from ``pending`` and counts no attempt.
    """

    request_id: int
    status: str  # submitted | pending (retry later) | failed | rejected
    detail: str  # the history sentence (never personal data)
    ownbackup_request_id: int | None = None
    error: str | None = None  # becomes last_error
    retry_in: float = 0.0  # seconds, for status pending
    called: bool = True

    def __post_init__(self) -> None:
        assert self.status in (SUBMITTED, PENDING, FAILED, REJECTED), self.status


@dataclass(frozen=True, slots=True)
class Flushed:
    """What one :meth:`QueueStore.flush` did."""

    started: dict[int, int] = field(default_factory=dict)  # request id -> its attempt number, for starts applied
    applied: int = 0  # outcomes written
    late: int = 0  # outcomes of calls whose claim this process no longer held: only noted in the history
    dropped: int = 0  # outcomes found before any call whose claim was lost: nothing to note


@dataclass(frozen=True, slots=True)
class LeaseWatch:
    """What one :meth:`QueueStore.reap_expired` found among other processes' claims."""

    reaped: int = 0  # in_flight rows whose lease expired: back to pending (or failed), outcome unknown
    stranded: int = 0  # pending claims whose lease expired: the next claim takes them over
    next_expiry_in: float | None = None  # seconds until the earliest live lease of another process expires


# Due pending rows nobody holds, or whose holder's lease lapsed (a stopped process's claim:
# taken over, with a history row, since it was never started).  Not this process's own
# lapsed claims: it still holds those (after a database outage, say) and starts or
# releases each itself.
_CLAIM = text("""
WITH c AS (
    SELECT id, lease_owner AS was FROM gdpr_requests
    WHERE status = 'pending' AND next_attempt_at <= now()
      AND (lease_owner IS NULL OR (lease_expires_at < now() AND lease_owner <> :owner))
      AND NOT (service_id = ANY(CAST(:busy AS integer[])))
    ORDER BY next_attempt_at, id
    LIMIT :n
    FOR NO KEY UPDATE SKIP LOCKED
), u AS (
    UPDATE gdpr_requests r
    SET lease_owner = :owner, lease_expires_at = now() + make_interval(secs => :lease)
    FROM c WHERE r.id = c.id
    RETURNING r.id, r.request_type, r.service_id, r.table_name, r.record_id, r.field, r.value,
              r.comment, r.external_ref, r.attempts, c.was
), l AS (
    INSERT INTO gdpr_request_log (request_id, from_status, to_status, detail, actor)
    SELECT id, 'pending', 'pending',
           'claimed by process ' || was || ', whose lease expired before it was sent: never sent, taken over', :actor
    FROM u WHERE was IS NOT NULL ORDER BY id
)
SELECT id, request_type, service_id, table_name, record_id, field, value, comment, external_ref, attempts
FROM u ORDER BY id
""")

# Starts and outcomes in one statement (the group commit of the recorder).
#
# s: claims started now: pending -> in_flight, attempt counted, history "attempt N: sending".
# again: starts already applied by an earlier try of this flush whose answer was lost (the
#   connection broke after the commit): this process is the only one that starts its claims.
# u: outcomes; after a call from in_flight, before any call from pending; the lease is checked.
# late: answers of calls whose claim another process took over: only noted in its history.
_FLUSH = text("""
WITH s AS (
    UPDATE gdpr_requests r
    SET status = 'in_flight', attempts = r.attempts + 1,
        lease_expires_at = now() + make_interval(secs => :lease), updated_at = now()
    WHERE r.id = ANY(CAST(:starts AS bigint[])) AND r.status = 'pending' AND r.lease_owner = :owner
    RETURNING r.id, r.attempts
), again AS (
    SELECT id, attempts FROM gdpr_requests
    WHERE id = ANY(CAST(:starts AS bigint[])) AND status = 'in_flight' AND lease_owner = :owner
), o AS (
    SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS text[]), CAST(:details AS text[]),
                         CAST(:ob_ids AS bigint[]), CAST(:errors AS text[]), CAST(:delays AS float8[]),
                         CAST(:called AS boolean[]))
        AS o(id, status, detail, ob_id, error, delay, called)
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
    WHERE r.id = o.id AND r.lease_owner = :owner
      AND r.status = CASE WHEN o.called THEN 'in_flight' ELSE 'pending' END
    RETURNING r.id, o.status, o.detail, o.called
), late AS (
    SELECT o.id, o.detail, o.called FROM o WHERE o.id NOT IN (SELECT id FROM u)
), l AS (
    INSERT INTO gdpr_request_log (request_id, from_status, to_status, detail, actor)
    SELECT id, 'pending', 'in_flight', 'attempt ' || attempts || ': sending to OwnBackup', :actor FROM s
    UNION ALL
    SELECT id, CASE WHEN called THEN 'in_flight' ELSE 'pending' END, status, detail, :actor FROM u
    UNION ALL
    SELECT r.id, r.status, r.status,
           'answer of an attempt whose lease had expired (recorded, state unchanged): ' || late.detail, :actor
    FROM late JOIN gdpr_requests r ON r.id = late.id WHERE late.called
)
SELECT 's' AS kind, id, attempts FROM s
UNION ALL SELECT 's', id, attempts FROM again
UNION ALL SELECT 'u', id, 0 FROM u
UNION ALL SELECT CASE WHEN called THEN 'l' ELSE 'd' END, id, 0 FROM late
""")

_RENEW = text("""
UPDATE gdpr_requests SET lease_expires_at = now() + make_interval(secs => :lease)
WHERE lease_owner = :owner AND status IN ('pending', 'in_flight')
  AND (CAST(:ids AS bigint[]) IS NULL OR id = ANY(CAST(:ids AS bigint[])))
""")

# At shutdown.  A claim never started just loses its lease (nothing happened to it).  A
# started one goes back to pending: with :called its call was cut off after the drain
# bound (outcome unknown, the attempt stays counted); without, it was stopped between its
# start and its call (not sent: the attempt is not counted).
_RELEASE = text("""
WITH x AS (
    SELECT id, status FROM gdpr_requests
    WHERE id = ANY(CAST(:ids AS bigint[])) AND lease_owner = :owner AND status IN ('pending', 'in_flight')
    FOR NO KEY UPDATE
), u AS (
    UPDATE gdpr_requests r
    SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL,
        attempts = CASE WHEN x.status = 'in_flight' AND NOT :called THEN greatest(r.attempts - 1, 0)
                        ELSE r.attempts END,
        updated_at = CASE WHEN x.status = 'in_flight' THEN now() ELSE r.updated_at END
    FROM x WHERE r.id = x.id
    RETURNING r.id, x.status AS was, r.attempts
), l AS (
    INSERT INTO gdpr_request_log (request_id, from_status, to_status, detail, actor)
    SELECT id, 'in_flight', 'pending',
           CASE WHEN :called THEN :detail
                ELSE 'attempt ' || attempts + 1 || ' not sent: stopped at shutdown before the call was made' END,
           :actor
    FROM u WHERE was = 'in_flight' ORDER BY id
)
SELECT count(*) FROM u
""")

# Other processes' in-flight rows whose lease expired: a call may have gone out, so the
# history says "outcome unknown".  Only other processes': this process still holds its
# own, expired or not (after a database outage longer than a lease, say), and will record
# or release each of them; reaping them would send requests whose answers it holds a
# second time.  next_attempt_at is kept, so the request keeps its place in the queue.
# Then a look at the other processes' claims: how many pending ones lapsed (the caller
# wakes its claim loop to take them over) and when the next lease expires (the caller
# looks again then, so a stopped process's claims come back within about one lease).
_REAP = text("""
WITH x AS (
    SELECT id, lease_owner FROM gdpr_requests
    WHERE lease_owner IS NOT NULL AND lease_expires_at < now() AND status = 'in_flight' AND lease_owner <> :owner
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
        lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
    FROM x WHERE r.id = x.id
    RETURNING r.id, r.status, r.attempts, x.lease_owner
), l AS (
    INSERT INTO gdpr_request_log (request_id, from_status, to_status, detail, actor)
    SELECT id, 'in_flight', status,
           'lease of attempt ' || attempts || ' held by process ' || lease_owner
           || ' expired: outcome unknown, '
           || CASE WHEN status = 'failed' THEN 'no attempts left' ELSE 'it will be submitted again' END,
           :actor
    FROM u ORDER BY id
), w AS (
    SELECT count(*) FILTER (WHERE status = 'pending' AND lease_expires_at < now()) AS stranded,
           EXTRACT(epoch FROM min(lease_expires_at) FILTER (WHERE lease_expires_at >= now()) - now())::float8
               AS next_in
    FROM gdpr_requests
    WHERE lease_owner IS NOT NULL AND lease_owner <> :owner AND status IN ('pending', 'in_flight')
)
SELECT (SELECT count(*) FROM u) AS reaped, w.stranded, w.next_in FROM w
""")


def _num(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


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
        # Every statement here is one atomic statement: no BEGIN and COMMIT round trips.
        self._auto = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.owner = owner
        self.actor = actor
        self.lease_seconds = lease_seconds
        self.erase_value = erase_value

    async def claim(self, limit: int, busy_services: Sequence[int] = ()) -> list[ClaimedRequest]:
        """Lease up to ``limit`` due pending rows (none of ``busy_services``); nothing else changes."""
        if limit <= 0:
            return []
        async with self._auto.connect() as conn:
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

    async def flush(self, outcomes: Sequence[Outcome] = (), starts: Sequence[int] = ()) -> Flushed:
        """Start claims (pending -> in_flight, before their calls) and write outcomes, in one statement."""
        if not outcomes and not starts:
            return Flushed()
        async with self._auto.connect() as conn:
            rows = (
                await conn.execute(
                    _FLUSH,
                    {
                        "starts": list(starts),
                        "ids": [o.request_id for o in outcomes],
                        "statuses": [o.status for o in outcomes],
                        "details": [o.detail for o in outcomes],
                        "ob_ids": [o.ownbackup_request_id for o in outcomes],
                        "errors": [o.error for o in outcomes],
                        "delays": [float(o.retry_in) for o in outcomes],
                        "called": [o.called for o in outcomes],
                        "erase": self.erase_value,
                        "owner": self.owner,
                        "lease": self.lease_seconds,
                        "actor": self.actor,
                    },
                )
            ).all()
        started = {int(r.id): int(r.attempts) for r in rows if r.kind == "s"}
        count = {k: sum(1 for r in rows if r.kind == k) for k in ("u", "l", "d")}
        return Flushed(started=started, applied=count["u"], late=count["l"], dropped=count["d"])

    async def start(self, ids: Sequence[int]) -> dict[int, int]:
        """Start claims before their calls: request id -> attempt number, for those this process still held."""
        return (await self.flush((), ids)).started

    async def record(self, outcomes: Sequence[Outcome]) -> tuple[int, int]:
        """Write outcomes; returns (applied, late).  Late ones are only noted in the history."""
        done = await self.flush(outcomes, ())
        return done.applied, done.late

    async def renew_leases(self, ids: Sequence[int] | None = None) -> int:
        """Extend this process's claims (those of ``ids`` only, when given)."""
        async with self._auto.connect() as conn:
            result = await conn.execute(
                _RENEW, {"lease": self.lease_seconds, "owner": self.owner, "ids": None if ids is None else list(ids)}
            )
            return int(result.rowcount)

    async def release(self, ids: Sequence[int], *, called: bool, detail: str = "") -> int:
        """At shutdown: give up claims of ``ids`` (see _RELEASE); ``called``: their calls were cut off."""
        if not ids:
            return 0
        async with self._auto.connect() as conn:
            result = await conn.execute(
                _RELEASE,
                {"ids": list(ids), "called": called, "owner": self.owner, "detail": detail, "actor": self.actor},
            )
            return int(result.scalar_one())

    async def reap_expired(self, max_attempts: int) -> LeaseWatch:
        """Reap other processes' expired in-flight rows; look at their claims (see _REAP)."""
        async with self._auto.connect() as conn:
            row = (
                await conn.execute(_REAP, {"max_attempts": max_attempts, "actor": self.actor, "owner": self.owner})
            ).one()
        return LeaseWatch(reaped=int(row.reaped), stranded=int(row.stranded), next_expiry_in=_num(row.next_in))
