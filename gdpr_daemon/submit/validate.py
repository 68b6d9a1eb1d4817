"""Checks the database cannot make at INSERT, applied by the daemon before a submission.

Each returns one sentence saying what is wrong and what to do, or None.  Pure functions:
no I/O, so they are tested exhaustively and cheaply.
"""

from __future__ import annotations

import re

from gdpr_daemon.db.queue import ClaimedRequest
from gdpr_daemon.db.tables import MAX_ID_LENGTH, RECTIFY, REQUEST_TYPES

# Salesforce API names: a letter, then letters, digits and underscores (custom objects
# and fields end in __c, namespaced ones carry a prefix__).
API_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


# Exactly the Unicode category Cc (C0 controls, DEL, C1 controls); a test checks it.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _has_control(s: str) -> bool:
    return CONTROL.search(s) is not None


def problem(req: ClaimedRequest) -> str | None:
    """Why the request cannot be submitted as it stands, or None if it can."""
    if req.request_type not in REQUEST_TYPES:
        return f"request_type {req.request_type!r} is neither forget nor rectify."
    if not req.record_id.strip():
        return "record_id is empty; give the id of the record in the Salesforce object."
    if req.record_id != req.record_id.strip():
        return "record_id has leading or trailing white space; correct it and retry the request."
    if _has_control(req.record_id):
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
            shown = "missing" if req.field is None else f"{req.field[:80]!r}"
            return f"field {shown} is not a Salesforce field API name (like Email or Phone__c)."
        if req.value is None:
            return "the rectify value is missing (it may have been erased already); enter it again."
    return None
