"""Each role can do what its comment in roles.sql says and no more (issue 10, section 4), and free
text and dates are bounded where they enter (section 6); all as real logins of the roles."""

from __future__ import annotations

import json

import asyncpg
import pytest

from gdpr_daemon.db import migrate
from gdpr_daemon.db.engine import make_engine
from gdpr_daemon.db.integrity import verify_chains
from tests.helpers import database_of, insert_forget, insert_rectify, pii, with_db
from tests.security import db_logins
from tests.security.db_logins import connected, user_of

roles, login = db_logins.roles, db_logins.login  # fixtures
Denied = asyncpg.InsufficientPrivilegeError
FOUR_EYES = "INSERT INTO gdpr_daemon_settings (key, value) VALUES ('require_approval', 'true')"
ENTER = ("INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, requested_by) "
         "VALUES ('forget', 1001, 'Contact', $1, $2) RETURNING id")  # fmt: skip

ENTERED = [
    "record_id = 'someone-else'", "table_name = 'Lead'", "service_id = 1002", "field = 'Email'",
    "request_type = 'rectify'", "received_at = now() - interval '1 year'", "requested_by = 'x'",
    "approved_by = 'x'", "comment = 'x'", "external_ref = 'x'", "record_id_sha256 = 'x'", "purged_at = now()",
    "due_at = now() + interval '1 year'", "entered_login = 'x'",
]  # fmt: skip


@pytest.mark.parametrize("change", ENTERED)
async def test_daemon_cannot_change_what_the_dpo_entered(change, login, pg):
    """The daemon's login cannot change any field a DPO entered (record_id, service, type, dates, names ...)."""
    (rid,) = await insert_forget(pg, 1001)
    before = dict(await pg.fetchrow("SELECT * FROM gdpr_requests WHERE id = $1", rid))
    async with connected(await login("gdpr_daemon")) as daemon:
        with pytest.raises(Denied):
            await daemon.execute(f"UPDATE gdpr_requests SET {change} WHERE id = $1", rid)
    assert dict(await pg.fetchrow("SELECT * FROM gdpr_requests WHERE id = $1", rid)) == before


@pytest.mark.parametrize("broad_grant", [False, True])
async def test_daemon_may_only_erase_the_value_keeping_its_digest(broad_grant, login, pg):
    """The daemon's login may erase a rectify value keeping its SHA-256, nothing else, even if granted UPDATE on all."""
    if broad_grant:  # an administrator's mistake: the trigger still holds
        await pg.execute("GRANT UPDATE ON gdpr_requests TO gdpr_daemon")
    value = pii("erase")
    rid = await insert_rectify(pg, 1001, value)
    async with connected(await login("gdpr_daemon")) as daemon:
        for change in ("value = 'another value'", "value = NULL", "value = NULL, value_sha256 = 'forged'",
                       "value_sha256 = 'forged'", "record_id = 'someone-else'", "comment = 'changed'"):  # fmt: skip
            with pytest.raises(Denied):
                await daemon.execute(f"UPDATE gdpr_requests SET {change} WHERE id = $1", rid)
        await daemon.execute("UPDATE gdpr_requests SET value = NULL, "
                             "value_sha256 = encode(sha256(convert_to(value, 'UTF8')), 'hex') WHERE id = $1", rid)  # fmt: skip
    row = await pg.fetchrow("SELECT value, value_sha256, record_id FROM gdpr_requests WHERE id = $1", rid)
    assert row["value"] is None and row["record_id"] == "0035g00000AbCdE"
    assert row["value_sha256"] == await pg.fetchval("SELECT encode(sha256(convert_to($1::text, 'UTF8')), 'hex')", value)


async def test_auditor_sees_events_only_masked(login, pg, db_url):
    """The auditor's login reads events through audit_events_masked (record ids as digests), never parameters or raw."""
    params = {"request_id": 7, "record_id": "003SUBJECT", "table_name": "Contact"}
    await pg.execute("INSERT INTO audit_events (event_id, created_at, key, user_email, parameters, raw) "
                     "VALUES (1, now(), 'gdpr.forget', 'dpo@example.com', $1::jsonb, $2::jsonb)",
                     json.dumps(params), json.dumps({"event_id": 1, "parameters": params}))  # fmt: skip
    url = await login("gdpr_auditor")
    async with connected(url) as auditor:
        for sql in ("SELECT parameters FROM audit_events", "SELECT raw FROM audit_events", "SELECT * FROM audit_events",
                    "SELECT raw FROM audit_quarantine"):  # fmt: skip
            with pytest.raises(Denied):
                await auditor.execute(sql)
        assert await auditor.fetchval("SELECT key FROM audit_events") == "gdpr.forget"
        shown = await auditor.fetchval("SELECT parameters::text || raw::text FROM audit_events_masked")
    assert "003SUBJECT" not in shown and "sha256:" in shown and '"request_id": 7' in shown
    engine = make_engine(url, pool_size=1)
    try:
        assert all(r.ok for r in await verify_chains(engine))
    finally:
        await engine.dispose()


