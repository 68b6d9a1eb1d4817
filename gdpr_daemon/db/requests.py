"""The DPO's side of the request table: enqueue, look, retry, cancel, approve.

Actions that change a request call the database functions made for them (migrations 0003
and 0004: ``gdpr_approve_requests``, ``gdpr_retry_request``, ``gdpr_cancel_request``), which
check the state under a row lock and write the history row in the same transaction, and
which an intake role may execute without any UPDATE right on the table.  Nothing
returned here carries the rectify ``value``; only whether one is held.
Deadline extensions and the overdue report are in :mod:`gdpr_daemon.db.deadlines`,
bulk import in :mod:`gdpr_daemon.db.imports` (for :mod:`gdpr_daemon.dpo.imports`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gdpr_daemon.rules import STATUSES

LIST_COLUMNS = """id, request_type, service_id, table_name, record_id, field, comment, external_ref,
    received_at, due_at, original_due_at, status, attempts, next_attempt_at, ownbackup_request_id,
    last_error, created_at, updated_at, submitted_at, confirmed_at, value_sha256, requested_by,
    approved_by, (value IS NOT NULL) AS has_value"""

# Requests whose deadline still matters: everything but submitted and cancelled (the same
# definition as the overdue gauge in db/stats.py).
OPEN_SQL = "status NOT IN ('submitted', 'cancelled')"


class RequestError(Exception):
    """A DPO action that cannot be done; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class NewRequest:
    request_type: str
    service_id: int
    table_name: str
    record_id: str
    field: str | None = None
    value: str | None = None
    comment: str | None = None
    external_ref: str | None = None
    received_at: datetime | None = None
    requested_by: str | None = None

    def __repr__(self) -> str:
        return f"NewRequest({self.request_type}, service_id={self.service_id}, ref={self.external_ref!r})"


_INSERT = text("""
INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, field, value, comment,
                           external_ref, received_at, requested_by)
VALUES (:request_type, :service_id, :table_name, :record_id, :field, :value, :comment,
        :external_ref, coalesce(CAST(:received_at AS timestamptz), now()),
        coalesce(:requested_by, current_user))
RETURNING id
""")


async def insert_requests(conn: AsyncConnection, requests: Sequence[NewRequest]) -> list[int]:
    """Insert in the caller's transaction (all or nothing); returns the new ids.

    One statement a row: for a handful of rows.  Files go through db/imports.py.
    """
    ids: list[int] = []
    for r in requests:
        result = await conn.execute(
            _INSERT,
            {
                "request_type": r.request_type,
                "service_id": r.service_id,
                "table_name": r.table_name,
                "record_id": r.record_id,
                "field": r.field,
                "value": r.value,
                "comment": r.comment,
                "external_ref": r.external_ref,
                "received_at": r.received_at,
                "requested_by": r.requested_by,
            },
        )
        ids.append(int(result.scalar_one()))
    return ids


async def statuses_of(conn: AsyncConnection, ids: Sequence[int]) -> dict[int, str]:
    rows = await conn.execute(
        text("SELECT id, status FROM gdpr_requests WHERE id = ANY(CAST(:ids AS bigint[]))"), {"ids": list(ids)}
    )
    return {int(r[0]): r[1] for r in rows}


