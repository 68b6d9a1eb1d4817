"""What an error means: one clear sentence for the user, and whether the database is away.

Database errors are described by their constraint or condition, never by their DETAIL,
which repeats the row (and so the personal data) that was refused.  :func:`db_errors` and
:func:`data_error` tell the daemon's loops an outage (wait and try again) from data the
database refuses (record it row by row, never retry it as an outage).
"""

from __future__ import annotations

import asyncio

CONSTRAINTS = {
    "purged_request_stays_finished": (
        "the request's personal fields were purged after the retention period; enter it again as a new request"
    ),
    "gdpr_request_log_append_only": (
        "the request history is append-only; rows leave it only through the retention purge"
    ),
    "audit_events_append_only": "the account event log is append-only; rows leave it only through the retention purge",
    "external_ref_not_blank": "external_ref is empty or only white space; leave it out or give the case id",
    "gdpr_requests_external_ref_key": "external_ref is already used by another request; each case needs its own",
    "request_type_is_forget_or_rectify": "request_type must be forget or rectify",
    "status_is_known": "status is not one of the known request states",
    "service_id_is_positive": "service_id must be a positive number",
    "record_id_not_blank": "record_id is empty or only white space",
    "table_name_not_blank": "table_name is empty or only white space",
    "field_not_blank": "field is empty or only white space",
    "record_id_no_control_characters": "record_id contains a control character",
    "table_name_no_control_characters": "table_name contains a control character",
    "field_no_control_characters": "field contains a control character",
    "external_ref_no_control_characters": "external_ref contains a control character",
    "record_id_at_most_255_characters": "record_id is longer than 255 characters",
    "table_name_at_most_255_characters": "table_name is longer than 255 characters",
    "field_at_most_255_characters": "field is longer than 255 characters",
    "external_ref_at_most_255_characters": "external_ref is longer than 255 characters",
    "value_at_most_131072_characters": "the rectify value is longer than 131072 characters",
    "comment_at_most_4000_characters": "comment is longer than 4000 characters",
    "rectify_needs_field_and_value": "a rectify request needs both a field and a value",
    "forget_has_no_field_or_value": "a forget request takes no field or value",
    "approver_differs_from_requester": "a request must be approved by someone other than the person who entered it",
    "approval_needs_approver": "a request awaiting approval leaves that state only when a second person approves it",
    "deadline_extended_only_once": "the deadline was extended once already; GDPR Art. 12(3) allows one extension",
    "deadline_extension_at_most_two_months": "a deadline can be extended by at most two further months",
    "deadline_not_earlier": "a deadline cannot be moved earlier",
    "original_due_at_set_by_extension": "original_due_at is set by the database when a deadline is extended",
    "received_at_from_2000_to_2199": "received_at must be a date from 2000 to 2199",
    "due_at_from_2000_to_2200": "due_at must be a date from 2000 to 2200",
    "requested_by_at_most_255_characters": "requested_by is longer than 255 characters",
    "requested_by_no_control_characters": "requested_by contains a control character",
    "approved_by_at_most_255_characters": "approved_by is longer than 255 characters",
    "approved_by_no_control_characters": "approved_by contains a control character",
    "history_detail_at_most_4000_characters": "a history sentence is longer than 4000 characters",
    "history_actor_at_most_255_characters": "a history actor is longer than 255 characters",
    "entered_fields_unchanged": "what the DPO entered cannot be changed by this database role",
    "value_only_erased": "the rectify value can only be erased (its SHA-256 kept), not changed",
    "value_sha256_is_its_digest": "value_sha256 must be the SHA-256 of the rectify value",
    "retention_floor_only_raised": (
        "only the schema owner can shorten a retention period: run `gdpr-daemon migrate` as the owner"
    ),
    "retention_floor_is_days": "a retention period is a whole number of days from 0 to 36500",
}


# What to do next, for the conditions a user meets on a new or misconfigured database.
NEXT_STEP = {
    "42P01": "the schema is missing or older than this version: run `gdpr-daemon migrate`",
    "42703": "the schema is older than this version: run `gdpr-daemon migrate`",
    "3D000": "create it (or correct database_url), then run `gdpr-daemon migrate`",
    "28P01": "Postgres refused the password: check the user and password in database_url",
    "28000": "Postgres refused the login: check the user in database_url and pg_hba.conf",
    "42501": "the database role lacks a privilege for this: see config/sql/roles.sql for the roles",
}


def _root(exc: BaseException) -> BaseException:
    seen = exc
    while True:
        nxt = getattr(seen, "orig", None) or seen.__cause__
        if nxt is None or nxt is seen:
            return seen
        seen = nxt


def constraint_message(exc: BaseException) -> str | None:
    root = _root(exc)
    name = getattr(root, "constraint_name", None)
    if name:
        return CONSTRAINTS.get(name, f"the database refused it (constraint {name})")
    return None


def describe(exc: BaseException) -> str:
    from gdpr_daemon.ownbackup import OwnBackupError

    if isinstance(exc, OwnBackupError):
        return str(exc)
    msg = constraint_message(exc)
    if msg:
        return f"refused: {msg}"
    root = _root(exc)
    if isinstance(root, ConnectionRefusedError | OSError) and not hasattr(root, "sqlstate"):
        return f"cannot reach the database: {root.strerror or root}; check database_url and that Postgres runs"
    sqlstate = getattr(root, "sqlstate", None)
    if sqlstate:
        # asyncpg's message is the primary line only (no DETAIL with row values).
        message = f"database error {sqlstate}: {getattr(root, 'message', type(root).__name__)}"
        step = NEXT_STEP.get(sqlstate)
        return f"{message}; {step}" if step else message
    return f"{type(root).__name__}: {root}"


# ---- what the daemon does about a database error ----------------------------------------


def db_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean 'the database is unavailable right now'."""
    import asyncpg
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    # asyncpg's own errors come unwrapped from the statements run on the driver's connection
    # (QueueStore._fetch): a server error there is PostgresError.
    # InternalClientError: a connection left with an operation under way ("another operation
    # is in progress"); QueueStore._fetch drops such a connection, so the next try gets a new one.
    return (OSError, asyncpg.PostgresError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
            asyncpg.InternalClientError, DBAPIError, OperationalError, InterfaceError,
            asyncio.TimeoutError)  # fmt: skip


#: SQLSTATE classes that mean "the database refuses these values", not "it is away":
#: 22 data exception (out of range, NUL, bad encoding), 23 integrity constraint (a
#: CHECK), 54 program limit (a value too large to index).
DATA_ERROR_CLASSES = ("22", "23", "54")


def data_error(exc: BaseException) -> str | None:
    """The SQLSTATE when ``exc`` is the database refusing the data (see DATA_ERROR_CLASSES), else None.

    The driver's own refusals of a parameter (an integer beyond 64 bits, a lone surrogate)
    come as ``asyncpg.DataError``, which is also an ``InterfaceError``: they are data
    errors too, not a lost connection.
    """
    import asyncpg

    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        state = getattr(seen, "sqlstate", None)
        if isinstance(state, str) and state[:2] in DATA_ERROR_CLASSES:
            return state
        if state is None and isinstance(seen, asyncpg.InterfaceError) and isinstance(seen, ValueError):
            return "22000"  # the driver's DataError, raised unwrapped by statements on its connection
        seen = getattr(seen, "orig", None) or seen.__cause__
    return None
