"""Database functions resolve nothing through pg_temp: every temporary-table shadowing, per function and role.

The attack (issue 10, section 1): a login creates a temporary table named like one a
trigger or SECURITY DEFINER function reads, ``gdpr_daemon_settings``, ``gdpr_holidays``,
``gdpr_requests``, ``gdpr_request_log``, ``integrity_chains``, ``audit_events``, then
does what its role may do.  Before migration 0005 the function read the temporary table
(``pg_temp`` comes first unless a search_path says otherwise).  Each attack runs as a real
login of each role with TEMPORARY granted to all three (roles.sql revokes it from all but
gdpr_intake; the pin alone must hold).  Where the role cannot even reach the function,
the attack ends in a permission error; where it can, the real tables are used.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from gdpr_daemon.db.engine import make_engine
from gdpr_daemon.db.integrity import verify_chains
from tests.helpers import database_of, insert_forget
from tests.integrity.support import backdate_history
from tests.security import db_logins
from tests.security.db_logins import GROUPS, Login, connected, user_of

Denied = asyncpg.InsufficientPrivilegeError
roles, login = db_logins.roles, db_logins.login  # fixtures

SETTINGS = "CREATE TEMP TABLE gdpr_daemon_settings (key text PRIMARY KEY, value jsonb, updated_at timestamptz)"
HOLIDAYS = "CREATE TEMP TABLE gdpr_holidays (day date PRIMARY KEY, name text)"
EVERY_DAY = "INSERT INTO gdpr_holidays SELECT d::date, 'fake' FROM generate_series(now() - interval '1 day', now() + interval '5 years', interval '1 day') d"
CHAINS = ("CREATE TEMP TABLE integrity_chains (chain text PRIMARY KEY, base_seq bigint, base_hash bytea, "
          "updated_at timestamptz, writer_xact xid8, scrubbed_seq bigint)")  # fmt: skip
FAKE_CHAINS = ("INSERT INTO integrity_chains VALUES ('gdpr_request_log', 5, sha256('x'), now(), NULL, 0), "
               "('audit_events', 5, sha256('x'), now(), NULL, 0)")  # fmt: skip
REQUESTS = ("CREATE TEMP TABLE gdpr_requests (id bigint PRIMARY KEY, request_type text, status text, requested_by text, "
            "approved_by text, entered_login text, due_at timestamptz, original_due_at timestamptz, "
            "received_at timestamptz, updated_at timestamptz, attempts int, next_attempt_at timestamptz, "
            "last_error text, approved_login text)")  # fmt: skip
LOG = ("CREATE TEMP TABLE gdpr_request_log (id bigint, request_id bigint, at timestamptz, from_status text, "
       "to_status text, detail text, actor text, chain_seq bigint, row_hash bytea)")  # fmt: skip
REQUEST = "INSERT INTO public.gdpr_requests (request_type, service_id, table_name, record_id) VALUES ('forget', 1001, 'Contact', $1) RETURNING id, status, due_at"


async def verified(db_url: str) -> bool:
    engine = make_engine(db_url, pool_size=1)
    try:
        return all(r.ok for r in await verify_chains(engine))
    finally:
        await engine.dispose()


async def history(pg: asyncpg.Connection, rid: int) -> list[str]:
    return [r["detail"] for r in await pg.fetch("SELECT detail FROM gdpr_request_log WHERE request_id = $1 ORDER BY chain_seq", rid)]


# ---- the attacks: (attacker's connection, superuser connection, db_url, can the role reach the function) -----


async def settings_and_holidays(conn, pg, db_url, reach):
    """gdpr_requests_before_insert, gdpr_due_at: four eyes from a fake settings table, a deadline years away."""
    await pg.execute("INSERT INTO gdpr_daemon_settings (key, value) VALUES ('require_approval', 'true')")
    await conn.execute(SETTINGS)
    await conn.execute("INSERT INTO gdpr_daemon_settings VALUES ('require_approval', 'false', now())")
    await conn.execute(HOLIDAYS)
    await conn.execute(EVERY_DAY)
    if not reach:
        with pytest.raises(Denied):
            await conn.fetchrow(REQUEST, "003SHADOW")
        return
    _, status, due = await conn.fetchrow(REQUEST, "003SHADOW")
    assert status == "awaiting_approval", "four eyes came from the real gdpr_daemon_settings"
    assert await pg.fetchval("SELECT $1 < now() + interval '40 days'", due), "the deadline ignored the fake holidays"


async def history_of_insert(conn, pg, db_url, reach):
    """gdpr_requests_log_insert, gdpr_request_log_chain, integrity_chain_take: history lands in the real, linked chain."""
    await insert_forget(pg, 1001, 2)
    await conn.execute(LOG)
    await conn.execute(CHAINS)
    await conn.execute(FAKE_CHAINS)
    insert_history = ("INSERT INTO public.gdpr_request_log (request_id, to_status, detail, actor) "
                      "VALUES (1, 'pending', 'note', 'x')")  # fmt: skip
    if not reach:
        with pytest.raises(Denied):
            await conn.fetchrow(REQUEST, "003SHADOW")
        with pytest.raises(Denied):
            await conn.execute(insert_history)
        return
    if await conn.fetchval("SELECT has_any_column_privilege('public.gdpr_requests', 'INSERT')"):
        (rid, _, _) = await conn.fetchrow(REQUEST, "003SHADOW")
        assert await history(pg, rid) == ["received forget request"]
    else:
        await conn.execute(insert_history)
    assert await conn.fetchval("SELECT count(*) FROM pg_temp.gdpr_request_log") == 0
    seqs = [r[0] for r in await pg.fetch("SELECT chain_seq FROM gdpr_request_log ORDER BY chain_seq")]
    assert seqs == [1, 2, 3], "the real chain's base, not the fake one at 5"
    assert await verified(db_url)


async def approve_own(conn, pg, db_url, reach):
    """gdpr_approve_requests: a fake gdpr_requests row naming someone else as enterer does not get one's own request approved."""
    await pg.execute("INSERT INTO gdpr_daemon_settings (key, value) VALUES ('require_approval', 'true')")
    async with connected(await conn.login("gdpr_intake")) as enterer:
        (rid, status, _) = await enterer.fetchrow(REQUEST, "003OWN")
    assert status == "awaiting_approval"
    await pg.execute("UPDATE gdpr_requests SET requested_by = $1, entered_login = $1 WHERE id = $2",
                     conn.user, rid)  # fmt: skip
    await conn.execute(REQUESTS)
    await conn.execute("INSERT INTO gdpr_requests (id, status, requested_by, entered_login) "
                       "VALUES ($1, 'awaiting_approval', 'someone-else', 'someone-else')", rid)  # fmt: skip
    if not reach:
        with pytest.raises(Denied):
            await conn.execute("SELECT gdpr_approve_requests(ARRAY[$1::bigint])", rid)
        return
    with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError, match="four eyes need a different"):
        await conn.execute("SELECT gdpr_approve_requests(ARRAY[$1::bigint])", rid)
    assert await pg.fetchval("SELECT status FROM gdpr_requests WHERE id = $1", rid) == "awaiting_approval"
    assert await history(pg, rid) == ["received forget request"]


