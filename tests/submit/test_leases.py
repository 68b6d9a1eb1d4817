"""Leases: a crashed claimer's rows come back, told apart by whether their calls were started,
and a late answer never overwrites."""

from __future__ import annotations

import asyncio

import asyncpg

from gdpr_daemon.db.queue import Outcome, QueueStore
from gdpr_daemon.submit.recorder import Starter
from tests.helpers import insert_forget, run_until_submitted

UNKNOWN = "%outcome unknown%"
NEVER_SENT = "%never sent%"


def store(engine, owner: str, lease: float = 30) -> QueueStore:  # type: ignore[no-untyped-def]
    return QueueStore(engine, owner=owner, actor=f"replica-{owner}", lease_seconds=lease)


async def expire(pg, *ids: int) -> None:  # type: ignore[no-untyped-def]
    """Make leases lapse (all of them, or those of ``ids``)."""
    await pg.execute(
        "UPDATE gdpr_requests SET lease_expires_at = now() - interval '1 second' "
        "WHERE lease_owner IS NOT NULL AND (cardinality($1::bigint[]) = 0 OR id = ANY($1))",
        list(ids),
    )


async def last_note(pg, rid: int) -> str:  # type: ignore[no-untyped-def]
    return str(await pg.fetchval("SELECT detail FROM gdpr_request_log WHERE request_id = $1 ORDER BY id DESC LIMIT 1", rid))


async def test_start_is_written_before_the_call_and_changes_nothing_else(engine, pg):
    """A start adds the claim to its process's dispatch row and leaves the request and its history as they were."""
    ids = await insert_forget(pg, 1001, 2)
    a = store(engine, "a")
    await a.claim(2)
    before = await pg.fetch("SELECT * FROM gdpr_requests ORDER BY id")
    history = await pg.fetchval("SELECT count(*) FROM gdpr_request_log")
    done = await a.start(ids[:1])
    assert (done.started, done.held) == ({ids[0]}, {ids[0]})
    assert await pg.fetchval("SELECT started FROM gdpr_dispatch WHERE owner = 'a'") == ids[:1]
    assert await pg.fetch("SELECT * FROM gdpr_requests ORDER BY id") == before
    assert await pg.fetchval("SELECT count(*) FROM gdpr_request_log") == history
    await a.start(ids[1:], done=ids[:1])
    assert await pg.fetchval("SELECT started FROM gdpr_dispatch WHERE owner = 'a'") == ids[1:], "a claim over leaves it"


async def test_a_claim_whose_lease_is_nearly_over_or_lost_is_not_started(engine, pg):
    """Only a claim this process holds, with more than the margin of its lease left, is started."""
    ids = await insert_forget(pg, 1001, 3)
    a, b = store(engine, "a"), store(engine, "b")
    await a.claim(2)
    await b.claim(1)
    await pg.execute("UPDATE gdpr_requests SET lease_expires_at = now() + interval '2 seconds' WHERE id = $1", ids[1])
    done = await a.start(ids)
    assert (done.started, done.held) == ({ids[0]}, {ids[0], ids[1]})
    assert await a.renew_leases([ids[1]]) == 1
    assert (await a.start(ids[1:2])).started == {ids[1]}


