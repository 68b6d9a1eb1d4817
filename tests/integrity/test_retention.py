"""The retention purge: personal fields of finished requests, then the oldest history and events."""

from __future__ import annotations

import argparse
import hashlib
import json

import asyncpg
import pytest

from gdpr_daemon.cli import run_command
from gdpr_daemon.commands import audit as audit_commands
from gdpr_daemon.commands import purge as purge_commands
from gdpr_daemon.db.integrity import purge, verify_chains
from gdpr_daemon.retention import run_purge
from tests.helpers import insert_forget, insert_rectify, pii
from tests.integrity.support import backdate_history


async def age_requests(pg: asyncpg.Connection, ids: list[int], status: str, days: int) -> None:
    await pg.execute(
        "UPDATE gdpr_requests SET status = $2, updated_at = now() - make_interval(days => $3) WHERE id = ANY($1)",
        ids, status, days,
    )  # fmt: skip


async def test_personal_fields_purged_after_retention(engine, pg):
    """Finished requests past retention_days lose record_id, value and comment; digests and history stay."""
    value = pii("old")
    old_rectify = await insert_rectify(pg, 1001, value)
    old_forgets = await insert_forget(pg, 1001, 3, prefix="OLD")
    await pg.execute("UPDATE gdpr_requests SET comment = 'call back Mrs X', external_ref = 'DSR-' || id")
    recent = await insert_forget(pg, 1001, 1, prefix="NEW")
    still_open = await insert_forget(pg, 1001, 1, prefix="OPEN")
    await age_requests(pg, [old_rectify, *old_forgets[:1]], "submitted", 400)
    await age_requests(pg, old_forgets[1:2], "failed", 400)
    await age_requests(pg, old_forgets[2:], "cancelled", 400)
    await age_requests(pg, recent, "submitted", 10)
    await age_requests(pg, still_open, "pending", 400)
    before = {r["id"]: r for r in await pg.fetch("SELECT * FROM gdpr_requests")}

    result = await purge(engine, retention_days=365, history_days=0, actor="retention-test")
    assert (result.requests_purged, result.history_deleted, result.events_deleted) == (4, 0, 0)

    rows = {r["id"]: r for r in await pg.fetch("SELECT * FROM gdpr_requests")}
    for rid in (old_rectify, *old_forgets):
        r = rows[rid]
        assert r["record_id"] == "purged" and r["value"] is None and r["comment"] is None and r["purged_at"]
        assert r["record_id_sha256"] == hashlib.sha256(before[rid]["record_id"].encode()).hexdigest()
        assert (r["status"], r["external_ref"], r["requested_by"]) == (
            before[rid]["status"], before[rid]["external_ref"], before[rid]["requested_by"])  # fmt: skip
    assert rows[old_rectify]["value_sha256"] == hashlib.sha256(value.encode()).hexdigest()
    for rid in (*recent, *still_open):
        assert rows[rid]["purged_at"] is None and rows[rid]["record_id"] == before[rid]["record_id"]
    notes = await pg.fetch("SELECT request_id, actor, detail FROM gdpr_request_log WHERE detail LIKE 'personal fields purged%'")
    assert sorted(n["request_id"] for n in notes) == sorted([old_rectify, *old_forgets])
    assert {n["actor"] for n in notes} == {"retention-test"}
    assert all(r.ok for r in await verify_chains(engine))
    again = await purge(engine, retention_days=365, history_days=0, actor="retention-test")
    assert again.requests_purged == 0, "a purged request is not purged twice"


async def test_purged_request_stays_finished(pg, engine):
    """A purged request cannot be sent again: the database refuses to make it pending."""
    (rid,) = await insert_forget(pg, 1001)
    await age_requests(pg, [rid], "failed", 400)
    await purge(engine, retention_days=365, history_days=0, actor="t")
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await pg.execute("UPDATE gdpr_requests SET status = 'pending' WHERE id = $1", rid)
    assert err.value.constraint_name == "purged_request_stays_finished"


