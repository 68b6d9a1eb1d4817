"""What the database refuses at INSERT, and what it fills in itself."""

from __future__ import annotations

import asyncpg
import pytest

BASE = "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, field, value, external_ref) VALUES ($1, $2, $3, $4, $5, $6, $7)"

REFUSED = [
    ("rectify without value", ("rectify", 1001, "Contact", "003A", "Email", None, None), "rectify_needs_field_and_value"),
    ("rectify without field", ("rectify", 1001, "Contact", "003A", None, "x", None), "rectify_needs_field_and_value"),
    ("forget with a value", ("forget", 1001, "Contact", "003A", None, "x", None), "forget_has_no_field_or_value"),
    ("unknown type", ("erase", 1001, "Contact", "003A", None, None, None), "request_type_is_forget_or_rectify"),
    ("empty record_id", ("forget", 1001, "Contact", "", None, None, None), "record_id_not_blank"),
    ("blank record_id", ("forget", 1001, "Contact", "   ", None, None, None), "record_id_not_blank"),
    ("blank table_name", ("forget", 1001, "  ", "003A", None, None, None), "table_name_not_blank"),
    ("blank field", ("rectify", 1001, "Contact", "003A", " ", "x", None), "field_not_blank"),
    ("control character in record_id", ("forget", 1001, "Contact", "003\x07A", None, None, None), "record_id_no_control_characters"),
    ("newline in table_name", ("forget", 1001, "Con\ntact", "003A", None, None, None), "table_name_no_control_characters"),
    ("zero service id", ("forget", 0, "Contact", "003A", None, None, None), "service_id_is_positive"),
    ("record_id too long", ("forget", 1001, "Contact", "x" * 256, None, None, None), "record_id_at_most_255_characters"),
    ("value too long", ("rectify", 1001, "Contact", "003A", "Email", "v" * 131073, None), "value_at_most_131072_characters"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "row", "constraint"), REFUSED, ids=[c[0] for c in REFUSED])
async def test_refused_at_insert(pg, case, row, constraint):
    """Each kind of bad row is refused by a named CHECK constraint, and nothing is inserted."""
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await pg.execute(BASE, *row)
    assert err.value.constraint_name == constraint
    assert await pg.fetchval("SELECT count(*) FROM gdpr_requests") == 0


async def test_nul_is_refused(pg):
    """A NUL character never reaches the table (Postgres text cannot hold it)."""
    with pytest.raises((asyncpg.CharacterNotInRepertoireError, asyncpg.DataError, ValueError)):
        await pg.execute(BASE, "forget", 1001, "Contact", "003\x00A", None, None, None)


async def test_duplicate_external_ref_refused(pg):
    """A second request with the same external_ref is refused; the first stays."""
    await pg.execute(BASE, "forget", 1001, "Contact", "003A", None, None, "CASE-1")
    with pytest.raises(asyncpg.UniqueViolationError) as err:
        await pg.execute(BASE, "forget", 1002, "Contact", "003B", None, None, "CASE-1")
    assert err.value.constraint_name == "gdpr_requests_external_ref_key"
    assert await pg.fetchval("SELECT count(*) FROM gdpr_requests") == 1


@pytest.mark.parametrize(
    ("received", "due"),
    [
        ("2026-03-10 09:00+00", "2026-04-10 09:00+00"),  # a Friday: same date next month
        ("2026-01-31 10:00+00", "2026-03-02 10:00+00"),  # no 31 Feb; 28 Feb 2026 is a Saturday
        ("2028-01-31 10:00+00", "2028-02-29 10:00+00"),  # leap year: last day of February, a Tuesday
        ("2026-06-06 12:00+00", "2026-07-06 12:00+00"),  # 6 July 2026 is a Monday
        ("2026-07-04 12:00+00", "2026-08-04 12:00+00"),
        ("2026-10-31 08:00+00", "2026-11-30 08:00+00"),  # 30 Nov 2026 is a Monday
    ],
)
async def test_due_at_one_calendar_month(pg, received, due):
    """due_at is one calendar month after receipt (Reg. 1182/71), moved off weekends."""
    got = await pg.fetchval(
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, received_at) "
        "VALUES ('forget', 1001, 'Contact', '003A', $1::text::timestamptz) RETURNING due_at = $2::text::timestamptz",
        received, due,
    )  # fmt: skip
    assert got


async def test_due_at_skips_holidays(pg):
    """A deadline on a configured public holiday moves to the next working day."""
    await pg.execute("INSERT INTO gdpr_holidays (day, name) VALUES ('2026-04-10', 'Good Friday')")
    due = await pg.fetchval(
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, received_at) "
        "VALUES ('forget', 1001, 'Contact', '003A', '2026-03-10 09:00+00') RETURNING due_at::date::text"
    )
    assert due == "2026-04-13"


async def test_one_notify_per_statement(db_url, pg):
    """A bulk INSERT of 10,000 rows sends exactly one NOTIFY, and it carries no payload."""
    listener = await asyncpg.connect(db_url)
    got: list[str] = []
    await listener.add_listener("gdpr_requests", lambda _c, _pid, _ch, payload: got.append(payload))
    await pg.execute(
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id) "
        "SELECT 'forget', 1001, 'Contact', 'r' || g FROM generate_series(1, 10000) g"
    )
    await listener.execute("SELECT 1")  # notifications are delivered before this answer
    await listener.close()
    assert got == [""]


async def test_insert_writes_first_history_row(pg):
    """Every inserted request gets its first history row, naming who entered it."""
    await pg.execute(
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, requested_by) "
        "VALUES ('forget', 1001, 'Contact', '003A', 'alice')"
    )
    row = await pg.fetchrow("SELECT from_status, to_status, actor, detail FROM gdpr_request_log")
    assert dict(row) == {"from_status": None, "to_status": "pending", "actor": "alice", "detail": "received forget request"}


async def test_claim_uses_partial_index(pg):
    """With many finished rows, the claim query reads the small partial index, not the table."""
    await pg.execute(
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, status) "
        "SELECT 'forget', 1001, 'Contact', 'r' || g, 'submitted' FROM generate_series(1, 20000) g"
    )
    await pg.execute("INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id) VALUES ('forget', 1001, 'Contact', 'x')")
    await pg.execute("ANALYZE gdpr_requests")
    plan = "\n".join(
        r[0]
        for r in await pg.fetch(
            "EXPLAIN SELECT id FROM gdpr_requests WHERE status = 'pending' AND next_attempt_at <= now() "
            "ORDER BY next_attempt_at, id LIMIT 100 FOR UPDATE SKIP LOCKED"
        )
    )
    assert "gdpr_requests_claim_idx" in plan, plan
