"""The event pull's side of the audit trail: lock, cursor, store a page, confirm requests.

One pull holds one connection for its whole length.  On it, a session-level advisory
lock (``pg_try_advisory_lock``) makes the pull exclusive: another replica's attempt
answers at once that the lock is taken and skips the round.  If the puller dies, its
connection dies and Postgres releases the lock with it; nothing has to expire.  (The lock
needs a session: point ``database_url`` at Postgres itself, not at a pooler in
transaction mode.)

Each page is stored by :meth:`PullSession.store_page` in ONE transaction: the events
(``ON CONFLICT (event_id) DO NOTHING``), the malformed items into ``audit_quarantine``
(a repeat of the same item is a no-op), the cursor, and the requests its GDPR events
confirm with their history rows.  A crash at any moment therefore loses no event and
stores none twice: the next pull resumes from the cursor of the last committed page.

The insert takes the page as typed arrays plus one JSON array of the well-formed items,
``ROWS FROM`` zips them, and the text columns and ``raw`` come out of the jsonb in SQL
(bench/events.py measures it against a hand-written unnest insert).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

if TYPE_CHECKING:
    from gdpr_daemon.audit.parse import GdprEvent, ParsedPage

__all__ = ["EVENTS_PULL_LOCK", "AccountMismatch", "EventStore", "PageOutcome", "PullSession"]

#: pg_try_advisory_lock key of the event pull ("gdprev").  One database serves one
#: account, so one key is enough.
EVENTS_PULL_LOCK = 0x6764_7072_6576

CONFIRM_DETAIL = "confirmed by OwnBackup event "


class AccountMismatch(Exception):
    """The database already holds another OwnBackup account's event history."""


@dataclass(frozen=True, slots=True)
class PageOutcome:
    stored: int  # new rows in audit_events
    duplicates: int  # well-formed events already stored
    quarantined: int  # new rows in audit_quarantine
    cursor: int | None  # the stored cursor after the page
    confirmed: int  # requests this page confirmed


_STORE = text("""
WITH page AS (
    SELECT * FROM ROWS FROM (
        unnest(CAST(:ids AS bigint[])),
        unnest(CAST(:created AS timestamptz[])),
        unnest(CAST(:services AS integer[])),
        jsonb_array_elements(CAST(:events AS jsonb))
    ) AS p(event_id, created_at, service_id, e)
), ins AS (
    INSERT INTO audit_events (event_id, created_at, key, source, user_email, user_id, ip_address,
                              service_id, parameters, raw, ingested_at)
    SELECT event_id, created_at, e->>'key', e->>'source', e->>'user_email', e->>'user_id',
           e->>'ip_address', service_id, e->'parameters', e, now()
    FROM page
    ON CONFLICT (event_id) DO NOTHING
    RETURNING 1
), q AS (
    INSERT INTO audit_quarantine (account, event_id, after_event_id, occurrence, reason, raw, raw_sha256)
    SELECT :account, q.event_id, q.after_event_id, q.occurrence, q.reason, CAST(q.raw AS jsonb), q.sha
    FROM unnest(CAST(:q_ids AS bigint[]), CAST(:q_after AS bigint[]), CAST(:q_occ AS integer[]),
                CAST(:q_reasons AS text[]), CAST(:q_raws AS text[]), CAST(:q_shas AS text[]))
         AS q(event_id, after_event_id, occurrence, reason, raw, sha)
    ON CONFLICT (account, after_event_id, raw_sha256, occurrence) DO NOTHING
    RETURNING 1
), cur AS (
    INSERT INTO event_cursors (account, last_event_id, updated_at)
    SELECT :account, CAST(:cursor AS bigint), now() WHERE CAST(:cursor AS bigint) IS NOT NULL
    ON CONFLICT (account) DO UPDATE
        SET last_event_id = greatest(event_cursors.last_event_id, excluded.last_event_id),
            updated_at = excluded.updated_at
    RETURNING last_event_id
)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM q), (SELECT last_event_id FROM cur)
""")

# A GDPR event confirms the request whose OwnBackup id it names, when the request type
# and the service agree (where the event says them).  confirmed_at is when OwnBackup
# says it happened; the status does not change, the history says what confirmed it.
_CONFIRM_TAIL = """
), u AS (
    UPDATE gdpr_requests r SET confirmed_at = m.created_at, updated_at = now()
    FROM m WHERE r.id = m.id AND r.confirmed_at IS NULL
    RETURNING r.id, r.status, m.event_id
), l AS (
    INSERT INTO gdpr_request_log (request_id, from_status, to_status, detail, actor)
    SELECT id, status, status, :detail || event_id, :actor FROM u
)
SELECT count(*) FROM u
"""

_CONFIRM_PAGE = text("""
WITH ev AS (
    SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:ats AS timestamptz[]), CAST(:types AS text[]),
                         CAST(:services AS integer[]), CAST(:refs AS bigint[]))
        AS ev(event_id, created_at, request_type, service_id, ref)
), m AS (
    SELECT DISTINCT ON (r.id) r.id, ev.event_id, ev.created_at
    FROM ev JOIN gdpr_requests r ON r.ownbackup_request_id = ev.ref
    WHERE r.confirmed_at IS NULL
      AND (ev.request_type IS NULL OR ev.request_type = r.request_type)
      AND (ev.service_id IS NULL OR ev.service_id = r.service_id)
    ORDER BY r.id, ev.event_id
""" + _CONFIRM_TAIL)  # noqa: S608 - fixed fragments

