"""`gdpr-daemon status`: every figure against a table arranged to hold known numbers."""

from __future__ import annotations

import json

from gdpr_daemon.db.intake_settings import write_intake_settings
from gdpr_daemon.db.queue import Outcome, QueueStore
from tests.helpers import database_of, insert_forget, run_cli, with_db


async def _arrange(engine, pg) -> None:  # type: ignore[no-untyped-def]
    """2 in flight (two processes), 2 submitted (1 unconfirmed after a day), 1 failed,
    1 rejected, 5 pending (2 waiting for a retry, 1 overdue, 1 due in 3 days), 1 awaiting approval."""
    a = QueueStore(engine, owner="process-a", actor="replica-a", lease_seconds=30)
    b = QueueStore(engine, owner="process-b", actor="replica-b", lease_seconds=30)
    await insert_forget(pg, 1001, 6, prefix="DONE")
    done = await a.claim(4)
    await a.record([
        Outcome(done[0].id, "submitted", "submitted to OwnBackup: request id 1", ownbackup_request_id=1),
        Outcome(done[1].id, "submitted", "submitted to OwnBackup: request id 2", ownbackup_request_id=2),
        Outcome(done[2].id, "failed", "attempt 1 refused: no", error="no"),
        Outcome(done[3].id, "rejected", "rejected: bad", error="bad"),
    ])  # fmt: skip
    await a.claim(1)
    await b.claim(1)
    await pg.execute("UPDATE gdpr_requests SET submitted_at = now() - interval '2 days' WHERE id = $1", done[0].id)
    await pg.execute("UPDATE gdpr_requests SET confirmed_at = now() WHERE id = $1", done[1].id)
    waiting = await insert_forget(pg, 1002, 3, prefix="WAIT")
    await pg.execute("UPDATE gdpr_requests SET next_attempt_at = now() + interval '1 hour' WHERE id = ANY($1)", waiting[:2])
    # Received 40 days ago: overdue.  Received 27 days ago: due in 1 to 6 days whatever the month
    # (a month of 28 to 31 days, and up to 2 days of weekend roll-over).
    await pg.execute(
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, received_at) VALUES "
        "('forget', 1002, 'Contact', 'LATE', now() - interval '40 days'), "
        "('forget', 1002, 'Contact', 'SOON', now() - interval '27 days')"
    )
    await write_intake_settings(engine, require_approval=True, holidays=None, authoritative=True)
    await insert_forget(pg, 1003, 1, prefix="FOUR")
    await pg.execute("INSERT INTO event_cursors (account, last_event_id) VALUES ('http://sim', 4242)")


async def test_status_figures_match_the_table(engine, pg, db_url, sim_url):
    """JSON for scripts: each figure is the one arranged."""
    await _arrange(engine, pg)
    code, out, err = await run_cli(db_url, sim_url, "status", "--format", "json")
    assert code == 0, err
    got = json.loads(out)
    assert got["requests"] == {"awaiting_approval": 1, "pending": 5, "in_flight": 2, "submitted": 2,
                               "failed": 1, "rejected": 1, "cancelled": 0}  # fmt: skip
    assert got["pending_due_now"] == 3 and got["processes_holding_claims"] == 2
    assert got["submitted_unconfirmed"] == 1 and got["unconfirmed_after_hours"] == 24
    assert got["overdue"] == 1 and got["due_within_7_days"] == 1
    assert got["next_deadline"] is not None and got["event_cursor"] == 4242 and got["event_cursor_moved_at"]


async def test_status_text_says_what_needs_a_person(engine, pg, db_url, sim_url):
    """The text names each figure and the command that deals with it."""
    await _arrange(engine, pg)
    code, out, _ = await run_cli(db_url, sim_url, "status")
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert lines["requests:"] == "requests: 12"
    assert "3 due now, 2 waiting for a retry" in lines["pending"]
    assert "held by 2 daemon processes" in lines["in_flight"]
    assert "1 without a confirming account event after 24 h" in lines["submitted"]
    assert "requests approve" in lines["awaiting_approval"] and "retry ID" in lines["failed"]
    assert lines["cancelled"].split() == ["cancelled", "0"]
    assert "1 overdue (`gdpr-daemon requests list --overdue`); 1 due within 7 days; next deadline" in lines["deadlines:"]
    assert "stored up to event 4,242" in lines["events:"]


async def test_status_of_an_empty_database(db_url, sim_url):
    """A new deployment: nothing to do, no events yet, and it says so."""
    code, out, _ = await run_cli(db_url, sim_url, "status")
    assert code == 0
    assert "requests: 0" in out and "none overdue; 0 due within 7 days; no open deadline ahead" in out
    assert "events: none pulled yet" in out


async def test_status_before_migrate_says_to_migrate(pg, db_url, sim_url):
    """On a database without the schema the one line says what to run."""
    name = f"{database_of(db_url)}_empty"
    await pg.execute(f'CREATE DATABASE "{name}"')
    try:
        empty = with_db(db_url, name)
        code, _, err = await run_cli(empty, sim_url, "status")
    finally:
        await pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert code == 1 and "run `gdpr-daemon migrate`" in err and len(err.strip().splitlines()) == 1


async def test_status_on_a_missing_database_says_to_create_it(db_url, sim_url):
    """database_url naming a database that does not exist: one line, what to do next."""
    missing = with_db(db_url, "gdpr_no_such_db")
    code, _, err = await run_cli(missing, sim_url, "status")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert '"gdpr_no_such_db" does not exist; create it (or correct database_url)' in err
