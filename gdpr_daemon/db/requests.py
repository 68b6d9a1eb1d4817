"""The DPO's side of the request table: enqueue, look, retry, cancel.

Each action that changes a request writes its history row in the same transaction.
Nothing returned here carries the rectify ``value``; only whether one is held.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gdpr_daemon.db.tables import CANCELLED, FAILED, PENDING, REJECTED, STATUSES

LIST_COLUMNS = """id, request_type, service_id, table_name, record_id, field, comment, external_ref,
    received_at, due_at, status, attempts, next_attempt_at, ownbackup_request_id, last_error,
    created_at, updated_at, submitted_at, confirmed_at, value_sha256, requested_by, approved_by,
    (value IS NOT NULL) AS has_value"""


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
    """Insert in the caller's transaction (all or nothing); returns the new ids."""
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


async def list_requests(
    engine: AsyncEngine,
    *,
    statuses: Sequence[str] = (),
    request_type: str | None = None,
    service_id: int | None = None,
    overdue: bool = False,
    unconfirmed_hours: float | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    where = ["TRUE"]
    params: dict[str, Any] = {"limit": limit}
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
        where.append("due_at < now() AND status NOT IN ('submitted', 'cancelled')")
    if unconfirmed_hours is not None:
        where.append(
            "status = 'submitted' AND confirmed_at IS NULL "
            "AND submitted_at < now() - make_interval(secs => :unconf * 3600)"
        )
        params["unconf"] = unconfirmed_hours
    sql = f"SELECT {LIST_COLUMNS} FROM gdpr_requests WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT :limit"  # noqa: S608 - fixed fragments
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


async def _transition(
    engine: AsyncEngine,
    request_id: int,
    *,
    allowed_from: Sequence[str],
    to_status: str,
    detail: str,
    actor: str,
    extra_set: str = "",
    refusal: dict[str, str] | None = None,
) -> None:
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                text("SELECT status FROM gdpr_requests WHERE id = :id FOR UPDATE"), {"id": request_id}
            )
        ).first()
        if row is None:
            raise RequestError(f"there is no request {request_id}")
        status = row[0]
        if status not in allowed_from:
            reason = (refusal or {}).get(status) or (
                f"request {request_id} is {status}; only {' or '.join(allowed_from)} requests can be changed this way"
            )
            raise RequestError(reason)
        await conn.execute(
            text(f"UPDATE gdpr_requests SET status = :to, updated_at = now(){extra_set} WHERE id = :id"),  # noqa: S608
            {"to": to_status, "id": request_id},
        )
        await conn.execute(
            text(
                "INSERT INTO gdpr_request_log (request_id, from_status, to_status, detail, actor) "
                "VALUES (:id, :from_status, :to, :detail, :actor)"
            ),
            {"id": request_id, "from_status": status, "to": to_status, "detail": detail, "actor": actor},
        )
        if to_status == PENDING:
            await conn.execute(text("SELECT pg_notify('gdpr_requests', '')"))


async def retry_request(engine: AsyncEngine, request_id: int, *, actor: str) -> None:
    await _transition(
        engine,
        request_id,
        allowed_from=(FAILED, REJECTED),
        to_status=PENDING,
        detail="retried by the DPO: attempts start again",
        actor=actor,
        extra_set=", attempts = 0, next_attempt_at = now(), last_error = NULL",
        refusal={
            "submitted": f"request {request_id} was submitted already; nothing to retry",
            "pending": f"request {request_id} is pending already; the daemon will submit it",
            "in_flight": f"request {request_id} is being submitted right now",
        },
    )


async def cancel_request(engine: AsyncEngine, request_id: int, *, actor: str, reason: str | None = None) -> None:
    await _transition(
        engine,
        request_id,
        allowed_from=("awaiting_approval", PENDING, FAILED, REJECTED),
        to_status=CANCELLED,
        detail="cancelled by the DPO" + (f": {reason}" if reason else ""),
        actor=actor,
        refusal={
            "in_flight": f"request {request_id} is being submitted right now; it cannot be cancelled",
            "submitted": f"request {request_id} was submitted to OwnBackup already; it cannot be cancelled",
            CANCELLED: f"request {request_id} is cancelled already",
        },
    )


async def status_counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT status, count(*) FROM gdpr_requests GROUP BY status"))
        return {r[0]: int(r[1]) for r in rows}
