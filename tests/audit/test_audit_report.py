"""``report audit``: filters, each format, spreadsheet safety, redaction, streaming."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest

from gdpr_daemon.audit.reports import AuditFilters, write_audit_report
from gdpr_daemon.db.audit_reports import AUDIT_COLUMNS
from tests.helpers import PII_MARKER, pii

from .reportdata import read_html

SINCE = datetime(2026, 1, 1, tzinfo=UTC)
UNTIL = datetime(2027, 1, 1, tzinfo=UTC)
SECRET = pii("param")

# (event_id, created_at, key, user_email, service_id, parameters)
EVENTS = [
    (1, "2025-12-31 23:59:59", "user.login", "dpo@example.com", None, {}),  # before the period
    (2, "2026-01-01 00:00:00", "user.login", "DPO@Example.com", None, {"method": "sso"}),
    (3, "2026-02-10 12:00:00", "gdpr.forget", "dpo@example.com", 1001, {"request_id": 5, "record_id": "003A"}),
    (4, "2026-02-11 12:00:00", "gdpr.rectify", "admin@example.com", 1002,
     {"request_id": 6, "field": "Email", "value": SECRET, "nested": {"new_value": SECRET}}),
    (5, "2026-03-01 08:30:00.250", "=cmd|' /C calc'!A0", "@evil.example", 1001, {"note": "-2+3", "x": "+1"}),
    (6, "2026-12-31 23:59:59.999", "backup.completed", "system@owndata.com", 1001, {"num_items": 7}),
    (7, "2027-01-01 00:00:00", "backup.completed", "system@owndata.com", 1001, {}),  # at until: excluded
]  # fmt: skip


async def insert_events(pg) -> None:
    for eid, at, key, email, service, params in EVENTS:
        raw = {"event_id": eid, "created_at": at, "key": key, "user_email": email, "parameters": params}
        await pg.execute(
            "INSERT INTO audit_events (event_id, created_at, key, source, user_email, user_id, ip_address, "
            "service_id, parameters, raw) VALUES ($1, $2::text::timestamptz, $3, 'UI', $4, '51', '10.0.0.1', $5, "
            "$6::jsonb, $7::jsonb)", eid, at + "+00", key, email, service, json.dumps(params), json.dumps(raw),
        )  # fmt: skip


async def render(engine, fmt: str, **filters) -> str:
    out = io.StringIO()
    await write_audit_report(engine, out, fmt, AuditFilters(SINCE, UNTIL, **filters), as_of=SINCE)
    return out.getvalue()


def csv_ids(text: str) -> list[int]:
    return [int(r["event_id"]) for r in csv.DictReader(io.StringIO(text))]


async def test_csv_period_order_times_and_safety(engine, pg):
    """CSV: the period's events oldest first (since included, until excluded), ISO UTC times, formulas escaped, values redacted."""
    await insert_events(pg)
    text = await render(engine, "csv")
    assert SECRET not in text and PII_MARKER not in text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == AUDIT_COLUMNS
    assert [int(r["event_id"]) for r in rows] == [2, 3, 4, 5, 6]
    assert rows[0]["created_at"] == "2026-01-01T00:00:00.000Z" and rows[-1]["created_at"] == "2026-12-31T23:59:59.999Z"
    evil = rows[3]
    assert evil["key"] == "'=cmd|' /C calc'!A0" and evil["user_email"] == "'@evil.example"
    assert rows[1]["service_id"] == "1001" and rows[0]["service_id"] == ""
    params = json.loads(rows[2]["parameters"])
    assert params["value"] == "[redacted]" and params["nested"]["new_value"] == "[redacted]"
    assert params["field"] == "Email" and params["request_id"] == 6


@pytest.mark.parametrize(
    ("filters", "ids"),
    [
        ({"key": "gdpr.*"}, [3, 4]),
        ({"key": "user.login"}, [2]),
        ({"key": "gdpr.forge?"}, [3]),
        ({"user_email": "dpo@EXAMPLE.com"}, [2, 3]),
        ({"service_id": 1001}, [3, 5, 6]),
        ({"key": "gdpr.*", "service_id": 1002}, [4]),
        ({"key": "100%_done"}, []),
    ],
)
async def test_filters(engine, pg, filters, ids):
    """--key (a glob or an exact key), --user (any case) and --service narrow the report, alone or together."""
    await insert_events(pg)
    assert csv_ids(await render(engine, "csv", **filters)) == ids


