"""``report audit``: the account events of a period, for auditors, as CSV, JSON or HTML.

Filtered by time (``since`` inclusive, ``until`` exclusive), and optionally by key (a
glob such as ``gdpr.*``), user email (any case) and service.  Oldest first.  Rows stream
from a server-side cursor straight into the output, so a year of events (millions of
rows) never sits in memory.  Parameters pass :func:`.common.redact_parameters`.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from html import escape
from typing import Any, TextIO

from sqlalchemy.ext.asyncio import AsyncEngine

from gdpr_daemon.audit.reports import html
from gdpr_daemon.audit.reports.common import Progress, ReportResult, csv_cell, iso, json_scalar, redact_parameters
from gdpr_daemon.db import audit_reports as q
from gdpr_daemon.db.audit_reports import AuditFilters

__all__ = ["COLUMNS", "AuditFilters", "write_audit_report"]

COLUMNS = (
    ("event_id", "Event"), ("created_at", "Time (UTC)"), ("key", "Key"), ("source", "Source"),
    ("user_email", "User"), ("user_id", "User id"), ("ip_address", "IP address"),
    ("service_id", "Service"), ("parameters", "Parameters"),
)  # fmt: skip
NUMERIC = ("event_id", "service_id")
assert tuple(k for k, _ in COLUMNS) == q.AUDIT_COLUMNS
PROGRESS_EVERY = 50_000
NO_KEY = "(none)"  # events without a key, in the counts by key


def _rows(batch: Any) -> list[tuple[Any, ...]]:
    return [(*row[:8], redact_parameters(row[8])) for row in batch]


def _json_row(row: tuple[Any, ...]) -> str:
    parts = [f'"{k}":{json_scalar(v)}' for (k, _), v in zip(COLUMNS[:8], row[:8], strict=True)]
    parts.append(f'"parameters":{row[8] if row[8] is not None else "null"}')  # already JSON
    return "{" + ",".join(parts) + "}"


def _filters_json(f: AuditFilters) -> str:
    return ('{"since":' + json_scalar(iso(f.since)) + ',"until":' + json_scalar(iso(f.until))
            + ',"key":' + json_scalar(f.key) + ',"user_email":' + json_scalar(f.user_email)
            + ',"service_id":' + json_scalar(f.service_id) + "}")  # fmt: skip


async def write_audit_report(
    engine: AsyncEngine,
    out: TextIO,
    fmt: str,
    filters: AuditFilters,
    *,
    as_of: datetime | None = None,
    progress: Progress | None = None,
) -> ReportResult:
    """Write the events ``filters`` select to ``out`` in ``fmt``."""
    if fmt not in ("csv", "json", "html"):
        raise ValueError(f"unknown report format {fmt!r}")
    as_of = as_of or datetime.now(UTC)
    rows = 0
    async with q.snapshot(engine) as conn:
        by_key = await q.audit_summary(conn, filters) if fmt != "csv" else {}
        if fmt == "csv":
            writer = csv.writer(out, lineterminator="\r\n")
            writer.writerow([k for k, _ in COLUMNS])
        elif fmt == "json":
            out.write('{"report":"audit","generated_at":' + json_scalar(iso(as_of)) + ',"filters":'
                      + _filters_json(filters) + ',"summary":{"events":' + str(sum(by_key.values()))
                      + ',"by_key":{' + ",".join(f"{json_scalar(k or NO_KEY)}:{n}" for k, n in by_key.items())
                      + "}},\n\"events\":[")  # fmt: skip
        else:
            _html_head(out, filters, by_key, as_of)
        async for batch in q.stream_audit_events(conn, filters):
            page = _rows(batch)
            if fmt == "csv":
                writer.writerows([csv_cell(v) for v in row] for row in page)
            elif fmt == "json":
                out.write(("\n" if rows == 0 else ",\n") + ",\n".join(_json_row(r) for r in page))
            else:
                for row in page:
                    html.table_row(out, row, COLUMNS, numeric=NUMERIC)
            before, rows = rows, rows + len(page)
            if progress is not None and rows // PROGRESS_EVERY != before // PROGRESS_EVERY:
                progress(rows)
        if fmt == "json":
            out.write("\n]}\n")
        elif fmt == "html":
            html.table_end(out, empty="No events match.", rows=rows, width=len(COLUMNS))
            out.write("</section>\n")
            html.close_page(out)
    return ReportResult("audit", fmt, rows, {})


def _html_head(out: TextIO, f: AuditFilters, by_key: dict[str | None, int], as_of: datetime) -> None:
    narrowed = [f"key {f.key}" if f.key else "", f"user {f.user_email}" if f.user_email else "",
                f"service {f.service_id}" if f.service_id is not None else ""]  # fmt: skip
    which = "; ".join(n for n in narrowed if n)
    html.open_page(out, "OwnBackup account events",
                   f"Events from <time id=\"since\">{escape(iso(f.since))}</time> to "
                   f"<time id=\"until\">{escape(iso(f.until))}</time> (not included)"
                   + (f", only {escape(which)}" if which else "")
                   + f". Generated <time id=\"generated\">{escape(iso(as_of))}</time>.")  # fmt: skip
    total = sum(by_key.values())
    out.write('<section id="summary">\n<h2>Summary</h2>\n')
    html.figures_table(out, "figures", [("events", "Events", total)])
    out.write('<table id="by-key"><thead><tr><th scope="col">Key</th><th scope="col" class="num">Events</th>'
              "</tr></thead><tbody>\n")  # fmt: skip
    for key, n in by_key.items():
        out.write(f'<tr><th scope="row">{escape(key or NO_KEY)}</th><td class="num" data-count="{n}">{n}</td></tr>\n')
    out.write("</tbody></table>\n</section>\n")
    out.write(f'<section id="events">\n<h2>Events ({total})</h2>\n')
    html.table_head(out, "events-table", COLUMNS, numeric=NUMERIC)