async def test_expired_claims_of_a_stopped_process_come_back_exactly(engine, pg):
    """A stopped process's expired claims return to pending, first in the queue: the started ones as "outcome
    unknown" (the attempt counted), the others as never sent (the attempt not counted); none stays in its row."""
    ids = await insert_forget(pg, 1001, 4)
    dead = store(engine, "dead-process")
    assert len(await dead.claim(4)) == 4
    await dead.start(ids[:2])
    waiting = await insert_forget(pg, 1001, 2, prefix="WAIT")
    await pg.execute("UPDATE gdpr_requests SET next_attempt_at = now() - interval '1 hour' WHERE id = ANY($1)", waiting)
    await expire(pg)
    found = await store(engine, "live").reap_expired(max_attempts=5)
    assert (found.unknown, found.never_sent, found.reaped) == (2, 2, 4)
    rows = {r["id"]: (r["status"], r["attempts"]) for r in await pg.fetch("SELECT id, status, attempts FROM gdpr_requests")}
    assert {i: rows[i] for i in ids} == {ids[0]: ("pending", 1), ids[1]: ("pending", 1), ids[2]: ("pending", 0),
                                         ids[3]: ("pending", 0)}  # fmt: skip
    for rid in ids[:2]:
        assert await last_note(pg, rid) == "lease of attempt 1 held by process dead-process expired: outcome unknown, it will be submitted again"
    for rid in ids[2:]:
        assert await last_note(pg, rid) == (
            "lease of attempt 1 held by process dead-process expired before its call was made: never sent, "
            "the attempt is not counted"
        )  # fmt: skip
    assert await pg.fetchval("SELECT started FROM gdpr_dispatch WHERE owner = 'dead-process'") == []
    order = [c.id for c in await store(engine, "next").claim(6)]
    assert set(order[:4]) == set(ids), "their turn had come: they go before requests that waited longer"


async def test_reaped_claims_are_submitted_again(daemon_for, sim, settings_for, engine, pg):
    """Claims of a process that died come back through its leases and are submitted by the next daemon."""
    ids = await insert_forget(pg, 1001, 3)
    dead = store(engine, "dead-process")
    await dead.claim(10)
    await dead.start(ids[:1])
    await expire(pg)

    await (await daemon_for(settings_for())).run_once()  # its reaper runs first

    rows = await pg.fetch("SELECT status, attempts FROM gdpr_requests ORDER BY id")
    assert [(r["status"], r["attempts"]) for r in rows] == [("submitted", 2), ("submitted", 1), ("submitted", 1)]
    assert await pg.fetchval("SELECT count(*) FROM gdpr_request_log WHERE detail LIKE $1", UNKNOWN) == 1


async def test_reaper_fails_request_without_attempts_left(engine, pg):
    """A started claim whose lease expires on the last allowed attempt ends the request failed, with what to do;
    an unstarted one on its last attempt goes back to pending, since no call was made."""
    started, unstarted = await insert_forget(pg, 1001, 2)
    a = store(engine, "a")
    await a.claim(2)
    await a.start([started])
    await expire(pg)
    assert (await store(engine, "b").reap_expired(max_attempts=1)).reaped == 2
    row = await pg.fetchrow("SELECT status, last_error FROM gdpr_requests WHERE id = $1", started)
    assert row["status"] == "failed" and f"gdpr-daemon requests retry {started}" in row["last_error"]
    assert await pg.fetchval("SELECT status FROM gdpr_requests WHERE id = $1", unstarted) == "pending"


async def test_live_lease_is_not_reaped_and_its_expiry_is_reported(engine, pg):
    """The reaper leaves rows whose lease has not expired alone, and says when the earliest one expires."""
    await insert_forget(pg, 1001, 2)
    a = store(engine, "a")
    await a.claim(2)
    found = await store(engine, "b").reap_expired(max_attempts=5)
    assert found.reaped == 0 and found.next_expiry_in is not None and 0 < found.next_expiry_in <= 30
    assert (await a.reap_expired(max_attempts=5)).next_expiry_in is None, "its own leases are not another's"
    assert await pg.fetchval("SELECT count(*) FROM gdpr_requests WHERE status = 'in_flight'") == 2


