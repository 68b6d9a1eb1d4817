"""Hash chains and append-only history: what the database keeps, and what `audit verify` finds."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from gdpr_daemon.db import migrate
from gdpr_daemon.db.engine import make_engine
from gdpr_daemon.db.integrity import Anchor, verify_chains
from tests.helpers import database_of, insert_forget, with_db

EVENT = "INSERT INTO audit_events (event_id, created_at, key, user_email, parameters, raw) " \
        "VALUES ($1, now(), 'login', 'ops@example.com', '{}', $2::jsonb) ON CONFLICT (event_id) DO NOTHING"


async def report(engine, chain="gdpr_request_log", **kw):
    (r,) = await verify_chains(engine, [chain], **kw)
    return r


async def test_every_row_is_chained_and_verifies(engine, pg):
    """Each inserted history row gets the next chain_seq and a hash; verify says OK with the count and head."""
    await insert_forget(pg, 1001, 5)
    rows = await pg.fetch("SELECT chain_seq, row_hash FROM gdpr_request_log ORDER BY id")
    assert [r["chain_seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert all(len(r["row_hash"]) == 32 for r in rows)
    r = await report(engine)
    assert r.ok and r.rows == 5 and r.head_seq == 5 and r.head_hash == rows[-1]["row_hash"].hex()
    assert r.summary().startswith("gdpr_request_log: OK, 5 rows (chain_seq 1 to 5)")


async def test_empty_chains_verify(engine):
    """A database without history verifies OK with 0 rows."""
    reports = await verify_chains(engine)
    assert [(r.chain, r.ok, r.rows) for r in reports] == [("gdpr_request_log", True, 0), ("audit_events", True, 0)]


async def test_update_delete_truncate_refused(pg):
    """UPDATE, DELETE and TRUNCATE of the history and the events are refused, even for the owner."""
    await insert_forget(pg, 1001)
    await pg.execute(EVENT, 1, json.dumps({"event_id": 1}))
    for sql in ("UPDATE gdpr_request_log SET detail = 'x'", "DELETE FROM gdpr_request_log",
                "TRUNCATE gdpr_request_log CASCADE", "UPDATE audit_events SET key = 'x'",
                "DELETE FROM audit_events", "TRUNCATE audit_events"):  # fmt: skip
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await pg.execute(sql)
    assert await pg.fetchval("SELECT count(*) FROM gdpr_request_log") == 1
    assert await pg.fetchval("SELECT count(*) FROM audit_events") == 1


async def tamper(pg: asyncpg.Connection, sql: str, *args: object) -> None:
    """Change rows as a superuser with the triggers switched off."""
    async with pg.transaction():
        await pg.execute("SET LOCAL session_replication_role = replica")
        await pg.execute(sql, *args)


async def test_altered_row_is_named(engine, pg):
    """A history row altered by a superuser is named by verify, with its request."""
    ids = await insert_forget(pg, 1001, 10)
    victim = await pg.fetchrow("SELECT id, request_id, chain_seq FROM gdpr_request_log WHERE request_id = $1", ids[6])
    await tamper(pg, "UPDATE gdpr_request_log SET detail = 'nothing happened' WHERE id = $1", victim["id"])
    r = await report(engine)
    assert not r.ok
    assert (r.broken.row_key, r.broken.chain_seq, r.broken.request_id) == (victim["id"], 7, ids[6])
    assert "this row was altered" in r.summary() and f"row id {victim['id']}" in r.summary()


async def test_altered_row_with_recomputed_hash_breaks_the_next(engine, pg):
    """A row altered with its hash recomputed breaks the link of the row after it."""
    await insert_forget(pg, 1001, 5)
    body = ("concat_ws('|', chain_seq, id, request_id, (extract(epoch FROM at) * 1000000)::bigint, "
            "quote_nullable(from_status), quote_nullable(to_status), quote_nullable(detail), quote_nullable(actor))")
    await tamper(pg, f"""UPDATE gdpr_request_log l SET detail = 'forged',
        row_hash = sha256((SELECT row_hash FROM gdpr_request_log p WHERE p.chain_seq = 2) ||
                          convert_to(replace({body}, quote_nullable(detail), quote_nullable('forged')), 'UTF8'))
        WHERE chain_seq = 3""")  # fmt: skip
    r = await report(engine)
    assert r.broken.chain_seq == 4 and "chain_seq 3 was altered and its hash recomputed" in r.broken.reason


async def test_deleted_row_is_a_gap(engine, pg):
    """A row deleted behind the trigger's back shows as missing chain_seq before the next row."""
    await insert_forget(pg, 1001, 6)
    await tamper(pg, "DELETE FROM gdpr_request_log WHERE chain_seq = 4")
    r = await report(engine)
    assert r.broken.chain_seq == 5 and "chain_seq 4 to 4 are missing" in r.broken.reason


async def test_forged_row_is_caught(engine, pg):
    """A row inserted with the triggers off, made to look like the next link, fails its hash."""
    (rid,) = await insert_forget(pg, 1001)
    await tamper(pg, "INSERT INTO gdpr_request_log (request_id, to_status, detail, actor, chain_seq, row_hash) "
                     "VALUES ($1, 'submitted', 'submitted to OwnBackup', 'x', 2, sha256('x'))", rid)  # fmt: skip
    r = await report(engine)
    assert r.broken.chain_seq == 2 and "this row was altered" in r.broken.reason


