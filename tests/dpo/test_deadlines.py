"""Deadlines: Art. 12(3) extension once, holidays, listing by deadline, the daily overdue log."""

from __future__ import annotations

from datetime import date

import asyncpg
import pytest
from structlog.testing import capture_logs

from gdpr_daemon import metrics
from gdpr_daemon.db.deadlines import claim_daily, extend_deadline
from gdpr_daemon.db.intake_settings import write_intake_settings
from gdpr_daemon.db.requests import RequestError, list_requests
from gdpr_daemon.submit.overdue import log_overdue

INSERT = (
    "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, received_at, status) "
    "VALUES ('forget', 1001, 'Contact', $1, $2::text::timestamptz, $3) RETURNING id"
)


async def add(pg: asyncpg.Connection, received: str, status: str = "pending", record: str = "003A") -> int:
    return await pg.fetchval(INSERT, record, received, status)


async def test_extend_once_by_two_months(engine, pg):
    """An extension moves due_at to two further months after the first deadline, keeps the first and logs the reason."""
    rid = await pg.fetchval(
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id) "
        "VALUES ('forget', 1001, 'Contact', '003A') RETURNING id"
    )
    first = await pg.fetchval("SELECT due_at FROM gdpr_requests WHERE id = $1", rid)
    ext = await extend_deadline(engine, rid, months=2, reason="complex: 40 related records", actor="alice")
    row = await pg.fetchrow(
        "SELECT due_at, original_due_at, gdpr_due_at(received_at, 3) AS expected FROM gdpr_requests WHERE id = $1", rid
    )
    assert row["original_due_at"] == first == ext.original_due_at
    assert row["due_at"] == row["expected"] == ext.due_at
    log = await pg.fetchrow("SELECT from_status, to_status, actor, detail FROM gdpr_request_log ORDER BY id DESC LIMIT 1")
    assert (log["from_status"], log["to_status"], log["actor"]) == ("pending", "pending", "alice")
    assert "extended by 2 further months" in log["detail"] and log["detail"].endswith(": complex: 40 related records")


@pytest.mark.parametrize(
    ("received", "months", "due"),
    [
        ("2026-12-31 10:00+00", 1, "2027-02-01"),  # 31 Jan 2027 is a Sunday
        ("2026-12-31 10:00+00", 2, "2027-03-01"),  # no 31 Feb: the 28th, a Sunday
        ("2026-12-31 10:00+00", 3, "2027-03-31"),  # the extended deadline: a Wednesday
        ("2027-11-30 10:00+00", 3, "2028-02-29"),  # leap year: the last day of February
    ],
)
async def test_months_counted_as_regulation_1182_71(pg, received, months, due):
    """gdpr_due_at counts calendar months (the month's last day when the date is missing), off weekends."""
    assert await pg.fetchval("SELECT gdpr_due_at($1::text::timestamptz, $2)::date::text", received, months) == due


async def test_extending_twice_refused(engine, pg):
    """A second extension is refused with the first one's dates, and the deadline stays as extended."""
    rid = await add(pg, "now")
    ext = await extend_deadline(engine, rid, months=1, reason="first", actor="alice")
    with pytest.raises(RequestError, match=r"extended once already .*Art\. 12\(3\) allows one extension"):
        await extend_deadline(engine, rid, months=1, reason="again", actor="bob")
    assert await pg.fetchval("SELECT due_at FROM gdpr_requests WHERE id = $1", rid) == ext.due_at
    assert await pg.fetchval("SELECT count(*) FROM gdpr_request_log WHERE detail LIKE 'deadline extended%'") == 1


async def test_database_refuses_second_extension_by_sql(pg):
    """Plain SQL cannot extend twice, nor beyond two further months, nor reset original_due_at."""
    rid = await add(pg, "now")
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await pg.execute("UPDATE gdpr_requests SET due_at = gdpr_due_at(received_at, 4) WHERE id = $1", rid)
    assert err.value.constraint_name == "deadline_extension_at_most_two_months"
    await pg.execute("UPDATE gdpr_requests SET due_at = gdpr_due_at(received_at, 2) WHERE id = $1", rid)
    assert await pg.fetchval("SELECT original_due_at IS NOT NULL FROM gdpr_requests WHERE id = $1", rid)
    for sql in ("UPDATE gdpr_requests SET due_at = gdpr_due_at(received_at, 3) WHERE id = $1",
                "UPDATE gdpr_requests SET original_due_at = NULL WHERE id = $1"):  # fmt: skip
        with pytest.raises(asyncpg.CheckViolationError) as err:
            await pg.execute(sql, rid)
        assert err.value.constraint_name == "deadline_extended_only_once"


