"""The daemon's side of the request queue: claim, start, record, renew, release, reap.

Every statement that changes a request's status writes its history rows in the same
statement (data-modifying CTEs), so the history can never disagree with the table.
Claims are leases: the row carries this process's random token and an expiry; every
write back checks state and token together, so a process whose lease lapsed can never
overwrite the work of the one that took the row over.  Each method is one statement,
run outside an explicit transaction (a statement is atomic on its own): one round trip
instead of three.

A claim moves a request to ``in_flight`` (attempt counted, history "claimed for attempt
N").  Before its call goes out, a claim is *started*: its id is added to this process's
row of ``gdpr_dispatch``, committed before the call (:meth:`QueueStore.start`, one
statement for every start that comes together, no history row: nothing changes for the
request).  The reaper reads that row: an expired claim that was started may have been
sent ("outcome unknown", as before); one that was not was never sent (back to pending,
the attempt not counted, the history saying so).

Why a start needs no lock: it is applied only to claims whose lease has at least
``margin`` seconds left (then, by the database's clock), and the worker makes a call only
when the start came back within ``margin`` seconds (by its own clock, a bound on the
time the statement took).  A start that counts is thus committed before its claim's
lease expires, and the reaper only looks at claims whose lease has expired: whatever it
reads already holds every start that led to a call.

Claim and reap lock rows ``FOR NO KEY UPDATE`` (they change no key): that lock does not
block the foreign-key check of a history row another transaction writes for the same
request (a late answer), which matters because history inserts take the hash chain's
lock (migration 0004) before that check.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gdpr_daemon.db.engine import PING_IDLE_AFTER
from gdpr_daemon.rules import FAILED, PENDING, REJECTED, SUBMITTED


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
    attempts: int  # this claim's attempt number

    def __repr__(self) -> str:  # never show the value, even in a traceback
        return (
            f"ClaimedRequest(id={self.id}, type={self.request_type}, service_id={self.service_id},"
            f" attempt={self.attempts})"
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one claim; ``status`` is the state the request moves to.

    ``called``: whether a call to OwnBackup was made.  An outcome found before any call (a
    rejection, the service list not available) does not count the claim's attempt.
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
class Started:
    """What one :meth:`QueueStore.start` did."""

    started: frozenset[int]  # claims started: their calls may go out
    held: frozenset[int]  # claims this process still holds (started or not: the lease too short to start)


@dataclass(frozen=True, slots=True)
class LeaseWatch:
    """What one :meth:`QueueStore.reap_expired` did and saw."""

    unknown: int = 0  # expired claims that had been started: back to pending (or failed), outcome unknown
    never_sent: int = 0  # expired claims never started: back to pending, the attempt not counted
    next_expiry_in: float | None = None  # seconds until the earliest live lease of another process expires

    @property
    def reaped(self) -> int:
        return self.unknown + self.never_sent


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
    SELECT id, 'pending', 'in_flight', 'claimed for attempt ' || attempts, :actor FROM u ORDER BY id
), d AS (
    -- A start of an earlier attempt of one of these requests, if this process still lists
    -- it, is over: the claim is a new attempt, not started yet.
    UPDATE gdpr_dispatch SET started = ARRAY(SELECT x FROM unnest(started) AS x
                                             WHERE x <> ALL(ARRAY(SELECT id FROM u)))
    WHERE owner = :owner AND started && ARRAY(SELECT id FROM u)
)
SELECT * FROM u ORDER BY id
""")

