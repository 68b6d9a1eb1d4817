"""Leases: a claim is a lease on a pending row, a start is what a crash leaves as "outcome unknown",
a stopped process's claims come back, and a late answer never overwrites."""

from __future__ import annotations

import asyncio

from gdpr_daemon.daemon import Daemon
from gdpr_daemon.db.queue import Outcome, QueueStore
from gdpr_daemon.intake.recorder import Recorder
from tests.helpers import insert_forget, wait_until

UNKNOWN = "%outcome unknown%"


def store(engine, owner: str, lease: float = 30) -> QueueStore:  # type: ignore[no-untyped-def]
    return QueueStore(engine, owner=owner, actor=f"replica-{owner}", lease_seconds=lease)


async def expire(pg, *ids: int) -> None:  # type: ignore[no-untyped-def]
    """Make leases lapse (all of them, or those of ``ids``)."""
    await pg.execute(
        "UPDATE gdpr_requests SET lease_expires_at = now() - interval '1 second' "
        "WHERE lease_owner IS NOT NULL AND (cardinality($1::bigint[]) = 0 OR id = ANY($1))",
        list(ids),
    )


async def history(pg, rid: int) -> list[tuple[str | None, str, str]]:  # type: ignore[no-untyped-def]
    rows = await pg.fetch("SELECT from_status, to_status, detail FROM gdpr_request_log WHERE request_id = $1 ORDER BY id", rid)
    return [(r["from_status"], r["to_status"], r["detail"]) for r in rows]


async def test_claim_is_only_a_lease(engine, pg):
    """A claim leaves the request pending, counts no attempt and writes no history: it only holds a lease."""
    ids = await insert_forget(pg, 1001, 3)
    claimed = await store(engine, "a").claim(10)
    assert [c.id for c in claimed] == ids and {c.attempts for c in claimed} == {0}
    rows = await pg.fetch("SELECT status, attempts, lease_owner, lease_expires_at > now() AS live FROM gdpr_requests")
    assert {(r["status"], r["attempts"], r["lease_owner"], r["live"]) for r in rows} == {("pending", 0, "a", True)}
    assert await pg.fetchval("SELECT count(*) FROM gdpr_request_log WHERE to_status <> 'pending' OR from_status IS NOT NULL") == 0
    assert await store(engine, "b").claim(10) == [], "a live claim is not claimed again"


async def test_start_moves_to_in_flight_with_its_history(engine, pg):
    """Starting a claim (before its call) moves it to in_flight, counts the attempt and says so, in one statement."""
    (rid,) = await insert_forget(pg, 1001)
    a = store(engine, "a")
    await a.claim(1)
    assert await a.start([rid]) == {rid: 1}
    row = await pg.fetchrow("SELECT status, attempts, lease_owner FROM gdpr_requests WHERE id = $1", rid)
    assert tuple(row) == ("in_flight", 1, "a")
    assert (await history(pg, rid))[-1] == ("pending", "in_flight", "attempt 1: sending to OwnBackup")


async def test_a_start_tried_again_is_not_written_twice(engine, pg):
    """A start written once whose answer was lost is found as started when tried again, with one history row."""
    (rid,) = await insert_forget(pg, 1001)
    a = store(engine, "a")
    await a.claim(1)
    assert await a.start([rid]) == {rid: 1}
    assert await a.start([rid]) == {rid: 1}
    assert await pg.fetchval("SELECT attempts FROM gdpr_requests WHERE id = $1", rid) == 1
    assert sum(1 for h in await history(pg, rid) if h[1] == "in_flight") == 1


async def test_a_lost_claim_is_not_started(engine, pg):
    """A claim another process took over after its lease lapsed cannot be started: its request is not sent."""
    (rid,) = await insert_forget(pg, 1001)
    old, new = store(engine, "old"), store(engine, "new")
    await old.claim(1)
    await expire(pg)
    assert [c.id for c in await new.claim(1)] == [rid]
    assert await old.start([rid]) == {}
    row = await pg.fetchrow("SELECT status, attempts, lease_owner FROM gdpr_requests WHERE id = $1", rid)
    assert tuple(row) == ("pending", 0, "new")