async def extend_submitted(conn, pg, db_url, reach):
    """gdpr_extend_deadline, gdpr_requests_guard_due_at: no forged extension, and fake holidays move no deadline."""
    (done,) = await insert_forget(pg, 1001, prefix="DONE")
    (open_,) = await insert_forget(pg, 1001, prefix="OPEN")
    await pg.execute("UPDATE gdpr_requests SET status = 'submitted' WHERE id = $1", done)
    await conn.execute(REQUESTS)
    await conn.execute("INSERT INTO gdpr_requests (id, status, due_at, received_at) "
                       "VALUES ($1, 'pending', now() + interval '20 days', now())", done)  # fmt: skip
    await conn.execute(HOLIDAYS)
    await conn.execute(EVERY_DAY)
    extend = "SELECT * FROM gdpr_extend_deadline($1, 2, 'complex case')"
    if not reach:
        with pytest.raises(Denied):
            await conn.execute(extend, done)
        return
    with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError, match="is submitted"):
        await conn.execute(extend, done)
    assert await history(pg, done) == ["received forget request"]
    _, new = await conn.fetchrow(extend, open_)
    assert await pg.fetchval("SELECT $1::timestamptz < now() + interval '100 days'", new), "fake holidays were read"


async def retry_submitted(conn, pg, db_url, reach):
    """gdpr_retry_request: a fake failed row does not get a submitted request's history a forged retry."""
    (done,) = await insert_forget(pg, 1001)
    await pg.execute("UPDATE gdpr_requests SET status = 'submitted' WHERE id = $1", done)
    await conn.execute(REQUESTS)
    await conn.execute("INSERT INTO gdpr_requests (id, status) VALUES ($1, 'failed')", done)
    if not reach:
        with pytest.raises(Denied):
            await conn.execute("SELECT gdpr_retry_request($1)", done)
        return
    with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError, match="submitted already"):
        await conn.execute("SELECT gdpr_retry_request($1)", done)
    assert await history(pg, done) == ["received forget request"]