@pytest.mark.parametrize(
    ("status", "received", "reason", "message"),
    [
        ("submitted", "now", "r", "is submitted; it has no deadline left"),
        ("cancelled", "now", "r", "is cancelled; it has no deadline left"),
        ("pending", "2026-01-05 09:00+00", "r", "passed on 2026-02-05; .*only within the first month"),
        ("pending", "now", "   ", "give the reason for the extension with --reason"),
        ("pending", "now", "two\nlines", "control character"),
    ],
    ids=["submitted", "cancelled", "deadline passed", "blank reason", "control character in reason"],
)
async def test_extension_refusals(engine, pg, status, received, reason, message):
    """An extension is refused for finished requests, after the deadline, and without a one-line reason."""
    rid = await add(pg, received, status)
    with pytest.raises(RequestError, match=message):
        await extend_deadline(engine, rid, months=2, reason=reason, actor="alice")
    assert await pg.fetchval("SELECT original_due_at FROM gdpr_requests WHERE id = $1", rid) is None


async def test_holidays_from_config(engine, pg):
    """Configured holidays move deadlines; the daemon's write replaces the list, a command's only adds."""
    await pg.execute("INSERT INTO gdpr_holidays (day, name) VALUES ('2026-05-01', 'by hand')")
    await write_intake_settings(engine, require_approval=False, holidays=[date(2026, 4, 10)], authoritative=False)
    assert await pg.fetchval("SELECT count(*) FROM gdpr_holidays") == 2
    rid = await add(pg, "2026-03-10 09:00+00")
    assert await pg.fetchval("SELECT due_at::date::text FROM gdpr_requests WHERE id = $1", rid) == "2026-04-13"
    await write_intake_settings(engine, require_approval=False, holidays=[date(2026, 4, 10)], authoritative=True)
    assert [r[0] for r in await pg.fetch("SELECT day::text FROM gdpr_holidays")] == ["2026-04-10"]


async def test_list_by_deadline(engine, pg):
    """--due-within lists open requests due soon, overdue first; --overdue only those past due; finished ones never."""
    overdue = await add(pg, "2026-01-05 09:00+00", "failed", "a")
    soon = await pg.fetchval(
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, received_at, due_at) "
        "VALUES ('forget', 1001, 'Contact', 'b', now(), now() + interval '3 days') RETURNING id"
    )
    await add(pg, "now", "pending", "c")  # due in a month
    await add(pg, "2026-01-05 09:00+00", "submitted", "d")
    await add(pg, "2026-01-05 09:00+00", "cancelled", "e")
    assert [r["id"] for r in await list_requests(engine, due_within_seconds=7 * 86400)] == [overdue, soon]
    assert [r["id"] for r in await list_requests(engine, overdue=True)] == [overdue]


async def test_overdue_logged_once_a_day(engine, pg):
    """log_overdue logs the overdue requests once per UTC day across calls, and always sets the gauge."""
    a = await add(pg, "2026-01-05 09:00+00", "failed", "a")
    b = await add(pg, "2026-02-05 09:00+00", "pending", "b")
    await add(pg, "now", "pending", "c")
    with capture_logs() as logs:
        assert await log_overdue(engine) == 2
        assert await log_overdue(engine) is None
    events = [e for e in logs if e["event"] == "requests_overdue"]
    assert len(events) == 1
    assert events[0]["count"] == 2 and events[0]["request_ids"] == [a, b]
    assert events[0]["by_status"] == {"failed": 1, "pending": 1}
    assert metrics.REGISTRY.get_sample_value("gdpr_daemon_requests_overdue") == 2
    assert not await claim_daily(engine, "overdue_logged_on")
    assert await claim_daily(engine, "overdue_logged_on", date(2099, 1, 1))