async def test_own_expired_leases_are_not_reaped_by_own_reaper(engine, pg):
    """A process holding claims whose leases lapsed (the database was away longer than a lease)
    records their outcomes itself; its own reaper leaves them, another process's reaps them."""
    ids = await insert_forget(pg, 1001, 2)
    me = store(engine, "me")
    await me.claim(2)
    await pg.execute("UPDATE gdpr_requests SET lease_expires_at = now() - interval '1 second'")
    assert (await me.reap_expired(max_attempts=5)).reaped == 0
    applied, late = await me.record([Outcome(ids[0], "submitted", "submitted to OwnBackup: request id 5", ownbackup_request_id=5)])
    assert (applied, late) == (1, 0)
    other = store(engine, "other")
    assert (await other.reap_expired(max_attempts=5)).reaped == 1
    assert await pg.fetchval("SELECT status FROM gdpr_requests WHERE id = $1", ids[1]) == "pending"


async def test_late_answer_does_not_overwrite_new_owner(engine, pg):
    """An outcome from a process whose lease was taken over changes nothing but is noted in the history;
    one found before any call is dropped without a note."""
    rid, checked = await insert_forget(pg, 1001, 2)
    old = store(engine, "old")
    new = store(engine, "new")
    await old.claim(2)
    await old.start([rid])
    await expire(pg)
    await new.reap_expired(max_attempts=5)
    await new.claim(2)
    applied, late = await old.record([
        Outcome(rid, "submitted", "submitted to OwnBackup: request id 77", ownbackup_request_id=77),
        Outcome(checked, "rejected", "rejected: bad", error="bad", called=False),
    ])  # fmt: skip
    assert (applied, late) == (0, 1)
    row = await pg.fetchrow("SELECT status, lease_owner, ownbackup_request_id FROM gdpr_requests WHERE id = $1", rid)
    assert (row["status"], row["lease_owner"], row["ownbackup_request_id"]) == ("in_flight", "new", None)
    note = await last_note(pg, rid)
    assert "lease had expired" in note and "request id 77" in note
    assert await last_note(pg, checked) == "claimed for attempt 1"


async def test_outcome_before_any_call_does_not_count_the_attempt(engine, pg):
    """A rejection found before any call ends the request rejected without counting its claim's attempt."""
    (rid,) = await insert_forget(pg, 1001)
    a = store(engine, "a")
    await a.claim(1)
    assert await a.record([Outcome(rid, "rejected", "rejected: bad", error="bad", called=False)]) == (1, 0)
    assert tuple(await pg.fetchrow("SELECT status, attempts FROM gdpr_requests WHERE id = $1", rid)) == ("rejected", 0)


async def test_renew_extends_only_own_leases(engine, pg):
    """Renewal moves the expiry of this process's claims (those named, when named) and of no one else's."""
    ids = await insert_forget(pg, 1001, 3)
    a = store(engine, "a")
    b = store(engine, "b")
    await a.claim(2)
    await b.claim(1)
    await pg.execute("UPDATE gdpr_requests SET lease_expires_at = now() + interval '1 second'")
    assert await a.renew_leases([ids[0]]) == 1
    assert await a.renew_leases() == 2
    rows = {r["lease_owner"]: r["left"] for r in await pg.fetch(
        "SELECT lease_owner, min(extract(epoch FROM lease_expires_at - now())) AS left FROM gdpr_requests GROUP BY 1")}  # fmt: skip
    assert rows["a"] > 20 and rows["b"] < 2


async def test_release_returns_unstarted_without_counting_attempt(engine, pg):
    """Claims released at shutdown go back to pending: without their attempt when no call was made (even if
    started), with it and "outcome unknown" when the call was cut off; none stays in the dispatch row."""
    unstarted, started, cut = await insert_forget(pg, 1001, 3)
    a = store(engine, "a")
    await a.claim(3)
    await a.start([started, cut])
    assert await a.release([unstarted, started], started=False, detail="released unstarted at shutdown") == 2
    assert await a.release([cut], started=True, detail="call cut off at shutdown: outcome unknown") == 1
    rows = {r["id"]: tuple(r)[1:] for r in await pg.fetch("SELECT id, status, attempts, lease_owner FROM gdpr_requests")}
    assert rows == {unstarted: ("pending", 0, None), started: ("pending", 0, None), cut: ("pending", 1, None)}
    assert await pg.fetchval("SELECT started FROM gdpr_dispatch WHERE owner = 'a'") == []