async def cancel_submitted(conn, pg, db_url, reach):
    """gdpr_cancel_request: no forged cancellation of a submitted request; a real one goes into the real history."""
    (done,) = await insert_forget(pg, 1001, prefix="DONE")
    (open_,) = await insert_forget(pg, 1001, prefix="OPEN")
    await pg.execute("UPDATE gdpr_requests SET status = 'submitted' WHERE id = $1", done)
    await conn.execute(REQUESTS)
    await conn.execute("INSERT INTO gdpr_requests (id, status) VALUES ($1, 'pending')", done)
    await conn.execute(LOG)
    if not reach:
        with pytest.raises(Denied):
            await conn.execute("SELECT gdpr_cancel_request($1)", done)
        return
    with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError, match="only requests not yet submitted"):
        await conn.execute("SELECT gdpr_cancel_request($1)", done)
    assert await history(pg, done) == ["received forget request"]
    await conn.execute("SELECT gdpr_cancel_request($1, NULL, 'entered twice')", open_)
    assert await history(pg, open_) == ["received forget request", "cancelled by the DPO: entered twice"]
    assert await conn.fetchval("SELECT count(*) FROM pg_temp.gdpr_request_log") == 0


async def purge_from_the_middle(conn, pg, db_url, reach):
    """gdpr_purge_chain, integrity_delete_only_purged, integrity_chains_guard: a fake base cannot cut the chain's middle."""
    ids = await insert_forget(pg, 1001, 10)
    await backdate_history(pg, ids, "7 years")
    await conn.execute(CHAINS)
    await conn.execute(FAKE_CHAINS)
    await conn.execute(SETTINGS)
    await conn.execute("INSERT INTO gdpr_daemon_settings VALUES ('retention_history_days', '1', now())")
    purge = "SELECT gdpr_purge_chain('gdpr_request_log', now() - interval '2190 days', 100)"
    if not reach:
        with pytest.raises(Denied):
            await conn.execute(purge)
        return
    assert await conn.fetchval(purge) == 10
    cp = await pg.fetchrow("SELECT from_seq, to_seq FROM integrity_checkpoints WHERE chain = 'gdpr_request_log'")
    assert tuple(cp) == (0, 10), "the purge started from the real base"
    assert await verified(db_url)