# Starts: the claims of :starts still held (in flight, this token) whose lease has more
# than :margin seconds left are added to this process's row; :done (claims whose
# outcome is written, or given up) leave it.
_START = text("""
WITH h AS (
    SELECT id, lease_expires_at > now() + make_interval(secs => :margin) AS ok FROM gdpr_requests
    WHERE id = ANY(CAST(:starts AS bigint[])) AND status = 'in_flight' AND lease_owner = :owner
), s AS (
    SELECT ARRAY(SELECT id FROM h WHERE ok) AS ids
), u AS (
    UPDATE gdpr_dispatch d
    SET started = ARRAY(SELECT x FROM unnest(d.started) AS x
                        WHERE x <> ALL(CAST(:done AS bigint[])) AND x <> ALL(s.ids)) || s.ids,
        updated_at = now()
    FROM s WHERE d.owner = :owner
    RETURNING 1
), i AS (
    -- Only this process writes its row (one start at a time), so no other insert can race this one.
    INSERT INTO gdpr_dispatch (owner, started) SELECT :owner, s.ids FROM s WHERE NOT EXISTS (SELECT FROM u)
)
SELECT id, ok FROM h
""")

# One statement (one round trip, its own transaction): the outcomes applied, their history,
# and for an answer that arrives after this process lost its lease a history row that
# changes nothing but says what the API did (it may mean the request went out twice).
# ``late`` reads ``u`` (so it runs after the update) and takes the rows the update left.
_RECORD = text("""
WITH o AS (
    SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS text[]), CAST(:details AS text[]),
                         CAST(:ob_ids AS bigint[]), CAST(:errors AS text[]), CAST(:delays AS float8[]),
                         CAST(:called AS boolean[]))
        AS o(id, status, detail, ob_id, error, delay, called)
), u AS (
    UPDATE gdpr_requests r
    SET status = o.status,
        attempts = CASE WHEN o.called THEN r.attempts ELSE greatest(r.attempts - 1, 0) END,
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
    SELECT id, 'in_flight', status, detail, :actor FROM u ORDER BY id
), late AS (
    INSERT INTO gdpr_request_log (request_id, from_status, to_status, detail, actor)
    SELECT r.id, r.status, r.status,
           'answer of an attempt whose lease had expired (recorded, state unchanged): ' || o.detail, :actor
    FROM o JOIN gdpr_requests r ON r.id = o.id
    WHERE o.called AND o.id NOT IN (SELECT id FROM u)
    ORDER BY r.id
    RETURNING 1
)
SELECT (SELECT count(*) FROM u) AS applied, (SELECT count(*) FROM late) AS late
""")

_RENEW = text("""
UPDATE gdpr_requests SET lease_expires_at = now() + make_interval(secs => :lease)
WHERE status = 'in_flight' AND lease_owner = :owner
  AND (CAST(:ids AS bigint[]) IS NULL OR id = ANY(CAST(:ids AS bigint[])))
""")

_RELEASE = text("""
WITH u AS (
    UPDATE gdpr_requests r
    SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, updated_at = now(),
        attempts = CASE WHEN :called THEN r.attempts ELSE greatest(r.attempts - 1, 0) END
    WHERE r.id = ANY(CAST(:ids AS bigint[])) AND r.status = 'in_flight' AND r.lease_owner = :owner
    RETURNING r.id
), l AS (
    INSERT INTO gdpr_request_log (request_id, from_status, to_status, detail, actor)
    SELECT id, 'in_flight', 'pending', :detail, :actor FROM u ORDER BY id
), d AS (
    UPDATE gdpr_dispatch SET started = ARRAY(SELECT x FROM unnest(started) AS x
                                             WHERE x <> ALL(CAST(:ids AS bigint[])))
    WHERE owner = :owner AND started && CAST(:ids AS bigint[])
)
SELECT count(*) FROM u
""")

