"""The daemon's own checks of a claimed request (pure function, no I/O)."""

from __future__ import annotations

import pytest

from gdpr_daemon.db.queue import ClaimedRequest
from gdpr_daemon.rules import submission_problem as problem


def req(**kw) -> ClaimedRequest:
    base = dict(id=1, request_type="forget", service_id=1001, table_name="Contact", record_id="0035g00000AbCdE",
                field=None, value=None, comment=None, external_ref=None, attempts=1)
    base.update(kw)
    return ClaimedRequest(**base)


@pytest.mark.parametrize(
    "ok",
    [req(), req(table_name="Invoice__c"), req(table_name="ns__Thing__c"),
     req(request_type="rectify", field="Email", value="x"), req(request_type="rectify", field="Phone__c", value="")],
)
def test_valid_requests_pass(ok):
    """Well-formed forget and rectify requests (custom objects and fields too) have no problem."""
    assert problem(ok) is None


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (req(request_type="erase"), "neither forget nor rectify"),
        (req(record_id=" 003A"), "leading or trailing white space"),
        (req(record_id="003\u0085A"), "control character"),
        (req(record_id="x" * 256), "longer than 255"),
        (req(table_name="Contact Person"), "not a Salesforce object API name"),
        (req(table_name="1Contact"), "not a Salesforce object API name"),
        (req(table_name="Contact;DROP"), "not a Salesforce object API name"),
        (req(request_type="rectify", field=None, value="x"), "field missing"),
        (req(request_type="rectify", field="E-mail", value="x"), "not a Salesforce field API name"),
        (req(request_type="rectify", field="Email", value=None), "value is missing"),
    ],
)
def test_each_problem_is_one_sentence(bad, words):
    """Each bad request gets one sentence naming what is wrong."""
    msg = problem(bad)
    assert msg is not None and words in msg and msg.endswith(".") and "\n" not in msg


def test_problem_never_repeats_the_value():
    """A rectify value never appears in a rejection reason."""
    secret = "PII-VALUE-never-shown"
    for r in (req(request_type="rectify", field="E-mail", value=secret), req(request_type="rectify", field=None, value=secret)):
        assert secret not in (problem(r) or "")


def test_control_pattern_is_exactly_unicode_category_cc():
    """The fast pattern refuses exactly the characters Unicode calls controls, no more, no fewer."""
    import sys
    import unicodedata

    from gdpr_daemon.rules import CONTROL

    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        assert (CONTROL.search(ch) is not None) == (unicodedata.category(ch) == "Cc"), hex(code)
