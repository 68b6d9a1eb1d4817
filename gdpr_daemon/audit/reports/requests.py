"""``report requests``: one line per GDPR request received in a period, for the DPO.

Columns: request id, the DPO's reference, type, service, received, due, submitted,
confirmed, OwnBackup request id, attempts, status, days to submit and the overdue flag.
The CSV is exactly that, under one header.  JSON and HTML add the summary: counts by type,
status and service, how many submitted requests a later backup proved erased or corrected
(``requests verify``) and how many it still held, the median and 95th percentile days
from receipt to submission, and every overdue or failed request named; HTML adds charts of requests received and
submitted per week and of the days to submit.  Overdue: submitted after the deadline, or
not submitted (and not cancelled) when the report was made.  No rectify value, record id
or comment appears.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any, TextIO

from sqlalchemy.ext.asyncio import AsyncEngine

from gdpr_daemon.audit.reports import charts, html
from gdpr_daemon.audit.reports.common import Progress, ReportResult, csv_cell, iso, json_scalar
from gdpr_daemon.db import audit_reports as q
from gdpr_daemon.db.verification import verification_counts

__all__ = ["COLUMNS", "write_requests_report"]

COLUMNS = (
    ("request_id", "Request"), ("external_ref", "Reference"), ("request_type", "Type"),
    ("service_id", "Service"), ("received_at", "Received"), ("due_at", "Due"),
    ("submitted_at", "Submitted"), ("confirmed_at", "Confirmed"),
    ("ownbackup_request_id", "OwnBackup request id"), ("attempts", "Attempts"), ("status", "Status"),
    ("days_to_submit", "Days to submit"), ("overdue", "Overdue"),
)  # fmt: skip
NUMERIC = ("request_id", "service_id", "ownbackup_request_id", "attempts", "days_to_submit")
assert tuple(k for k, _ in COLUMNS) == q.REQUEST_COLUMNS
PROGRESS_EVERY = 5000


def _json_row(row: Any) -> str:
    return "{" + ",".join(f'"{k}":{json_scalar(v)}' for (k, _), v in zip(COLUMNS, row, strict=True)) + "}"


async def write_requests_report(
    engine: AsyncEngine,
    out: TextIO,
    fmt: str,
    *,
    since: datetime,
    until: datetime,
    as_of: datetime | None = None,
    progress: Progress | None = None,
) -> ReportResult:
    """Write the report of requests received in [since, until) to ``out``."""
    period = q.Period(since, until, as_of or datetime.now(UTC))
    rows = 0
    async with q.snapshot(engine) as conn:
        summary = await q.requests_summary(conn, period)
        checked = await verification_counts(conn, since=period.since, until=period.until)
        summary.update(verified=checked.verified, still_present=checked.still_present)
        if fmt == "csv":
            writer = csv.writer(out, lineterminator="\r\n")
            writer.writerow([k for k, _ in COLUMNS])
            async for batch in q.stream_requests(conn, period):
                writer.writerows([csv_cell(v) for v in row] for row in batch)
                rows = _progress(rows, len(batch), progress)
        elif fmt == "json":
            weeks = await q.weekly_counts(conn, period)
            days = await q.days_histogram(conn, period)
            rows = await _json(conn, out, summary, weeks, days, period, progress)
        elif fmt == "html":
            weeks = await q.weekly_counts(conn, period)
            days = await q.days_histogram(conn, period)
            rows = await _html(conn, out, summary, weeks, days, period, progress)
        else:
            raise ValueError(f"unknown report format {fmt!r}")
    figures = {k: summary[k] for k in ("overdue", "failed")}
    return ReportResult("requests", fmt, rows, figures)


def _progress(rows: int, added: int, progress: Progress | None) -> int:
    total = rows + added
    if progress is not None and total // PROGRESS_EVERY != rows // PROGRESS_EVERY:
        progress(total)
    return total


def _figures(summary: dict[str, Any]) -> list[tuple[str, str, Any]]:
    return [
        ("requests", "Requests received", summary["requests"]),
        ("submitted", "Submitted", summary["submitted"]),
        ("confirmed", "Confirmed by an OwnBackup event", summary["confirmed"]),
        ("verified", "Verified in a backup completed after submission", summary["verified"]),
        ("still_present", "Still present in the latest backup checked", summary["still_present"]),
        ("overdue", "Overdue", summary["overdue"]),
        ("failed", "Failed", summary["failed"]),
        ("median_days_to_submit", "Median days from receipt to submission", summary["median_days_to_submit"]),
        ("p95_days_to_submit", "95th percentile days from receipt to submission", summary["p95_days_to_submit"]),
    ]


async def _json(conn, out: TextIO, summary, weeks, days, period, progress) -> int:  # type: ignore[no-untyped-def]
    since, until, as_of = period.since, period.until, period.as_of
    head = {k: summary[k] for k, _, _ in _figures(summary)} | {"overdue_or_failed": summary["overdue_or_failed"]}
    out.write('{"report":"requests","generated_at":' + json_scalar(iso(as_of))
              + ',"period":{"since":' + json_scalar(iso(since)) + ',"until":' + json_scalar(iso(until)) + "}"
              + ',"summary":{' + ",".join(f'"{k}":{json_scalar(v)}' for k, v in head.items()))  # fmt: skip
    for name in ("by_type", "by_status", "by_service"):
        counts = ",".join(f"{json_scalar(str(k))}:{v}" for k, v in summary[name].items())
        out.write(f',"{name}":{{{counts}}}')
    out.write(',"weekly":[' + ",".join(
        f'{{"week":{json_scalar(w)},"received":{r},"submitted":{s}}}' for w, r, s in weeks) + "]")  # fmt: skip
    last = days[-1][0] if days else None
    buckets = (f'{{"days":{json_scalar(f"{d}+" if d == last else str(d))},"requests":{n}}}' for d, n in days)
    out.write(',"days_to_submit_histogram":[' + ",".join(buckets) + "]")
    out.write(',"overdue_or_failed_requests":[')
    first = True
    async for batch in q.stream_attention(conn, period):
        for row in batch:
            out.write(("\n" if first else ",\n") + _json_row(row))
            first = False
    out.write('\n]},\n"requests":[')
    rows = 0
    async for batch in q.stream_requests(conn, period):
        out.write(("\n" if rows == 0 else ",\n") + ",\n".join(_json_row(row) for row in batch))
        rows = _progress(rows, len(batch), progress)
    out.write("\n]}\n")
    return rows


async def _html(conn, out: TextIO, summary, weeks, days, period, progress) -> int:  # type: ignore[no-untyped-def]
    since, until, as_of = period.since, period.until, period.as_of
    html.open_page(out, "GDPR requests report",
                   f"Requests received from <time id=\"since\">{escape(iso(since))}</time> to "
                   f"<time id=\"until\">{escape(iso(until))}</time> (not included). Generated "
                   f"<time id=\"generated\">{escape(iso(as_of))}</time>. Overdue: submitted after the "
                   "deadline, or still not submitted at that time.")  # fmt: skip
    out.write('<section id="summary">\n<h2>Summary</h2>\n<div class="grid">\n')
    html.figures_table(out, "figures", _figures(summary))
    for name, heading in (("by_type", "Type"), ("by_status", "Status"), ("by_service", "Service")):
        out.write(f'<table id="{name.replace("_", "-")}"><thead><tr><th scope="col">{heading}</th>'
                  '<th scope="col" class="num">Requests</th></tr></thead><tbody>\n')  # fmt: skip
        for key, n in summary[name].items():
            out.write(f'<tr><th scope="row">{escape(str(key))}</th><td class="num" data-count="{n}">{n}</td></tr>\n')
        out.write("</tbody></table>\n")
    out.write("</div>\n</section>\n")

    out.write('<section id="charts">\n<h2>Requests received and submitted per week</h2>\n<figure id="weekly-chart">')
    out.write(charts.weekly_chart(weeks))
    out.write("<figcaption>Weeks start on Monday (UTC). Submitted: requests of this period, "
              "in the week they were submitted.</figcaption></figure>\n")  # fmt: skip
    out.write('<h2>Days from receipt to submission</h2>\n<figure id="days-chart">')
    out.write(charts.days_chart(days))
    out.write("<figcaption>Submitted requests by whole days from receipt to submission.</figcaption></figure>\n")
    out.write("</section>\n")

    out.write(f'<section id="attention">\n<h2>Overdue or failed requests ({summary["overdue_or_failed"]})</h2>\n')
    html.table_head(out, "overdue-failed", COLUMNS, numeric=NUMERIC)
    n = 0
    async for batch in q.stream_attention(conn, period):
        for row in batch:
            html.table_row(out, row, COLUMNS, numeric=NUMERIC, alert=True)
        n += len(batch)
    html.table_end(out, empty="None: every request was submitted in time.", rows=n, width=len(COLUMNS))
    out.write("</section>\n")

    out.write(f'<section id="requests">\n<h2>All requests ({summary["requests"]})</h2>\n')
    html.table_head(out, "requests-table", COLUMNS, numeric=NUMERIC)
    rows = 0
    async for batch in q.stream_requests(conn, period):
        for row in batch:
            values: Sequence[Any] = row
            html.table_row(out, values, COLUMNS, numeric=NUMERIC, alert=bool(values[-1]) or values[10] == "failed")
        rows = _progress(rows, len(batch), progress)
    html.table_end(out, empty="No requests were received in this period.", rows=rows, width=len(COLUMNS))
    out.write("</section>\n")
    html.close_page(out)
    return rows