async def test_unstarted_claims_of_a_stopped_process_are_taken_over_as_never_sent(engine, pg):
    """Claims of a process that stopped before starting them are taken over by the next claim once their
    lease lapses: no attempt counted, no "outcome unknown", the history says they were never sent."""
    ids = await insert_forget(pg, 1001, 3)
    await store(engine, "dead").claim(10)
    live = store(engine, "live")
    assert await live.claim(10) == [], "not before the lease lapses"
    await expire(pg)
    assert [c.id for c in await live.claim(10)] == ids
    rows = await pg.fetch("SELECT status, attempts, lease_owner FROM gdpr_requests ORDER BY id")
    assert {tuple(r) for r in rows} == {("pending", 0, "live")}
    for rid in ids:
        assert (await history(pg, rid))[-1] == (
            "pending", "pending", "claimed by process dead, whose lease expired before it was sent: never sent, taken over"
        )  # fmt: skip
    assert await pg.fetchval("SELECT count(*) FROM gdpr_request_log WHERE detail LIKE $1", UNKNOWN) == 0


async def test_started_claims_of_a_stopped_process_are_reaped_as_outcome_unknown(sim, settings_for, engine, pg):
    """Rows a process that died had started (their calls may have gone out) return to pending as
    "outcome unknown", keep their place in the queue, and are submitted again."""
    ids = await insert_forget(pg, 1001, 3)
    dead = store(engine, "dead-process")
    await dead.claim(10)
    assert await dead.start(ids) == dict.fromkeys(ids, 1)
    due = await pg.fetchval("SELECT max(next_attempt_at) FROM gdpr_requests")
    await expire(pg)
    found = await store(engine, "reaper").reap_expired(max_attempts=5)
    assert (found.reaped, found.stranded) == (3, 0)
    rows = await pg.fetch("SELECT status, attempts, next_attempt_at FROM gdpr_requests ORDER BY id")
    assert [(r["status"], r["attempts"]) for r in rows] == [("pending", 1)] * 3
    assert max(r["next_attempt_at"] for r in rows) == due, "a reaped request keeps its place in the queue"

    await Daemon(settings_for(), engine=engine).run_once()

    rows = await pg.fetch("SELECT status, attempts FROM gdpr_requests ORDER BY id")
    assert [(r["status"], r["attempts"]) for r in rows] == [("submitted", 2)] * 3
    notes = await pg.fetch("SELECT detail FROM gdpr_request_log WHERE from_status = 'in_flight' AND to_status = 'pending'")
    assert len(notes) == 3
    assert all("held by process dead-process expired: outcome unknown" in n["detail"] for n in notes)


async def test_reaper_fails_request_without_attempts_left(engine, pg):
    """A started claim whose lease expires on the last allowed attempt ends the request failed, with what to do."""
    (rid,) = await insert_forget(pg, 1001)
    a = store(engine, "a")
    await a.claim(1)
    await a.start([rid])
    await expire(pg)
    assert (await store(engine, "b").reap_expired(max_attempts=1)).reaped == 1
    row = await pg.fetchrow("SELECT status, last_error FROM gdpr_requests WHERE id = $1", rid)
    assert row["status"] == "failed" and f"gdpr-daemon requests retry {rid}" in row["last_error"]


async def test_live_leases_are_left_alone_and_their_expiry_reported(engine, pg):
    """The reaper leaves live claims alone and says when the earliest one of another process expires."""
    ids = await insert_forget(pg, 1001, 2)
    a = store(engine, "a")
    await a.claim(2)
    await a.start(ids[:1])
    found = await store(engine, "b").reap_expired(max_attempts=5)
    assert (found.reaped, found.stranded) == (0, 0)
    assert found.next_expiry_in is not None and 0 < found.next_expiry_in <= 30
    assert (await a.reap_expired(max_attempts=5)).next_expiry_in is None, "its own leases are not another's"
    assert await pg.fetchval("SELECT count(*) FROM gdpr_requests WHERE lease_owner = 'a'") == 2
    await expire(pg)
    found = await store(engine, "b").reap_expired(max_attempts=5)
    assert (found.reaped, found.stranded, found.next_expiry_in) == (1, 1, None)