# Other processes' claims whose lease expired.  Only other processes': this process still
# holds its own, expired or not (after a database outage longer than a lease, say), and
# will record or release each of them; reaping them would send requests whose answers it
# holds a second time.  A claim its holder started may have been sent: "outcome unknown",
# it will be submitted again (or it fails, when no attempts are left).  One never started
# was never sent: back to pending with the attempt not counted.  Either goes to the front
# of the queue (its turn had come): a backlog does not keep it waiting a second time.
# Then the dispatch rows: reaped ids leave them, and the row of a process that holds no
# claim and has not started one for twice :lease seconds goes.  Last, when the next lease
# of another process expires (the caller looks again then, so a stopped process's claims
# come back within about one lease).
_REAP = text("""
WITH x AS (
    SELECT r.id, r.lease_owner, coalesce(r.id = ANY(d.started), false) AS started
    FROM gdpr_requests r LEFT JOIN gdpr_dispatch d ON d.owner = r.lease_owner
    WHERE r.status = 'in_flight' AND r.lease_expires_at < now() AND r.lease_owner <> :owner
    ORDER BY r.lease_expires_at
    LIMIT 1000
    FOR NO KEY UPDATE OF r SKIP LOCKED
), u AS (
    UPDATE gdpr_requests r
    SET status = CASE WHEN x.started AND r.attempts >= :max_attempts THEN 'failed' ELSE 'pending' END,
        attempts = CASE WHEN x.started THEN r.attempts ELSE greatest(r.attempts - 1, 0) END,
        last_error = CASE WHEN x.started AND r.attempts >= :max_attempts
            THEN 'The outcome of attempt ' || r.attempts || ' is unknown (the process holding it stopped)'
                 || ' and no attempts are left; retry it with `gdpr-daemon requests retry ' || r.id || '`.'
            ELSE r.last_error END,
        -- First in the queue again: its turn had come when the stopped process claimed it.
        next_attempt_at = least(r.next_attempt_at,
                                (SELECT min(p.next_attempt_at) FROM gdpr_requests p WHERE p.status = 'pending')),
        lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
    FROM x WHERE r.id = x.id
    RETURNING r.id, r.status, x.started, x.lease_owner,
              CASE WHEN x.started THEN r.attempts ELSE r.attempts + 1 END AS attempt
), l AS (
    INSERT INTO gdpr_request_log (request_id, from_status, to_status, detail, actor)
    SELECT id, 'in_flight', status,
           CASE WHEN started
                THEN 'lease of attempt ' || attempt || ' held by process ' || lease_owner
                     || ' expired: outcome unknown, '
                     || CASE WHEN status = 'failed' THEN 'no attempts left' ELSE 'it will be submitted again' END
                ELSE 'lease of attempt ' || attempt || ' held by process ' || lease_owner
                     || ' expired before its call was made: never sent, the attempt is not counted' END,
           :actor
    FROM u ORDER BY id
), dd AS (
    UPDATE gdpr_dispatch d SET started = ARRAY(SELECT s FROM unnest(d.started) AS s
                                               WHERE s <> ALL(ARRAY(SELECT id FROM u)))
    WHERE d.owner IN (SELECT lease_owner FROM u) AND d.started && ARRAY(SELECT id FROM u)
), gone AS (
    DELETE FROM gdpr_dispatch d
    WHERE d.owner <> :owner AND d.updated_at < now() - make_interval(secs => 2 * :lease)
      AND NOT EXISTS (SELECT 1 FROM gdpr_requests r WHERE r.status = 'in_flight' AND r.lease_owner = d.owner)
), w AS (
    SELECT EXTRACT(epoch FROM min(lease_expires_at) - now())::float8 AS next_in FROM gdpr_requests
    WHERE status = 'in_flight' AND lease_expires_at >= now() AND lease_owner <> :owner
), n AS (
    -- Every replica's worker wakes for them, not only this one's (which may have no room).
    SELECT pg_notify('gdpr_requests', '') FROM (SELECT 1 FROM u LIMIT 1) AS any_reaped
)
SELECT (SELECT count(*) FILTER (WHERE started) FROM u) AS unknown,
       (SELECT count(*) FILTER (WHERE NOT started) FROM u) AS never_sent, w.next_in, (SELECT count(*) FROM n) AS woke
FROM w
""")


@dataclass(frozen=True, slots=True)
class _Raw:
    """A statement in the driver's own form: ``$n`` placeholders, in the order of ``names``."""

    sql: str
    names: tuple[str, ...]

    @classmethod
    def of(cls, clause: TextClause) -> _Raw:
        names: list[str] = []

        def place(m: re.Match[str]) -> str:
            if m.group(1) not in names:
                names.append(m.group(1))
            return f"${names.index(m.group(1)) + 1}"

        return cls(re.sub(r"(?<![:\w]):(\w+)", place, clause.text), tuple(names))


