"""``report requests`` in each format, against known data and against the database."""

from __future__ import annotations

import csv
import io
import json
import statistics

import pytest

from gdpr_daemon.audit.reports import write_requests_report
from gdpr_daemon.db.audit_reports import REQUEST_COLUMNS
from tests.helpers import PII_MARKER

from .reportdata import (
    AS_OF,
    EXPECTED_ATTENTION,
    EXPECTED_DAYS,
    EXPECTED_SUMMARY,
    EXPECTED_WEEKS,
    FORMULA_REF,
    SINCE,
    UNTIL,
    insert_known_requests,
    read_html,
)  # fmt: skip


async def render(engine, fmt: str) -> str:
    out = io.StringIO()
    await write_requests_report(engine, out, fmt, since=SINCE, until=UNTIL, as_of=AS_OF)
    return out.getvalue()


async def database_figures(pg) -> dict:
    """The summary figures computed independently from the table."""
    rows = await pg.fetch(
        "SELECT *, extract(epoch FROM submitted_at - received_at) / 86400 AS days FROM gdpr_requests "
        "WHERE received_at >= $1 AND received_at < $2", SINCE, UNTIL,
    )  # fmt: skip
    days = sorted(float(r["days"]) for r in rows if r["days"] is not None)
    overdue = [r for r in rows if (r["submitted_at"] or AS_OF) > r["due_at"] and r["status"] != "cancelled"]
    return {
        "requests": len(rows),
        "submitted": sum(r["submitted_at"] is not None for r in rows),
        "overdue": len(overdue),
        "failed": sum(r["status"] == "failed" for r in rows),
        "median_days_to_submit": round(statistics.median(days), 2),
        "p95_days_to_submit": round(statistics.quantiles(days, n=20, method="inclusive")[-1], 2),
    }


async def test_csv_is_exactly_one_header_and_one_line_per_request(engine, pg):
    """The CSV holds the header and one line per request of the period, nothing else, ISO UTC times, formulas neutralised."""
    ids = await insert_known_requests(pg)
    text = await render(engine, "csv")
    assert PII_MARKER not in text
    lines = text.split("\r\n")
    assert lines[-1] == "" and len(lines) == 1 + 6 + 1
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == REQUEST_COLUMNS
    by_ref = {r["external_ref"]: r for r in rows}
    assert "'" + FORMULA_REF in by_ref and FORMULA_REF not in by_ref, "a formula cell is escaped"
    first = by_ref["CASE-1"]
    assert first == {
        "request_id": str(ids["CASE-1"]), "external_ref": "CASE-1", "request_type": "forget", "service_id": "1001",
        "received_at": "2026-03-02T09:00:00.000Z", "due_at": "2026-04-02T09:00:00.000Z",
        "submitted_at": "2026-03-03T09:00:00.000Z", "confirmed_at": "2026-03-03T10:00:00.000Z",
        "ownbackup_request_id": "101", "attempts": "1", "status": "submitted", "days_to_submit": "1.00",
        "overdue": "false",
    }  # fmt: skip
    assert by_ref["CASE-2"]["days_to_submit"] == "4.50" and by_ref["CASE-2"]["due_at"] == "2026-04-06T12:00:00.000Z"
    assert by_ref["CASE-3"]["submitted_at"] == "" and by_ref["CASE-3"]["overdue"] == "true"
    assert by_ref["CASE-5"]["overdue"] == "false", "a cancelled request is not overdue"
    assert "OLD-1" not in by_ref


async def test_json_summary_figures(engine, pg):
    """JSON carries the summary (counts, median and p95 days, every overdue or failed request) and the rows."""
    await insert_known_requests(pg)
    report = json.loads(await render(engine, "json"))
    summary = report["summary"]
    for key, expected in EXPECTED_SUMMARY.items():
        assert summary[key] == expected, key
    for key, value in (await database_figures(pg)).items():
        assert summary[key] == value, key
    assert {r["external_ref"] for r in summary["overdue_or_failed_requests"]} == EXPECTED_ATTENTION
    assert [(w["week"], w["received"], w["submitted"]) for w in summary["weekly"]] == EXPECTED_WEEKS
    days = {int(h["days"].rstrip("+")): h["requests"] for h in summary["days_to_submit_histogram"] if h["requests"]}
    assert days == EXPECTED_DAYS
    assert len(report["requests"]) == 6 and set(report["requests"][0]) == set(REQUEST_COLUMNS)
    assert report["period"] == {"since": "2026-02-01T00:00:00.000Z", "until": "2026-04-01T00:00:00.000Z"}
    assert PII_MARKER not in json.dumps(report)


async def test_html_is_self_contained_and_its_numbers_match_the_database(engine, pg):
    """The HTML report fetches nothing, has both charts, and every figure, bar and row agrees with the database."""
    ids = await insert_known_requests(pg)
    text = await render(engine, "html")
    page = read_html(text)
    assert PII_MARKER not in text
    assert page.urls == [] and not page.tags & {"script", "link", "img", "iframe", "object"}
    assert "@media print" in text and "http" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
        FORMULA_REF.replace('"', "&quot;"), "")

    expected = await database_figures(pg)
    for key, value in expected.items():
        assert float(page.figures[key]) == value, key
    assert int(page.figures["confirmed"]) == EXPECTED_SUMMARY["confirmed"]
    for table, key in (("by-type", "by_type"), ("by-status", "by_status"), ("by-service", "by_service")):
        assert {r[0]: int(r[1]) for r in page.tables[table][1:]} == EXPECTED_SUMMARY[key]

    weekly = {}
    for bar in page.bars:
        if "data-week" in bar:
            weekly.setdefault(bar["data-week"], {}).update({k[5:]: int(v) for k, v in bar.items() if k in ("data-received", "data-submitted")})
    assert [(w, c["received"], c["submitted"]) for w, c in sorted(weekly.items())] == EXPECTED_WEEKS
    days = {int(b["data-days"].rstrip("+")): int(b["data-count"]) for b in page.bars if "data-days" in b}
    assert {d: n for d, n in days.items() if n} == EXPECTED_DAYS and len(days) == 32
    assert {"weekly-chart", "days-chart", "figures", "requests-table", "overdue-failed"} <= page.ids

    attention = page.tables["overdue-failed"][1:]
    assert {r[1] for r in attention} == EXPECTED_ATTENTION
    rows = page.tables["requests-table"][1:]
    assert sorted(int(r[0]) for r in rows) == sorted(v for k, v in ids.items() if k != "OLD-1")
    case2 = next(r for r in rows if r[1] == "CASE-2")
    assert case2[4:8] == ["2026-03-04T12:00:00.000Z", "2026-04-06T12:00:00.000Z", "2026-03-09T00:00:00.000Z", ""]
    assert case2[-2:] == ["4.50", "no"]


@pytest.mark.parametrize("fmt", ["csv", "json", "html"])
async def test_empty_period(engine, fmt):
    """A period without requests gives a valid, empty report in each format."""
    text = await render(engine, fmt)
    if fmt == "csv":
        assert text == ",".join(REQUEST_COLUMNS) + "\r\n"
    elif fmt == "json":
        report = json.loads(text)
        assert report["requests"] == [] and report["summary"]["requests"] == 0
        assert report["summary"]["median_days_to_submit"] is None
    else:
        page = read_html(text)
        assert page.figures["requests"] == "0" and "No requests in this period." in text