async def test_own_expired_leases_stay_with_their_process(engine, pg):
    """A process whose leases lapsed (the database was away longer than a lease) still holds its claims:
    its own reaper and its own claim leave them, it records their outcomes itself; another process takes them."""
    ids = await insert_forget(pg, 1001, 3)
    me = store(engine, "me")
    await me.claim(3)
    await me.start(ids[:2])
    await expire(pg)
    assert (await me.reap_expired(max_attempts=5)).reaped == 0
    assert await me.claim(3) == []
    applied, late = await me.record([Outcome(ids[0], "submitted", "submitted to OwnBackup: request id 5", ownbackup_request_id=5)])
    assert (applied, late) == (1, 0)
    other = store(engine, "other")
    assert (await other.reap_expired(max_attempts=5)).reaped == 1
    assert [c.id for c in await other.claim(3)] == ids[1:]


async def test_late_answer_does_not_overwrite_new_owner(engine, pg):
    """An outcome from a process whose lease was taken over changes nothing but is noted in the history."""
    (rid,) = await insert_forget(pg, 1001)
    old, new = store(engine, "old"), store(engine, "new")
    await old.claim(1)
    await old.start([rid])
    await expire(pg)
    await new.reap_expired(max_attempts=5)
    await new.claim(1)
    await new.start([rid])
    applied, late = await old.record([Outcome(rid, "submitted", "submitted to OwnBackup: request id 77", ownbackup_request_id=77)])
    assert (applied, late) == (0, 1)
    row = await pg.fetchrow("SELECT status, lease_owner, ownbackup_request_id FROM gdpr_requests WHERE id = $1", rid)
    assert (row["status"], row["lease_owner"], row["ownbackup_request_id"]) == ("in_flight", "new", None)
    note = (await history(pg, rid))[-1][2]
    assert "lease had expired" in note and "request id 77" in note


async def test_outcome_before_any_call_moves_on_from_pending(engine, pg):
    """A rejection found before any call moves the request from pending (as its history says), counting no attempt;
    the same outcome on a claim another process took over is dropped without a trace."""
    ids = await insert_forget(pg, 1001, 2)
    a = store(engine, "a")
    await a.claim(2)
    assert await a.record([Outcome(ids[0], "rejected", "rejected: bad", error="bad", called=False)]) == (1, 0)
    row = await pg.fetchrow("SELECT status, attempts, lease_owner FROM gdpr_requests WHERE id = $1", ids[0])
    assert tuple(row) == ("rejected", 0, None)
    assert (await history(pg, ids[0]))[-1] == ("pending", "rejected", "rejected: bad")
    await expire(pg, ids[1])
    await store(engine, "b").claim(1)
    done = await a.flush([Outcome(ids[1], "rejected", "rejected: bad", error="bad", called=False)])
    assert (done.applied, done.late, done.dropped) == (0, 0, 1)
    assert await pg.fetchval("SELECT status FROM gdpr_requests WHERE id = $1", ids[1]) == "pending"
    assert len(await history(pg, ids[1])) == 2  # received, taken over


async def test_renew_extends_only_own_leases(engine, pg):
    """Renewal moves the expiry of this process's claims (those named, when named) and of no one else's."""
    ids = await insert_forget(pg, 1001, 3)
    a, b = store(engine, "a"), store(engine, "b")
    await a.claim(2)
    await b.claim(1)
    await a.start(ids[:1])
    await pg.execute("UPDATE gdpr_requests SET lease_expires_at = now() + interval '1 second'")
    assert await a.renew_leases([ids[1]]) == 1
    assert await a.renew_leases() == 2
    rows = {r["lease_owner"]: r["left"] for r in await pg.fetch(
        "SELECT lease_owner, min(extract(epoch FROM lease_expires_at - now())) AS left FROM gdpr_requests GROUP BY 1")}  # fmt: skip
    assert rows["a"] > 20 and rows["b"] < 2