async def test_starter_answers_each_start(engine, pg):
    """Starts asked for together go in one write; each is answered started, lost (another process holds the
    claim) or again (too little lease left: renew, then ask again)."""
    ids = await insert_forget(pg, 1001, 3)
    a = store(engine, "a")
    await a.claim(2)
    await store(engine, "b").claim(1)
    await pg.execute("UPDATE gdpr_requests SET lease_expires_at = now() + interval '1 second' WHERE id = $1", ids[1])
    starter = Starter(a)
    stop = asyncio.Event()
    runner = asyncio.create_task(starter.run(stop))
    try:
        answers = await asyncio.wait_for(asyncio.gather(*(starter.start(rid) for rid in ids)), 30)
    finally:
        stop.set()
        await asyncio.wait_for(runner, 30)
    assert answers == ["started", "again", "lost"]


async def test_stopped_process_claims_back_when_their_lease_expires(daemon_for, sim, settings_for, engine, pg):
    """A running daemon takes a stopped process's claims back when their lease expires, not at its next look
    (its reaper interval and poll are an hour here): the unstarted ones as never sent, the started ones as
    outcome unknown; all are submitted."""
    ids = await insert_forget(pg, 1001, 4)
    dead = store(engine, "dead", lease=3)
    await dead.claim(4)
    await dead.start(ids[:2])
    daemon = await daemon_for(settings_for(queue_reaper_interval_seconds=3600, queue_poll_interval_seconds=3600))
    await run_until_submitted(daemon, pg, 4, what="the stopped process's claims to come back and be submitted")
    unknown = {r["request_id"] for r in await pg.fetch("SELECT request_id FROM gdpr_request_log WHERE detail LIKE $1", UNKNOWN)}
    never = {r["request_id"] for r in await pg.fetch("SELECT request_id FROM gdpr_request_log WHERE detail LIKE $1", NEVER_SENT)}
    assert (unknown, never) == (set(ids[:2]), set(ids[2:]))
    attempts = dict(await pg.fetch("SELECT id, attempts FROM gdpr_requests"))
    assert [attempts[i] for i in ids] == [2, 2, 1, 1]


async def test_reaping_wakes_every_replica(engine, pg, db_url):
    """Claims put back by the reaper send one NOTIFY, so a replica with room takes them at once, not at its poll."""
    await insert_forget(pg, 1001, 2)
    await store(engine, "dead").claim(2)
    listener = await asyncpg.connect(db_url)
    got: list[str] = []
    await listener.add_listener("gdpr_requests", lambda _c, _pid, _ch, payload: got.append(payload))
    try:
        await store(engine, "live").reap_expired(max_attempts=5)
        await listener.execute("SELECT 1")
        assert got == [], "nothing reaped, no wake-up"
        await expire(pg)
        assert (await store(engine, "live").reap_expired(max_attempts=5)).reaped == 2
        await listener.execute("SELECT 1")  # notifications are delivered before this answer
    finally:
        await listener.close()
    assert got == [""]


async def test_a_small_pool_is_left_to_the_statements(daemon_for, sim, settings_for, db_url, pg):
    """With a pool smaller than LANES_MIN_POOL the worker keeps no connection of its own for its claims, starts
    and outcomes (they would take the connections every other statement needs): a daemon whose pool holds one
    connection submits every request."""
    from gdpr_daemon.db.engine import make_engine
    from gdpr_daemon.db.queue import LANES_MIN_POOL

    assert LANES_MIN_POOL > 1
    await insert_forget(pg, 1001, 5)
    small = make_engine(db_url, pool_size=1)
    try:
        daemon = await daemon_for(settings_for(), engine=small)
        await run_until_submitted(daemon, pg, 5, what="the requests to be submitted through a one-connection pool")
    finally:
        await small.dispose()