# The same match from the other side, for an event stored before the queue recorded the
# request id the API answered (the event can overtake the answer).
_CONFIRM_STORED = text("""
WITH m AS (
    SELECT DISTINCT ON (r.id) r.id, e.event_id, e.created_at
    FROM gdpr_requests r
    JOIN audit_events e
      ON coalesce(e.parameters->>'request_id', e.parameters->>'job_id', e.parameters->>'id')
         = CAST(r.ownbackup_request_id AS text)
     AND e.key LIKE 'gdpr.%'
    WHERE r.confirmed_at IS NULL AND r.ownbackup_request_id IS NOT NULL
      AND (e.service_id IS NULL OR e.service_id = r.service_id)
      AND (e.key NOT IN ('gdpr.forget', 'gdpr.rectify') OR e.key = 'gdpr.' || r.request_type)
    ORDER BY r.id, e.event_id
""" + _CONFIRM_TAIL)  # noqa: S608 - fixed fragments


class PullSession:
    """The locked connection of one pull; every method is one transaction on it."""

    def __init__(self, conn: AsyncConnection, *, account: str, actor: str) -> None:
        self._conn = conn
        self.account = account
        self.actor = actor

    async def cursor(self) -> int | None:
        """The stored cursor (None before the first event), refusing another account's."""
        async with self._conn.begin():
            rows = (await self._conn.execute(
                text("SELECT account, last_event_id FROM event_cursors ORDER BY account")
            )).all()  # fmt: skip
        others = [r.account for r in rows if r.account != self.account]
        if others:
            raise AccountMismatch(
                f"this database holds the event history of the OwnBackup account at {others[0]}, "  # noqa: S608
                f"but the daemon is configured for {self.account}; one database serves one account. "
                f"Use a database of its own for {self.account}, or, if it is the same account under "
                f"a new address, run: UPDATE event_cursors SET account = '{self.account}' "
                f"WHERE account = '{others[0]}'"
            )
        return int(rows[0].last_event_id) if rows else None

    async def store_page(self, page: ParsedPage) -> PageOutcome:
        """Insert the page, quarantine its malformed items, move the cursor, confirm requests."""
        q = page.quarantine
        async with self._conn.begin():
            row = (
                await self._conn.execute(
                    _STORE,
                    {
                        "ids": page.event_ids,
                        "created": page.created_at,
                        "services": page.service_ids,
                        "events": page.events_json,
                        "account": self.account,
                        "q_ids": [i.event_id for i in q],
                        "q_after": [i.after_event_id for i in q],
                        "q_occ": [i.occurrence for i in q],
                        "q_reasons": [i.reason for i in q],
                        "q_raws": [i.raw_json for i in q],
                        "q_shas": [i.raw_sha256 for i in q],
                        "cursor": page.cursor,
                    },
                )
            ).one()
            confirmed = await self._confirm(page.gdpr) if page.gdpr else 0
        stored, quarantined, cursor = int(row[0]), int(row[1]), row[2]
        return PageOutcome(stored, page.events - stored, quarantined, cursor, confirmed)

    async def _confirm(self, events: list[GdprEvent]) -> int:
        result = await self._conn.execute(
            _CONFIRM_PAGE,
            {
                "ids": [e.event_id for e in events],
                "ats": [e.created_at for e in events],
                "types": [e.request_type for e in events],
                "services": [e.service_id for e in events],
                "refs": [e.request_ref for e in events],
                "detail": CONFIRM_DETAIL,
                "actor": self.actor,
            },
        )
        return int(result.scalar_one())

    async def confirm_stored(self) -> int:
        """Confirm unconfirmed requests from GDPR events stored earlier; how many."""
        async with self._conn.begin():
            result = await self._conn.execute(_CONFIRM_STORED, {"detail": CONFIRM_DETAIL, "actor": self.actor})
            return int(result.scalar_one())


class EventStore:
    """SQL of the event pull for one account (its base URL)."""

    def __init__(self, engine: AsyncEngine, *, account: str, actor: str) -> None:
        self.engine = engine
        self.account = account
        self.actor = actor

    @asynccontextmanager
    async def pull_lock(self) -> AsyncIterator[PullSession | None]:
        """The pull's session under the advisory lock, or None when another process holds it."""
        async with self.engine.connect() as conn:
            locked = False
            try:
                locked = bool(
                    (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": EVENTS_PULL_LOCK})).scalar()
                )
                await conn.commit()
                yield PullSession(conn, account=self.account, actor=self.actor) if locked else None
            except BaseException:
                # Closing the connection is what surely releases a session lock; the pool
                # must not hand out a connection that may still hold it.
                if locked:
                    await conn.invalidate()
                raise
            if locked:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": EVENTS_PULL_LOCK})
                await conn.commit()