async def test_same_login_cannot_enter_and_approve(login, pg):
    """Four eyes between logins: a login that entered a request (requested_by NULL or any name) cannot approve it."""
    await pg.execute(FOUR_EYES)
    url = await login("gdpr_intake")
    async with connected(url) as alice:
        rid = await alice.fetchval(ENTER, "003A", None)
        named = await alice.fetchval(ENTER, "003B", "the-boss")
        rows = await pg.fetch("SELECT requested_by, entered_login FROM gdpr_requests ORDER BY id")
        assert {tuple(r) for r in rows} == {(user_of(url), user_of(url))}, "who entered it is the login"
        with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError, match="four eyes need a different person"):
            await alice.execute("SELECT gdpr_approve_requests($1::bigint[], 'somebody-else')", [rid, named])
    assert await pg.fetchval("SELECT count(*) FROM gdpr_requests WHERE status = 'awaiting_approval'") == 2
    actors = {r[0] for r in await pg.fetch("SELECT actor FROM gdpr_request_log")}
    assert actors == {user_of(url)}, "the history names the login, never the function's owner"


async def test_another_login_approves_and_both_are_recorded(login, pg):
    """A second intake login approves; approved_by and approved_login are that login, the history names both."""
    await pg.execute(FOUR_EYES)
    alice_url, bob_url = await login("gdpr_intake"), await login("gdpr_intake")
    async with connected(alice_url) as alice:
        rid = await alice.fetchval(ENTER, "003A", None)
    async with connected(bob_url) as bob:
        await bob.execute("SELECT gdpr_approve_requests(ARRAY[$1::bigint], 'alice')", rid)  # a name given is not trusted
    row = await pg.fetchrow("SELECT status, approved_by, approved_login FROM gdpr_requests WHERE id = $1", rid)
    assert tuple(row) == ("pending", user_of(bob_url), user_of(bob_url))
    detail = await pg.fetchval("SELECT detail FROM gdpr_request_log WHERE to_status = 'pending'")
    assert detail == f"approved by {user_of(bob_url)} (four eyes); entered by {user_of(alice_url)}"


async def test_unknown_enterer_cannot_be_approved(login, pg):
    """A request whose enterer is unknown (a row from before 0005 with requested_by NULL) is refused approval."""
    await pg.execute(FOUR_EYES)
    (rid,) = await insert_forget(pg, 1001)
    async with pg.transaction():
        await pg.execute("SET LOCAL session_replication_role = replica")
        await pg.execute("UPDATE gdpr_requests SET requested_by = NULL, entered_login = NULL WHERE id = $1", rid)
    async with connected(await login("gdpr_intake")) as bob:
        with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError, match="no record of who entered it"):
            await bob.execute("SELECT gdpr_approve_requests(ARRAY[$1::bigint])", rid)
    with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError, match="no record of who entered it"):
        await pg.execute("SELECT gdpr_approve_requests(ARRAY[$1::bigint], 'bob')", rid)


BOUNDED = [
    ("cancel reason of 20,000,000 characters", "SELECT gdpr_cancel_request($1, NULL, repeat('x', 20000000))", "longer than 1000"),
    ("cancel reason on two lines", "SELECT gdpr_cancel_request($1, NULL, E'a\\nb')", "control character"),
    ("extension reason too long", "SELECT gdpr_extend_deadline($1, 1, repeat('x', 1001))", "longer than 1000"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "sql", "message"), BOUNDED, ids=[b[0] for b in BOUNDED])