async def old_history(pg: asyncpg.Connection, years: int, n: int, *, prefix: str) -> list[int]:
    """Requests (and their history rows) written as if ``years`` ago."""
    ids = await insert_forget(pg, 1001, n, prefix=prefix)
    await backdate_history(pg, ids, f"{years} years")
    return ids


async def add_events(pg: asyncpg.Connection, ids: range, age: str) -> None:
    await pg.execute(
        "INSERT INTO audit_events (event_id, created_at, key, user_email, raw) "
        "SELECT g, now() - $2::text::interval, 'login', 'ops@example.com', jsonb_build_object('event_id', g) "
        "FROM unnest($1::bigint[]) g", list(ids), age,
    )  # fmt: skip


async def test_history_purge_deletes_the_old_prefix(engine, pg):
    """History and events older than retention_history_days go, oldest first; the chains still verify."""
    old = await old_history(pg, 7, 20, prefix="OLD")
    await age_requests(pg, old[:15], "submitted", 7 * 366)
    await age_requests(pg, old[15:], "pending", 7 * 366)  # not finished: the request row stays
    new = await insert_forget(pg, 1001, 5, prefix="NEW")
    await add_events(pg, range(1, 101), "7 years")
    await add_events(pg, range(101, 111), "1 day")
    await pg.execute(
        "INSERT INTO audit_quarantine (account, after_event_id, reason, raw, raw_sha256, received_at) "
        "VALUES ('x', 0, 'no event_id', '{}', 'h', now() - interval '7 years')"
    )
    dry = await purge(engine, retention_days=0, history_days=2190, actor="t", dry_run=True)
    assert (dry.history_deleted, dry.events_deleted) == (20, 100)
    assert await pg.fetchval("SELECT count(*) FROM gdpr_request_log") == 25, "a dry run changes nothing"

    result = await purge(engine, retention_days=0, history_days=2190, actor="t", batch=7)
    assert (result.history_deleted, result.events_deleted) == (20, 100)
    assert [r[0] for r in await pg.fetch("SELECT request_id FROM gdpr_request_log ORDER BY chain_seq")] == new
    assert sorted(r[0] for r in await pg.fetch("SELECT id FROM gdpr_requests")) == sorted(old[15:] + new)
    assert await pg.fetchval("SELECT count(*) FROM audit_events") == 10
    assert await pg.fetchval("SELECT count(*) FROM audit_quarantine") == 0
    bases = dict(await pg.fetch("SELECT chain, base_seq FROM integrity_chains"))
    assert bases == {"gdpr_request_log": 20, "audit_events": 100}
    checkpoints = await pg.fetch("SELECT chain, from_seq, to_seq FROM integrity_checkpoints ORDER BY id")
    assert checkpoints[0]["from_seq"] == 0 and checkpoints[-1]["to_seq"] == 100
    reports = await verify_chains(engine)
    assert [(r.ok, r.rows, r.base_seq) for r in reports] == [(True, 5, 20), (True, 10, 100)]
    assert "20 older rows purged" in reports[0].summary()
    await insert_forget(pg, 1001, 1, prefix="NEXT")
    assert all(r.ok for r in await verify_chains(engine)), "new rows chain on after the purge"


async def test_history_purge_stops_at_a_newer_row(engine, pg):
    """The purge removes only a prefix of the chain: an old row after a newer one waits."""
    await add_events(pg, range(1, 4), "7 years")
    await add_events(pg, range(4, 5), "1 day")
    await add_events(pg, range(5, 8), "7 years")
    result = await purge(engine, retention_days=0, history_days=2190, actor="t")
    assert result.events_deleted == 3
    assert [r[0] for r in await pg.fetch("SELECT event_id FROM audit_events ORDER BY chain_seq")] == [4, 5, 6, 7]
    assert all(r.ok for r in await verify_chains(engine))


async def test_purge_keeps_the_last_day(pg):
    """The purge function refuses a cutoff within the last day, whatever the caller asks."""
    with pytest.raises(asyncpg.InvalidParameterValueError, match="keeps at least the last day"):
        await pg.execute("SELECT gdpr_purge_chain('gdpr_request_log', now())")