async def test_events_chain_skips_duplicates(engine, pg):
    """Events inserted twice (ON CONFLICT DO NOTHING, as after a crash) are stored and chained once."""
    for eid in (1, 2, 3, 2, 3, 4):
        await pg.execute(EVENT, eid, json.dumps({"event_id": eid, "user_email": "ops@example.com"}))
    await pg.execute(
        "INSERT INTO audit_events (event_id, created_at, raw) SELECT g, now(), jsonb_build_object('event_id', g) "
        "FROM generate_series(3, 8) g ON CONFLICT (event_id) DO NOTHING"
    )
    rows = await pg.fetch("SELECT event_id, chain_seq FROM audit_events ORDER BY chain_seq")
    assert [(r["event_id"], r["chain_seq"]) for r in rows] == [(i, i) for i in range(1, 9)]
    r = await report(engine, "audit_events")
    assert r.ok and r.rows == 8


async def test_altered_event_is_named(engine, pg):
    """An account event whose user_email was changed is named by its event_id."""
    for eid in range(1, 6):
        await pg.execute(EVENT, eid, json.dumps({"event_id": eid}))
    await tamper(pg, "UPDATE audit_events SET user_email = 'someone@else.example' WHERE event_id = 3")
    r = await report(engine, "audit_events")
    assert r.broken.row_key == 3 and "event_id 3" in r.summary()


async def test_concurrent_writers_keep_one_chain(engine, db_url, pg):
    """Eight connections inserting batches at once build one gapless chain that verifies."""
    ids = await insert_forget(pg, 1001, 20)
    conns = [await asyncpg.connect(db_url) for _ in range(8)]

    async def writer(c: asyncpg.Connection, n: int) -> None:
        for i in range(25):
            await c.execute(
                "INSERT INTO gdpr_request_log (request_id, from_status, to_status, detail, actor) "
                "SELECT r, 'pending', 'pending', $2, 'w' FROM unnest($1::bigint[]) r", ids[: 1 + (i + n) % 7], f"w{n}-{i}"
            )

    try:
        await asyncio.gather(*(writer(c, n) for n, c in enumerate(conns)))
    finally:
        for c in conns:
            await c.close()
    total = await pg.fetchval("SELECT count(*) FROM gdpr_request_log")
    assert await pg.fetchval("SELECT max(chain_seq) FROM gdpr_request_log") == total
    r = await report(engine)
    assert r.ok and r.rows == total


async def test_rolled_back_savepoint_leaves_no_gap(engine, pg):
    """Rows of a rolled-back savepoint or transaction leave no gap and no stale link."""
    (rid,) = await insert_forget(pg, 1001)
    log = "INSERT INTO gdpr_request_log (request_id, to_status, actor) VALUES ($1, 'pending', 't')"
    async with pg.transaction():
        await pg.execute(log, rid)
        try:
            async with pg.transaction():
                await pg.execute(log, rid)
                raise RuntimeError("roll back the savepoint")
        except RuntimeError:
            pass
        await pg.execute(log, rid)
    with pytest.raises(RuntimeError):
        async with pg.transaction():
            await pg.execute(log, rid)
            raise RuntimeError("roll back the transaction")
    await pg.execute(log, rid)
    assert [r[0] for r in await pg.fetch("SELECT chain_seq FROM gdpr_request_log ORDER BY chain_seq")] == [1, 2, 3, 4]
    assert (await report(engine)).ok


async def test_session_setting_cannot_fork_the_chain(engine, pg):
    """A stale chain setting left in the session is ignored: the next transaction links to the true head."""
    await insert_forget(pg, 1001, 2)
    await pg.execute("SET gdpr_daemon.chain_gdpr_request_log = '1:1:00'")
    await insert_forget(pg, 1001, 2)
    assert (await report(engine)).ok


async def test_anchor_detects_a_rewritten_chain(engine, pg):
    """A head recorded earlier no longer matches once the chain is rewritten from the start."""
    await insert_forget(pg, 1001, 3)
    head = await report(engine)
    anchor = Anchor.parse(head.summary().rsplit("head ", 1)[1])
    assert (await report(engine, anchors=[anchor])).ok
    # Rewrite everything consistently: the chain alone still verifies, the anchor does not.
    await tamper(pg, "UPDATE gdpr_request_log SET detail = 'rewritten'")
    await tamper(pg, """
        DO $$ DECLARE r record; h bytea := (SELECT base_hash FROM integrity_chains WHERE chain = 'gdpr_request_log');
        BEGIN FOR r IN SELECT * FROM gdpr_request_log ORDER BY chain_seq LOOP
            h := sha256(h || convert_to(concat_ws('|', r.chain_seq, r.id, r.request_id,
                 (extract(epoch FROM r.at) * 1000000)::bigint, quote_nullable(r.from_status),
                 quote_nullable(r.to_status), quote_nullable(r.detail), quote_nullable(r.actor)), 'UTF8'));
            UPDATE gdpr_request_log SET row_hash = h WHERE id = r.id; END LOOP; END $$""")
    assert (await report(engine)).ok
    r = await report(engine, anchors=[anchor])
    assert not r.ok and "rewritten" in r.broken.reason


async def test_migration_chains_existing_history(pg_admin_url, pg, db_url):
    """Upgrading a database that already holds history (0003 -> 0004) chains the existing rows."""
    name = f"{database_of(db_url)}_up"
    await pg.execute(f'CREATE DATABASE "{name}"')
    url = with_db(db_url, name)
    eng = make_engine(url, pool_size=1)
    try:
        await migrate.upgrade(eng, "0003")
        conn = await asyncpg.connect(url)
        await insert_forget(conn, 1001, 30)
        await conn.execute("INSERT INTO audit_events (event_id, created_at, raw) "
                           "SELECT g, now(), '{}' FROM generate_series(1, 10) g")  # fmt: skip
        await conn.close()
        await migrate.upgrade(eng)
        reports = await verify_chains(eng)
        assert [(r.ok, r.rows) for r in reports] == [(True, 30), (True, 10)]
    finally:
        await eng.dispose()
        await pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