async def personal_fields_floor(conn, pg, db_url, reach):
    """gdpr_purge_personal_fields, gdpr_retention_days: a fake floor of 1 day purges no 30-day-old request."""
    (rid,) = await insert_forget(pg, 1001, prefix="KEEP")
    await pg.execute("UPDATE gdpr_requests SET status = 'submitted', updated_at = now() - interval '30 days'")
    await conn.execute(SETTINGS)
    await conn.execute("INSERT INTO gdpr_daemon_settings VALUES ('retention_days', '1', now())")
    call = "SELECT gdpr_purge_personal_fields(1, 100, 'attacker')"
    if not reach:
        with pytest.raises(Denied):
            await conn.execute(call)
        return
    assert await conn.fetchval(call) == 0
    assert await pg.fetchval("SELECT record_id FROM gdpr_requests WHERE id = $1", rid) == "KEEP000000000001"


async def scrub_floor(conn, pg, db_url, reach):
    """gdpr_scrub_events, audit_events_only_scrubbed, gdpr_mask_personal: a fake floor scrubs no recent event."""
    await pg.execute("INSERT INTO audit_events (event_id, created_at, key, parameters, raw) VALUES "
                     "(1, now(), 'gdpr.forget', '{\"record_id\": \"003A\"}', '{\"parameters\": {\"record_id\": \"003A\"}}')")  # fmt: skip
    await conn.execute(SETTINGS)
    await conn.execute("INSERT INTO gdpr_daemon_settings VALUES ('retention_days', '1', now())")
    call = "SELECT scrubbed FROM gdpr_scrub_events(1, 100)"
    if not reach:
        with pytest.raises(Denied):
            await conn.execute(call)
        return
    assert await conn.fetchval(call) == 0
    assert json.loads(await pg.fetchval("SELECT parameters FROM audit_events")) == {"record_id": "003A"}


async def floor_lowered(conn, pg, db_url, reach):
    """gdpr_daemon_settings_guard: a fake settings table does not make shortening the real floor look like raising it."""
    await conn.execute(SETTINGS)
    await conn.execute("INSERT INTO gdpr_daemon_settings VALUES ('retention_history_days', '0', now())")
    lower = ("INSERT INTO public.gdpr_daemon_settings (key, value) VALUES ('retention_history_days', '1') "
             "ON CONFLICT (key) DO UPDATE SET value = excluded.value")  # fmt: skip
    with pytest.raises(Denied):  # refused by the guard, or by privileges for roles without INSERT
        await conn.execute(lower)
    assert await pg.fetchval("SELECT value FROM gdpr_daemon_settings WHERE key = 'retention_history_days'") == "2190"


async def event_vanishes(conn, pg, db_url, reach):
    """audit_events_chain: a fake audit_events holding the event_id does not make a real event be skipped."""
    await conn.execute("CREATE TEMP TABLE audit_events (event_id bigint, chain_seq bigint, row_hash bytea)")
    await conn.execute("INSERT INTO audit_events VALUES (7, 1, sha256('x'))")
    await conn.execute(CHAINS)
    await conn.execute(FAKE_CHAINS)
    insert = "INSERT INTO public.audit_events (event_id, created_at, key, raw) VALUES (7, now(), 'user.login', '{}')"
    if not reach:
        with pytest.raises(Denied):
            await conn.execute(insert)
        return
    await conn.execute(insert)
    assert await pg.fetchval("SELECT chain_seq FROM audit_events WHERE event_id = 7") == 1
    assert await verified(db_url)


class Attacker:
    """The attacker's connection, with its login name and a way to make another login."""

    def __init__(self, conn: asyncpg.Connection, user: str, make_login: Login) -> None:
        self.conn, self.user, self.login = conn, user, make_login

    def __getattr__(self, name: str):  # the connection's methods
        return getattr(self.conn, name)


Attack = Callable[[Attacker, asyncpg.Connection, str, bool], Awaitable[None]]