async def test_chain_base_only_moves_onto_its_rows(pg):
    """A chain base cannot move back, nor onto a hash that is not its row's; bases and checkpoints stay."""
    await insert_forget(pg, 1001, 3)
    with pytest.raises(asyncpg.RestrictViolationError, match="must be the hash of its row"):
        await pg.execute("UPDATE integrity_chains SET base_seq = 2, base_hash = sha256('x') WHERE chain = 'gdpr_request_log'")
    with pytest.raises(asyncpg.RestrictViolationError, match="only moves forward"):
        await pg.execute("UPDATE integrity_chains SET base_seq = -1 WHERE chain = 'gdpr_request_log'")
    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        await pg.execute("DELETE FROM integrity_chains")
    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        await pg.execute("DELETE FROM integrity_checkpoints")


async def test_daemon_purge_job_logs_counts(engine, pg, settings_for, capture_logs):
    """The daemon's periodic purge applies the configured periods and logs counts, never contents."""
    (rid,) = await insert_forget(pg, 1001, prefix="JOB")
    await age_requests(pg, [rid], "submitted", 40)
    result = await run_purge(engine, settings_for(retention_days=30), actor="daemon-1")
    assert result is not None and result.requests_purged == 1
    (event,) = [e for e in capture_logs if e["event"] == "retention_purged"]
    assert event["requests"] == 1 and "JOB" not in json.dumps(event)
    assert await run_purge(engine, settings_for(retention_days=0, retention_history_days=0), actor="d") is None


async def test_purge_job_rides_out_a_missing_database(settings_for):
    """With the database unreachable the purge job logs a warning and returns, it never raises."""
    from gdpr_daemon.db.engine import make_engine

    eng = make_engine("postgresql://postgres@127.0.0.1:1/none", pool_size=1)
    try:
        assert await run_purge(eng, settings_for(), actor="d") is None
    finally:
        await eng.dispose()


def cli(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--config")
    p.add_argument("--log-format")
    sub = p.add_subparsers(dest="command")
    audit_commands.add_parsers(sub)
    purge_commands.add_parsers(sub)
    return p.parse_args(argv)


async def test_cli_purge_and_verify(db_url, pg, monkeypatch, capsys, keep_suite_logging):
    """`purge --dry-run` counts, `purge` acts, `audit verify` prints OK lines and exits 0, or 1 naming the row."""
    monkeypatch.setenv("GDPR_DAEMON_DATABASE_URL", db_url)
    ids = await insert_forget(pg, 1001, 2)
    await age_requests(pg, ids, "submitted", 400)
    args = cli(["purge", "--dry-run"])
    assert await run_command(args) == 0
    assert "2 finished requests would be purged" in capsys.readouterr().out
    args = cli(["purge", "--actor", "dpo"])
    assert await run_command(args) == 0
    assert "2 finished requests were purged" in capsys.readouterr().out
    args = cli(["audit", "verify"])
    assert await run_command(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("gdpr_request_log: OK, 4 rows") and out[1].startswith("audit_events: OK, 0 rows")
    async with pg.transaction():
        await pg.execute("SET LOCAL session_replication_role = replica")
        await pg.execute("UPDATE gdpr_request_log SET actor = 'mallory' WHERE chain_seq = 2")
    args = cli(["audit", "verify", "--chain", "gdpr_request_log"])
    assert await run_command(args) == 1
    assert "BROKEN at row id" in capsys.readouterr().out
    args = cli(["audit", "verify", "--anchor", "nonsense"])
    assert await run_command(args) == 2


def test_cli_has_the_commands():
    """`gdpr-daemon audit verify` and `gdpr-daemon purge` are wired into the command line."""
    from gdpr_daemon.cli import build_parser

    p = build_parser()
    assert p.parse_args(["audit", "verify"]).func is audit_commands.cmd_verify
    assert p.parse_args(["purge", "--dry-run"]).func is purge_commands.cmd_purge