async def test_json_report(engine, pg):
    """JSON: filters, counts by key, and the events with their parameters as objects (values redacted)."""
    await insert_events(pg)
    text = await render(engine, "json", service_id=1001)
    assert SECRET not in text
    report = json.loads(text)
    assert report["filters"]["service_id"] == 1001 and report["filters"]["since"] == "2026-01-01T00:00:00.000Z"
    assert report["summary"]["events"] == 3 and sum(report["summary"]["by_key"].values()) == 3
    assert [e["event_id"] for e in report["events"]] == [3, 5, 6]
    assert report["events"][0]["parameters"] == {"request_id": 5, "record_id": "003A"}
    assert report["events"][1]["key"] == "=cmd|' /C calc'!A0", "JSON keeps the text as it is"


async def test_html_report(engine, pg):
    """HTML: self-contained, the summary counts match the database, one table row per event, values redacted."""
    await insert_events(pg)
    text = await render(engine, "html")
    page = read_html(text)
    assert SECRET not in text and page.urls == [] and "script" not in page.tags
    in_period = await pg.fetchval("SELECT count(*) FROM audit_events WHERE created_at >= $1 AND created_at < $2",
                                  SINCE, UNTIL)  # fmt: skip
    assert int(page.figures["events"]) == in_period == 5
    by_key = {r[0]: int(r[1]) for r in page.tables["by-key"][1:]}
    assert by_key == {"user.login": 1, "gdpr.forget": 1, "gdpr.rectify": 1, "=cmd|' /C calc'!A0": 1, "backup.completed": 1}
    rows = page.tables["events-table"][1:]
    assert [int(r[0]) for r in rows] == [2, 3, 4, 5, 6]
    assert "&lt;" not in "".join(r[8] for r in rows) and "[redacted]" in rows[2][8]


async def test_no_events(engine):
    """A period without events gives a valid empty report in every format."""
    assert csv_ids(await render(engine, "csv")) == []
    assert json.loads(await render(engine, "json"))["events"] == []
    assert "No events match." in await render(engine, "html")


class Sink(io.TextIOBase):
    """Counts what is written and keeps nothing."""

    def __init__(self) -> None:
        self.chars = 0

    def write(self, s: str) -> int:
        self.chars += len(s)
        return len(s)


async def insert_many(pg, total: int) -> None:
    """``total`` events, one a second from 2026-01-01 (audit_events is append-only: no truncating)."""
    await pg.execute(
        "INSERT INTO audit_events (event_id, created_at, key, source, user_email, user_id, ip_address, service_id, "
        "parameters, raw) SELECT g, timestamptz '2026-01-01' + g * interval '1 second', 'backup.completed', 'SYSTEM', "
        "'system@owndata.com', '1', '10.0.0.1', 1001, jsonb_build_object('backup_id', g), '{}' "
        "FROM generate_series(1, $1) g", total,
    )  # fmt: skip


async def peak_export_memory(engine, events: int) -> tuple[int, int]:
    """Peak traced memory exporting the first ``events`` events as CSV, and the characters written."""
    until = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=events + 0.5)
    sink = Sink()
    tracemalloc.start()
    try:
        result = await write_audit_report(engine, sink, "csv", AuditFilters(SINCE, until))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.rows == events
    return peak, sink.chars


@pytest.mark.slow
async def test_export_streams_in_flat_memory(engine, pg):
    """Exporting 10 times more events needs the same peak memory: rows stream, they are not collected."""
    await insert_many(pg, 60_000)
    small, small_chars = await peak_export_memory(engine, 6_000)
    large, large_chars = await peak_export_memory(engine, 60_000)
    assert large_chars > 9 * small_chars
    assert large < 1.5 * small + 1_000_000, f"peak {small:,} B for 6,000 events but {large:,} B for 60,000"
