"""Checks of a request before it is entered (``submit``, ``import``): pure functions.

They refuse what the database's CHECK constraints would refuse, with the same sentences
(:data:`gdpr_daemon.errors.CONSTRAINTS`), and what the daemon would reject later anyway
(an object or field that is not a Salesforce API name), so a file is refused line by line
at entry instead of failing one request at a time.  A message never repeats the rectify
value nor a comment; names and ids are shown cut short.
"""

from __future__ import annotations

import re
import unicodedata

from gdpr_daemon.db.requests import NewRequest
from gdpr_daemon.db.tables import (
    FORGET,
    MAX_COMMENT_LENGTH,
    MAX_ID_LENGTH,
    MAX_VALUE_LENGTH,
    RECTIFY,
    REQUEST_TYPES,
)
from gdpr_daemon.errors import CONSTRAINTS
from gdpr_daemon.submit.validate import API_NAME

__all__ = ["MAX_SERVICE_ID", "has_control", "request_problems", "shown"]

MAX_SERVICE_ID = 2**31 - 1  # the column is a Postgres integer
_SAFE_TOKEN = re.compile(r"[A-Za-z0-9_.:/ -]{1,40}\Z")


def has_control(s: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in s)


def shown(s: str, limit: int = 60) -> str:
    """A name as it may appear in a message: quoted, cut short, control characters escaped."""
    cut = s if len(s) <= limit else s[: limit - 1] + "…"
    return repr(cut)


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