# Each attack with the roles that may invoke the function it targets (the others are refused).
ATTACKS: dict[str, tuple[Attack, tuple[str, ...]]] = {
    "settings and holidays": (settings_and_holidays, ("gdpr_intake",)),
    "history of an insert": (history_of_insert, ("gdpr_intake", "gdpr_daemon")),
    "approve one's own": (approve_own, ("gdpr_intake",)),
    "extend a submitted": (extend_submitted, ("gdpr_intake",)),
    "retry a submitted": (retry_submitted, ("gdpr_intake",)),
    "cancel a submitted": (cancel_submitted, ("gdpr_intake",)),
    "purge from the middle": (purge_from_the_middle, ("gdpr_daemon",)),
    "personal fields floor": (personal_fields_floor, ("gdpr_daemon",)),
    "scrub floor": (scrub_floor, ("gdpr_daemon",)),
    "floor lowered": (floor_lowered, ("gdpr_daemon",)),
    "an event vanishes": (event_vanishes, ("gdpr_daemon",)),
}
# Functions that read no table (nothing to shadow): the pin test below still checks them.
READ_NO_TABLE = {
    "gdpr_requests_notify", "gdpr_requests_guard_approval", "gdpr_requests_guard_entered", "integrity_refuse_change",
    "gdpr_acts_as_owner", "gdpr_checked_name",
}  # fmt: skip
ATTACKED = {
    "gdpr_requests_before_insert", "gdpr_due_at", "gdpr_requests_log_insert", "gdpr_request_log_chain",
    "integrity_chain_take", "gdpr_approve_requests", "gdpr_extend_deadline", "gdpr_requests_guard_due_at",
    "gdpr_retry_request", "gdpr_cancel_request", "gdpr_purge_chain", "integrity_delete_only_purged",
    "integrity_chains_guard", "gdpr_purge_personal_fields", "gdpr_retention_days", "gdpr_scrub_events",
    "audit_events_only_scrubbed", "gdpr_mask_personal", "gdpr_digest_personal", "gdpr_daemon_settings_guard",
    "audit_events_chain",
}  # fmt: skip
CASES = [(name, group) for name in ATTACKS for group in GROUPS]


@pytest.mark.parametrize(("attack", "group"), CASES, ids=[f"{a}-{g}" for a, g in CASES])
async def test_temp_table_shadowing_fails(attack, group, login, pg, db_url):
    """As a login of each role, a temporary table shadowing what a database function reads changes nothing real."""
    await pg.execute(f'GRANT TEMPORARY ON DATABASE "{database_of(db_url)}" TO gdpr_intake, gdpr_daemon, gdpr_auditor')
    fn, reaching = ATTACKS[attack]
    url = await login(group)
    async with connected(url) as conn:
        await fn(Attacker(conn, user_of(url), login), pg, db_url, group in reaching)


async def test_every_function_is_pinned(pg):
    """No function of the schema is left without search_path pinned to the schema, pg_temp last."""
    rows = await pg.fetch(
        "SELECT p.proname, p.proconfig FROM pg_proc p WHERE p.pronamespace = current_schema()::regnamespace"
    )
    schema = await pg.fetchval("SELECT quote_ident(current_schema())")
    unpinned = [r["proname"] for r in rows if f"search_path={schema}, pg_temp" not in (r["proconfig"] or [])]
    assert rows and not unpinned, f"functions without a pinned search_path: {unpinned}"
    names = {r["proname"] for r in rows}
    assert names == ATTACKED | READ_NO_TABLE, (
        f"a function is neither attacked above nor known to read no table: {names ^ (ATTACKED | READ_NO_TABLE)}"
    )


async def test_temporary_tables_only_for_intake(login):
    """roles.sql leaves TEMPORARY only to gdpr_intake (its import COPYs through one)."""
    for group in GROUPS:
        async with connected(await login(group)) as conn:
            if group == "gdpr_intake":
                await conn.execute("CREATE TEMP TABLE scratch (x int)")
            else:
                with pytest.raises(Denied):
                    await conn.execute("CREATE TEMP TABLE scratch (x int)")