async def list_requests(
    engine: AsyncEngine,
    *,
    statuses: Sequence[str] = (),
    request_type: str | None = None,
    service_id: int | None = None,
    overdue: bool = False,
    due_within_seconds: float | None = None,
    ref: str | None = None,
    unconfirmed_hours: float | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Requests matching every filter given; newest first, or by deadline when filtering on it.

    ``due_within_seconds``: open requests due before now + that, overdue ones included.
    ``ref``: external_ref equal to it or starting with it and ``/`` (a group entered with
    ``--all-services``).  ``limit`` 0 means no limit.
    """
    where = ["TRUE"]
    params: dict[str, Any] = {}
    if statuses:
        bad = [s for s in statuses if s not in STATUSES]
        if bad:
            raise RequestError(f"unknown status {bad[0]!r}; use one of {', '.join(STATUSES)}")
        where.append("status = ANY(CAST(:statuses AS text[]))")
        params["statuses"] = list(statuses)
    if request_type:
        where.append("request_type = :request_type")
        params["request_type"] = request_type
    if service_id is not None:
        where.append("service_id = :service_id")
        params["service_id"] = service_id
    if overdue:
        where.append(f"due_at < now() AND {OPEN_SQL}")
    if due_within_seconds is not None:
        where.append(f"due_at < now() + make_interval(secs => :within) AND {OPEN_SQL}")
        params["within"] = float(due_within_seconds)
    if ref:
        # starts_with is exact (no LIKE wildcards in the DPO's ref to escape).
        where.append("(external_ref = :ref OR starts_with(external_ref, :ref || '/'))")
        params["ref"] = ref
    if unconfirmed_hours is not None:
        where.append(
            "status = 'submitted' AND confirmed_at IS NULL "
            "AND submitted_at < now() - make_interval(secs => :unconf * 3600)"
        )
        params["unconf"] = unconfirmed_hours
    order = "due_at, id" if overdue or due_within_seconds is not None else "id DESC"
    sql = f"SELECT {LIST_COLUMNS} FROM gdpr_requests WHERE {' AND '.join(where)} ORDER BY {order}"  # noqa: S608 - fixed fragments
    if limit > 0:
        sql += " LIMIT :limit"
        params["limit"] = limit
    async with engine.connect() as conn:
        rows = await conn.execute(text(sql), params)
        return [dict(r._mapping) for r in rows]


async def get_request(engine: AsyncEngine, request_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(text(f"SELECT {LIST_COLUMNS} FROM gdpr_requests WHERE id = :id"), {"id": request_id})  # noqa: S608
        ).first()
        if row is None:
            raise RequestError(f"there is no request {request_id}")
        log = await conn.execute(
            text(
                "SELECT id, at, from_status, to_status, detail, actor FROM gdpr_request_log "
                "WHERE request_id = :id ORDER BY id"
            ),
            {"id": request_id},
        )
        return dict(row._mapping), [dict(r._mapping) for r in log]


# SQLSTATEs the DPO functions (migrations 0003, 0004) refuse with: the message is a sentence
# for the DPO, one line per request.
REFUSALS = frozenset({"55000", "P0002", "22023"})  # not in prerequisite state, no data found, bad parameter


def refusal(exc: BaseException) -> RequestError | None:
    """The DPO-facing refusal a database function raised, or None for any other error."""
    seen: BaseException | None = exc
    while seen is not None:
        if getattr(seen, "sqlstate", None) in REFUSALS and hasattr(seen, "as_dict"):  # asyncpg's own error
            return RequestError(str(seen))
        seen = getattr(seen, "orig", None) or seen.__cause__
    return None


async def call_function(engine: AsyncEngine, sql: str, params: dict[str, Any]) -> Any:
    """Call one DPO function in its own transaction, refusals as RequestError."""
    try:
        async with engine.begin() as conn:
            return (await conn.execute(text(sql), params)).first()
    except DBAPIError as exc:
        refused = refusal(exc)
        if refused is None:
            raise
        raise refused from None


async def retry_request(engine: AsyncEngine, request_id: int, *, actor: str) -> None:
    """A failed or rejected request goes back to pending, attempts from zero."""
    await call_function(engine, "SELECT gdpr_retry_request(:id, :actor)", {"id": request_id, "actor": actor})


async def cancel_request(engine: AsyncEngine, request_id: int, *, actor: str, reason: str | None = None) -> None:
    """Cancel a request not yet submitted (awaiting approval, pending, failed or rejected)."""
    await call_function(
        engine, "SELECT gdpr_cancel_request(:id, :actor, :reason)", {"id": request_id, "actor": actor, "reason": reason}
    )


def same_person(a: str | None, b: str | None) -> bool:
    """Whether two recorded names are the same person (as the database compares them)."""
    return a is not None and b is not None and a.strip().lower() == b.strip().lower()


async def approve_requests(engine: AsyncEngine, ids: Sequence[int], *, actor: str) -> list[int]:
    """Four eyes: move requests from awaiting_approval to pending, all or none.

    Refused (every reason, one line each) when a request does not await approval, when the
    approver is who entered it, or when nobody knows who entered it.  The approver is the
    database login; ``actor`` counts only for a login acting as the schema owner (migration
    0005).  Both names go into the history.
    """
    if not actor.strip():
        raise RequestError("give the approver's name with --actor")
    row = await call_function(
        engine, "SELECT gdpr_approve_requests(CAST(:ids AS bigint[]), :actor)", {"ids": list(ids), "actor": actor}
    )
    return [int(i) for i in row[0]]


async def pending_for_dry_run(engine: AsyncEngine) -> list[dict[str, Any]]:
    """Every request waiting to be submitted (pending or awaiting approval), without the value.

    Read in a READ ONLY transaction: a dry run cannot change anything even by mistake.
    """
    async with engine.connect() as conn:
        await conn.execute(text("SET TRANSACTION READ ONLY"))
        rows = await conn.execute(
            text(
                "SELECT id, request_type, service_id, table_name, record_id, field, comment, external_ref, "
                "status, attempts, next_attempt_at, due_at, (next_attempt_at > now()) AS later, "
                "(value IS NOT NULL) AS has_value FROM gdpr_requests "
                "WHERE status IN ('pending', 'awaiting_approval') ORDER BY next_attempt_at, id"
            )
        )
        result = [dict(r._mapping) for r in rows]
        await conn.rollback()
        return result


async def status_counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT status, count(*) FROM gdpr_requests GROUP BY status"))
        return {r[0]: int(r[1]) for r in rows}


async def confirmed_count(engine: AsyncEngine) -> int:
    """Requests a matching OwnBackup event has confirmed, whichever pull found it."""
    async with engine.connect() as conn:
        result = await conn.execute(text("SELECT count(*) FROM gdpr_requests WHERE confirmed_at IS NOT NULL"))
        return int(result.scalar_one())


# A verification of the erasure in a backup (gdpr_daemon.verify): a history row from the submitted
# status to itself, written only while the request is still submitted.
_RECORD_VERIFICATION = text("""
INSERT INTO gdpr_request_log (request_id, from_status, to_status, detail, actor)
SELECT id, status, status, :detail, :actor FROM gdpr_requests WHERE id = :id AND status = 'submitted'
RETURNING id
""")


async def record_verification(engine: AsyncEngine, request_id: int, *, detail: str, actor: str) -> bool:
    """Add a verification's sentence to the request's history; False if it is no longer submitted."""
    params = {"id": request_id, "detail": detail, "actor": actor}
    try:
        async with engine.begin() as conn:
            return (await conn.execute(_RECORD_VERIFICATION, params)).first() is not None
    except DBAPIError as exc:
        seen: BaseException | None = exc
        while seen is not None and getattr(seen, "sqlstate", None) is None:
            seen = getattr(seen, "orig", None) or seen.__cause__
        if seen is not None and getattr(seen, "sqlstate", None) == "42501":  # insufficient privilege
            raise RequestError(
                "this database role may not write the request history; run `requests verify` as the "
                "daemon's role (gdpr_daemon) or the schema owner"
            ) from None
        raise
