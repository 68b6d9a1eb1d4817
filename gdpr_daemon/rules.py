"""What a valid request is: the states, the types, the bounds, and the checks at entry and before submission.

One home for these rules, used at entry (``submit``, ``import``: :func:`request_problems`,
every problem of a request the DPO enters) and by the daemon just before a submission
(:func:`submission_problem`, the first reason a claimed request cannot go out).  The
database enforces the same bounds with CHECK constraints (migrations 0001-0005), with the
same sentences (:data:`gdpr_daemon.errors.CONSTRAINTS`).  Pure functions, no I/O; a
message never repeats a rectify value nor a comment, and names are shown cut short.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from gdpr_daemon.errors import CONSTRAINTS

if TYPE_CHECKING:
    from gdpr_daemon.db.queue import ClaimedRequest
    from gdpr_daemon.db.requests import NewRequest

# ---- the contract: states and types --------------------------------------------------------

PENDING = "pending"
IN_FLIGHT = "in_flight"
SUBMITTED = "submitted"
FAILED = "failed"
REJECTED = "rejected"
CANCELLED = "cancelled"
AWAITING_APPROVAL = "awaiting_approval"
STATUSES = (AWAITING_APPROVAL, PENDING, IN_FLIGHT, SUBMITTED, FAILED, REJECTED, CANCELLED)
FINISHED = (SUBMITTED, FAILED, REJECTED, CANCELLED)

FORGET = "forget"
RECTIFY = "rectify"
REQUEST_TYPES = (FORGET, RECTIFY)

# ---- bounds, as the CHECK constraints have them ---------------------------------------------

MAX_ID_LENGTH = 255  # record_id, table_name, field, external_ref, requested_by
MAX_VALUE_LENGTH = 131072
MAX_COMMENT_LENGTH = 4000
MAX_SERVICE_ID = 2**31 - 1  # the column is a Postgres integer

# Salesforce API names: a letter, then letters, digits and underscores (custom objects
# and fields end in __c, namespaced ones carry a prefix__).
API_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")

# Exactly the Unicode category Cc (C0 controls, DEL, C1 controls); a test checks it.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")

_SAFE_TOKEN = re.compile(r"[A-Za-z0-9_.:/ -]{1,40}\Z")


def has_control(s: str) -> bool:
    return CONTROL.search(s) is not None


def shown(s: str, limit: int = 60) -> str:
    """A name as it may appear in a message: quoted, cut short, control characters escaped."""
    cut = s if len(s) <= limit else s[: limit - 1] + "…"
    return repr(cut)


# ---- at entry: every problem ------------------------------------------------------------------


def _name_problems(column: str, value: str | None, *, api_name: str | None) -> list[str]:
    """table_name, record_id and field: present, one line, at most 255 characters."""
    if value is None or not value.strip():
        return [CONSTRAINTS[f"{column}_not_blank"] if column != "field" else
                "a rectify request needs a field (the field to correct, like Email)"]  # fmt: skip
    if has_control(value):
        return [CONSTRAINTS[f"{column}_no_control_characters"]]
    if len(value) > MAX_ID_LENGTH:
        return [CONSTRAINTS[f"{column}_at_most_255_characters"]]
    if api_name and not API_NAME.match(value):
        return [f"{column} {shown(value)} is not a Salesforce {api_name}"]
    if value != value.strip():
        return [f"{column} has leading or trailing white space"]
    return []


def _text_problems(r: NewRequest) -> list[str]:
    """comment, external_ref and requested_by: storable and bounded."""
    problems: list[str] = []
    if r.comment is not None:
        if "\x00" in r.comment:
            problems.append("comment contains a NUL character, which cannot be stored")
        elif len(r.comment) > MAX_COMMENT_LENGTH:
            problems.append(CONSTRAINTS["comment_at_most_4000_characters"])
    if r.external_ref is not None:
        if not r.external_ref.strip():
            problems.append("external_ref is only white space; leave it empty or give the case id")
        elif has_control(r.external_ref):
            problems.append(CONSTRAINTS["external_ref_no_control_characters"])
        elif len(r.external_ref) > MAX_ID_LENGTH:
            problems.append(CONSTRAINTS["external_ref_at_most_255_characters"])
    if r.requested_by is not None:
        if has_control(r.requested_by):
            problems.append("requested_by contains a control character")
        elif len(r.requested_by) > MAX_ID_LENGTH:
            problems.append(f"requested_by is longer than {MAX_ID_LENGTH} characters")
    return problems


def request_problems(r: NewRequest) -> list[str]:
    """Everything wrong with ``r``, one sentence each (no full stop); empty when it can be entered."""
    problems: list[str] = []
    if r.request_type not in REQUEST_TYPES:
        if _SAFE_TOKEN.match(r.request_type or ""):
            problems.append(f"request_type {r.request_type!r} is neither forget nor rectify")
        else:
            problems.append(CONSTRAINTS["request_type_is_forget_or_rectify"])
    if not 0 < r.service_id <= MAX_SERVICE_ID:
        too_big = f"service_id is larger than {MAX_SERVICE_ID}"
        problems.append(CONSTRAINTS["service_id_is_positive"] if r.service_id <= 0 else too_big)
    problems += _name_problems(
        "table_name", r.table_name, api_name="object API name (like Contact or Invoice__c)"
    )
    problems += _name_problems("record_id", r.record_id, api_name=None)
    if r.request_type == RECTIFY:
        problems += _name_problems("field", r.field, api_name="field API name (like Email or Phone__c)")
        if r.value is None:
            problems.append("a rectify request needs a value (the corrected value)")
        elif "\x00" in r.value:
            problems.append("the rectify value contains a NUL character, which cannot be stored")
        elif len(r.value) > MAX_VALUE_LENGTH:
            problems.append(CONSTRAINTS["value_at_most_131072_characters"])
    elif r.request_type == FORGET and (r.field is not None or r.value is not None):
        problems.append(CONSTRAINTS["forget_has_no_field_or_value"])
    return problems + _text_problems(r)


# ---- before submission: the first reason it cannot go out ---------------------------------


def submission_problem(req: ClaimedRequest) -> str | None:
    """Why the request cannot be submitted as it stands (one sentence saying what to do), or None.

    What the database cannot check at INSERT, or what a row written before a CHECK existed
    may still hold; the worker rejects the request with this sentence.
    """
    if req.request_type not in REQUEST_TYPES:
        return f"request_type {req.request_type!r} is neither forget nor rectify."
    if not req.record_id.strip():
        return "record_id is empty; give the id of the record in the Salesforce object."
    if req.record_id != req.record_id.strip():
        return "record_id has leading or trailing white space; correct it and retry the request."
    if has_control(req.record_id):
        return "record_id contains a control character; correct it and retry the request."
    if len(req.record_id) > MAX_ID_LENGTH:
        return f"record_id is longer than {MAX_ID_LENGTH} characters."
    if not API_NAME.match(req.table_name):
        return (
            f"table_name {req.table_name[:80]!r} is not a Salesforce object API name "
            "(a letter, then letters, digits or underscores, like Contact or Invoice__c)."
        )
    if req.request_type == RECTIFY:
        if req.field is None or not API_NAME.match(req.field):
            field = "missing" if req.field is None else f"{req.field[:80]!r}"
            return f"field {field} is not a Salesforce field API name (like Email or Phone__c)."
        if req.value is None:
            return "the rectify value is missing (it may have been erased already); enter it again."
    return None