_CLAIM_RAW = _Raw.of(_CLAIM)
_START_RAW = _Raw.of(_START)
_RECORD_RAW = _Raw.of(_RECORD)


#: The three lanes take three pooled connections; at least two stay for every other statement
#: (which may also overflow the pool).  The default pool is 10.
LANES_MIN_POOL = 5


class Lane:
    """A pooled connection kept by one writer that runs its statements one after another
    (the claim loop, the call starter, the outcome recorder), while it keeps using it.

    Checking a connection out of SQLAlchemy's pool and back in costs about 0.1 ms of CPU
    a statement, as much as the statement's own round trip on the driver; these writers run
    several hundred statements a second.  A connection left unused for ``idle_after``
    seconds goes back to the pool before the next statement, and the pool pings it (see
    ``engine.PING_IDLE_AFTER``), so a long idle spell still finds out about a restarted
    server without a failed statement.  A statement the lane is already running makes a
    second caller use the pool instead.
    """

    def __init__(self, engine: AsyncEngine, idle_after: float) -> None:
        self._engine = engine
        self._idle_after = idle_after
        self._conn: AsyncConnection | None = None
        self._fairy: Any = None
        self._used = 0.0
        self.busy = False

    async def fetch(self, sql: str, args: Sequence[Any]) -> list[Any]:
        self.busy = True
        try:
            if self._conn is not None and time.monotonic() - self._used > self._idle_after:
                await self.close()
            if self._conn is None:
                conn = self._engine.connect()
                await conn.start()
                try:
                    self._fairy = await conn.get_raw_connection()
                except BaseException:
                    await conn.close()
                    raise
                self._conn = conn
            driver = self._fairy.driver_connection
            try:
                return list(await driver.fetch(sql, *args))
            except asyncpg.PostgresError:
                raise  # the server refused the statement: the connection is still good
            except BaseException:
                # Broken or cut off mid-statement: never used again (see QueueStore._fetch).
                self._fairy.invalidate()
                await self.close()
                raise
        finally:
            self._used = time.monotonic()
            self.busy = False

    async def close(self) -> None:
        conn, self._conn, self._fairy = self._conn, None, None
        if conn is not None:
            try:
                await conn.close()
            except Exception:  # noqa: S110 - a broken connection is dropped by the pool anyway
                pass


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
        self._lanes: dict[str, Lane] = {}

    def open_lanes(self, idle_after: float = PING_IDLE_AFTER) -> None:
        """Claims, starts and outcome writes each keep a connection while they run (see :class:`Lane`)
        until :meth:`close_lanes`.  Without lanes (the default) every statement checks one out of the pool.

        Only with a pool of at least :data:`LANES_MIN_POOL` connections: a smaller one
        (``database_pool_size``) is left whole to the statements that check one out, as before.
        """
        size = getattr(self.engine.sync_engine.pool, "size", None)
        if callable(size) and size() < LANES_MIN_POOL:
            return
        self._lanes = {kind: Lane(self.engine, idle_after) for kind in ("claim", "start", "record")}

    async def close_lanes(self) -> None:
        lanes, self._lanes = self._lanes, {}
        for lane in lanes.values():
            await lane.close()

    @property
    def start_margin(self) -> float:
        """Seconds of lease a claim needs left to be started, and the longest a start may take to count.

        A third of the lease: the worker renews its leases every third of one, so a claim
        under way always has at least two thirds left.
        """
        return self.lease_seconds / 3

    async def _fetch(self, statement: _Raw, lane: str | None = None, **params: Any) -> list[Any]:
        """One statement on the driver's connection, skipping SQLAlchemy's execution layer
        (on the connection of the lane named ``lane`` when lanes are open and it is free).

        Claims, starts and outcome writes run a few hundred times a second: the layer
        costs as much client CPU as the statement itself, and an explicit transaction
        adds a round trip at each end.  The pool still hands out the connection (and
        pings one that sat idle); a connection the statement broke is invalidated.
        """
        args = [params[n] for n in statement.names]
        held = self._lanes.get(lane) if lane is not None else None
        if held is not None and not held.busy:
            return await held.fetch(statement.sql, args)
        async with self.engine.connect() as conn:
            fairy = await conn.get_raw_connection()
            driver = fairy.driver_connection
            assert driver is not None
            try:
                return list(await driver.fetch(statement.sql, *args))
            except asyncpg.PostgresError:
                raise  # the server refused the statement: the connection is still good
            except BaseException:
                # Broken, or cut off mid-statement (a cancelled or timed-out start): a
                # connection left with an operation under way answers every later use with
                # "another operation is in progress", so it must not go back to the pool.
                fairy.invalidate()
                raise

    async def claim(self, limit: int, busy_services: Sequence[int] = ()) -> list[ClaimedRequest]:
        if limit <= 0:
            return []
        rows = await self._fetch(
            _CLAIM_RAW, "claim", n=limit, busy=list(busy_services), owner=self.owner, lease=float(self.lease_seconds),
            actor=self.actor,
        )  # fmt: skip
        return [ClaimedRequest(*row) for row in rows]

    async def start(self, ids: Sequence[int], done: Sequence[int] = ()) -> Started:
        """Start claims before their calls (see the module docstring); ``done``: claims over, to forget."""
        rows = await self._fetch(
            _START_RAW, "start", starts=list(ids), done=list(done), owner=self.owner, margin=float(self.start_margin)
        )
        return Started(
            started=frozenset(int(r["id"]) for r in rows if r["ok"]), held=frozenset(int(r["id"]) for r in rows)
        )

    async def record(self, outcomes: Sequence[Outcome]) -> tuple[int, int]:
        """Write outcomes; returns (applied, late).  Late ones of calls made are noted in the history.

        One statement on the driver's connection (see :meth:`_fetch`): the outcomes, their
        history and the notes of late answers commit together, in one round trip.
        """
        if not outcomes:
            return 0, 0
        rows = await self._fetch(
            _RECORD_RAW,
            "record",
            ids=[o.request_id for o in outcomes],
            statuses=[o.status for o in outcomes],
            details=[o.detail for o in outcomes],
            ob_ids=[o.ownbackup_request_id for o in outcomes],
            errors=[o.error for o in outcomes],
            delays=[float(o.retry_in) for o in outcomes],
            called=[o.called for o in outcomes],
            erase=self.erase_value,
            owner=self.owner,
            actor=self.actor,
        )
        return int(rows[0]["applied"]), int(rows[0]["late"])

    async def renew_leases(self, ids: Sequence[int] | None = None) -> int:
        """Extend this process's claims (those of ``ids`` only, when given)."""
        async with self._auto.connect() as conn:
            result = await conn.execute(
                _RENEW, {"lease": self.lease_seconds, "owner": self.owner, "ids": None if ids is None else list(ids)}
            )
            return int(result.rowcount)

    async def release(self, ids: Sequence[int], *, started: bool, detail: str) -> int:
        """Return claimed rows to ``pending`` (at shutdown).  ``started``: a call was made (its attempt counts)."""
        if not ids:
            return 0
        async with self._auto.connect() as conn:
            result = await conn.execute(
                _RELEASE,
                {"ids": list(ids), "called": started, "owner": self.owner, "detail": detail, "actor": self.actor},
            )
            return int(result.scalar_one())

    async def reap_expired(self, max_attempts: int) -> LeaseWatch:
        """Reap other processes' expired claims; when the next one expires (see _REAP)."""
        async with self._auto.connect() as conn:
            row = (
                await conn.execute(
                    _REAP,
                    {"max_attempts": max_attempts, "actor": self.actor, "owner": self.owner,
                     "lease": self.lease_seconds},
                )  # fmt: skip
            ).one()
        return LeaseWatch(unknown=int(row.unknown), never_sent=int(row.never_sent), next_expiry_in=_num(row.next_in))