async def test_free_text_bounded_where_it_enters(case, sql, message, login, pg):
    """A DPO function refuses an over-long or multi-line reason in one sentence, and writes no history."""
    (rid,) = await insert_forget(pg, 1001)
    async with connected(await login("gdpr_intake")) as intake:
        with pytest.raises(asyncpg.InvalidParameterValueError, match=message):
            await intake.execute(sql, rid)
    assert await pg.fetchval("SELECT count(*) FROM gdpr_request_log") == 1


CHECKS = [
    ("received in the year 12000", "received_at", "'12000-01-01'", "received_at_from_2000_to_2199"),
    ("received before 2000", "received_at", "'1999-12-31'", "received_at_from_2000_to_2199"),
    ("received in 2200", "received_at", "'2200-01-01'", "received_at_from_2000_to_2199"),
    ("deadline set by hand in 2300", "due_at", "'2300-01-01'", "due_at_from_2000_to_2200"),
    ("requested_by of 256 characters", "requested_by", "repeat('x', 256)", "requested_by_at_most_255_characters"),
    ("requested_by on two lines", "requested_by", "E'a\\nb'", "requested_by_no_control_characters"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "column", "value", "constraint"), CHECKS, ids=[c[0] for c in CHECKS])
async def test_bounds_at_insert(case, column, value, constraint, pg):
    """Dates from 2000 to 2199 and names of one line up to 255 characters, refused by a named CHECK."""
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await pg.execute("INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, " + column
                         + f") VALUES ('forget', 1001, 'Contact', '003A', {value})")  # fmt: skip
    assert err.value.constraint_name == constraint


async def test_history_text_bounded(login, pg):
    """A history row longer than 4000 characters (detail) or 255 (actor) is refused by a named CHECK."""
    (rid,) = await insert_forget(pg, 1001)
    async with connected(await login("gdpr_daemon")) as daemon:
        for detail, actor, constraint in (("x" * 4001, "d", "history_detail_at_most_4000_characters"),
                                          ("x", "d" * 256, "history_actor_at_most_255_characters")):  # fmt: skip
            with pytest.raises(asyncpg.CheckViolationError) as err:
                await daemon.execute("INSERT INTO gdpr_request_log (request_id, to_status, detail, actor) "
                                     "VALUES ($1, 'pending', $2, $3)", rid, detail, actor)  # fmt: skip
            assert err.value.constraint_name == constraint


async def test_names_given_to_the_functions_bounded(pg):
    """A name given for the history (approver, --actor) is one line of at most 255 characters."""
    (rid,) = await insert_forget(pg, 1001)
    with pytest.raises(asyncpg.InvalidParameterValueError, match="longer than 255"):
        await pg.execute("SELECT gdpr_cancel_request($1, repeat('x', 256))", rid)
    with pytest.raises(asyncpg.InvalidParameterValueError, match="control character"):
        await pg.execute("SELECT gdpr_retry_request($1, E'bob\\u001b[2J')", rid)


async def test_migration_repairs_rows_the_new_bounds_refuse(pg, db_url):
    """Upgrading from 0004 with a year-12000 received_at and a two-line requested_by repairs them, with history."""
    name = f"{database_of(db_url)}_rep"
    await pg.execute(f'CREATE DATABASE "{name}"')
    url = with_db(db_url, name)
    eng = make_engine(url, pool_size=1)
    try:
        await migrate.upgrade(eng, "0004")
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, received_at, "
                               "requested_by) VALUES ('forget', 1001, 'Contact', 'a', '12000-01-01', 'alice'), "
                               "('forget', 1001, 'Contact', 'b', now(), E'bob\\nsmith')")  # fmt: skip
            await migrate.upgrade(eng)
            rows = await conn.fetch("SELECT received_at, due_at, requested_by FROM gdpr_requests ORDER BY id")
            assert rows[0]["received_at"].year < 2200 and rows[0]["due_at"].year < 2200
            assert rows[1]["requested_by"] == "bob smith"
            notes = [r[0] for r in await conn.fetch("SELECT detail FROM gdpr_request_log WHERE actor = 'gdpr-daemon migrate' "
                                                    "ORDER BY request_id")]  # fmt: skip
            assert notes[0].startswith("repaired by migration 0005: received_at 12000-01-01") and "cut to one line" in notes[1]
            assert await conn.fetchval("SELECT bool_and(convalidated) FROM pg_constraint WHERE conname LIKE '%2199'")
        finally:
            await conn.close()
        assert all(r.ok for r in await verify_chains(eng))
    finally:
        await eng.dispose()
        await pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