async def test_release_at_shutdown(engine, pg):
    """At shutdown an unstarted claim only loses its lease (no history); one started but not called goes back
    without its attempt ("not sent"); one whose call was cut off goes back as "outcome unknown"."""
    unstarted, not_called, cut = await insert_forget(pg, 1001, 3)
    a = store(engine, "a")
    await a.claim(3)
    await a.start([not_called, cut])
    assert await a.release([unstarted, not_called], called=False) == 2
    assert await a.release([cut], called=True, detail="call cut off at shutdown: outcome unknown") == 1
    rows = {r["id"]: tuple(r)[1:] for r in await pg.fetch("SELECT id, status, attempts, lease_owner FROM gdpr_requests")}
    assert rows == {unstarted: ("pending", 0, None), not_called: ("pending", 0, None), cut: ("pending", 1, None)}
    assert len(await history(pg, unstarted)) == 1
    assert (await history(pg, not_called))[-1][2] == "attempt 1 not sent: stopped at shutdown before the call was made"
    assert (await history(pg, cut))[-1][2] == "call cut off at shutdown: outcome unknown"


async def test_recorder_starts_claims_with_the_outcomes_of_others(engine, pg):
    """The recorder starts claims and writes outcomes that come together in one write; a lost claim's start
    answers None; a start withdrawn before any write leaves its claim pending."""
    ids = await insert_forget(pg, 1001, 4)
    a = store(engine, "a")
    await a.claim(4)
    await a.start(ids[:1])
    await expire(pg, ids[2])
    await store(engine, "b").claim(1)
    recorder = Recorder(a)
    withdrawn = asyncio.create_task(recorder.start(ids[3]))
    await asyncio.sleep(0)
    withdrawn.cancel()
    recorder.put(Outcome(ids[0], "submitted", "submitted to OwnBackup: request id 9", ownbackup_request_id=9))
    starts = [asyncio.create_task(recorder.start(rid)) for rid in ids[1:3]]
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(recorder.run(stop), 30)
    assert [await t for t in starts] == [1, None]
    rows = {r["id"]: tuple(r)[1:] for r in await pg.fetch("SELECT id, status, lease_owner FROM gdpr_requests")}
    assert rows == {ids[0]: ("submitted", None), ids[1]: ("in_flight", "a"), ids[2]: ("pending", "b"), ids[3]: ("pending", "a")}
    writes = await pg.fetch(
        "SELECT DISTINCT xmin::text FROM gdpr_request_log WHERE request_id = ANY($1) AND from_status IS NOT NULL", ids[:2]
    )
    assert len(writes) == 2, "the first start, then one transaction with the outcome and the second start"


async def test_stopped_process_claims_back_when_their_lease_expires(sim, settings_for, engine, pg):
    """A running daemon takes over a stopped process's claims when their lease expires, not at its next look
    (its reaper interval and poll are an hour here): the unstarted ones as never sent, the started ones as
    outcome unknown; all are submitted."""
    ids = await insert_forget(pg, 1001, 4)
    dead = store(engine, "dead", lease=3)
    await dead.claim(4)
    await dead.start(ids[:2])
    daemon = Daemon(settings_for(queue_reaper_interval_seconds=3600, queue_poll_interval_seconds=3600), engine=engine)
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    try:
        await wait_until(lambda: pg.fetchval("SELECT count(*) = 4 FROM gdpr_requests WHERE status = 'submitted'"),
                         timeout=30, what="the stopped process's claims to be taken over and submitted")  # fmt: skip
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 30) == 0
    unknown = {r["request_id"] for r in await pg.fetch("SELECT request_id FROM gdpr_request_log WHERE detail LIKE $1", UNKNOWN)}
    never = {r["request_id"] for r in await pg.fetch("SELECT request_id FROM gdpr_request_log WHERE detail LIKE '%never sent%'")}
    assert (unknown, never) == (set(ids[:2]), set(ids[2:]))
    attempts = dict(await pg.fetch("SELECT id, attempts FROM gdpr_requests"))
    assert [attempts[i] for i in ids] == [2, 2, 1, 1]
