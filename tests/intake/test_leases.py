"""Leases: a crashed claimer's rows come back, and a late answer never overwrites."""

from __future__ import annotations

from gdpr_daemon.daemon import Daemon
from gdpr_daemon.db.queue import Outcome, QueueStore
from tests.helpers import insert_forget


async def test_expired_lease_is_recovered_and_resubmitted(sim, settings_for, engine, pg):
    """Rows claimed by a process that died return to pending (outcome unknown, logged) and are submitted."""
    ids = await insert_forget(pg, 1001, 3)
    dead = QueueStore(engine, owner="dead-process", actor="crashed-replica", lease_seconds=30)
    claimed = await dead.claim(10)
    assert [c.id for c in claimed] == ids
    await pg.execute("UPDATE gdpr_requests SET lease_expires_at = now() - interval '1 second'")

    await Daemon(settings_for(), engine=engine).run_once()  # its reaper runs first

    rows = await pg.fetch("SELECT status, attempts FROM gdpr_requests ORDER BY id")
    assert [(r["status"], r["attempts"]) for r in rows] == [("submitted", 2)] * 3
    notes = await pg.fetch("SELECT detail FROM gdpr_request_log WHERE from_status = 'in_flight' AND to_status = 'pending'")
    assert len(notes) == 3
    assert all("held by process dead-process expired: outcome unknown" in n["detail"] for n in notes)


async def test_reaper_fails_request_without_attempts_left(engine, pg):
    """A lease that expires on the last allowed attempt ends the request failed, with what to do."""
    (rid,) = await insert_forget(pg, 1001)
    await QueueStore(engine, owner="a", actor="t", lease_seconds=30).claim(1)
    await pg.execute("UPDATE gdpr_requests SET lease_expires_at = now() - interval '1 second'")
    reaper = QueueStore(engine, owner="b", actor="t", lease_seconds=30)
    assert await reaper.reap_expired(max_attempts=1) == 1
    row = await pg.fetchrow("SELECT status, last_error FROM gdpr_requests WHERE id = $1", rid)
    assert row["status"] == "failed" and f"gdpr-daemon requests retry {rid}" in row["last_error"]


async def test_live_lease_is_not_reaped(engine, pg):
    """The reaper leaves rows whose lease has not expired alone."""
    await insert_forget(pg, 1001, 2)
    store = QueueStore(engine, owner="a", actor="t", lease_seconds=30)
    await store.claim(2)
    assert await store.reap_expired(max_attempts=5) == 0
    assert await pg.fetchval("SELECT count(*) FROM gdpr_requests WHERE status = 'in_flight'") == 2


async def test_own_expired_leases_are_not_reaped_by_own_reaper(engine, pg):
    """A process holding claims whose leases lapsed (the database was away longer than a lease)
    records their outcomes itself; its own reaper leaves them, another process's reaps them."""
    ids = await insert_forget(pg, 1001, 2)
    me = QueueStore(engine, owner="me", actor="replica-a", lease_seconds=30)
    await me.claim(2)
    await pg.execute("UPDATE gdpr_requests SET lease_expires_at = now() - interval '1 second'")
    assert await me.reap_expired(max_attempts=5) == 0
    applied, late = await me.record([Outcome(ids[0], "submitted", "submitted to OwnBackup: request id 5", ownbackup_request_id=5)])
    assert (applied, late) == (1, 0)
    other = QueueStore(engine, owner="other", actor="replica-b", lease_seconds=30)
    assert await other.reap_expired(max_attempts=5) == 1
    assert await pg.fetchval("SELECT status FROM gdpr_requests WHERE id = $1", ids[1]) == "pending"


async def test_late_answer_does_not_overwrite_new_owner(engine, pg):
    """An outcome from a process whose lease was taken over changes nothing but is noted in the history."""
    (rid,) = await insert_forget(pg, 1001)
    old = QueueStore(engine, owner="old", actor="replica-a", lease_seconds=30)
    new = QueueStore(engine, owner="new", actor="replica-b", lease_seconds=30)
    await old.claim(1)
    await pg.execute("UPDATE gdpr_requests SET lease_expires_at = now() - interval '1 second'")
    await new.reap_expired(max_attempts=5)
    await new.claim(1)
    applied, late = await old.record([Outcome(rid, "submitted", "submitted to OwnBackup: request id 77", ownbackup_request_id=77)])
    assert (applied, late) == (0, 1)
    row = await pg.fetchrow("SELECT status, lease_owner, ownbackup_request_id FROM gdpr_requests WHERE id = $1", rid)
    assert (row["status"], row["lease_owner"], row["ownbackup_request_id"]) == ("in_flight", "new", None)
    note = await pg.fetchval("SELECT detail FROM gdpr_request_log WHERE request_id = $1 ORDER BY id DESC LIMIT 1", rid)
    assert "lease had expired" in note and "request id 77" in note


async def test_renew_extends_only_own_leases(engine, pg):
    """Renewal moves the expiry of this process's claims and of no one else's."""
    await insert_forget(pg, 1001, 2)
    a = QueueStore(engine, owner="a", actor="t", lease_seconds=30)
    b = QueueStore(engine, owner="b", actor="t", lease_seconds=30)
    await a.claim(1)
    await b.claim(1)
    await pg.execute("UPDATE gdpr_requests SET lease_expires_at = now() + interval '1 second'")
    assert await a.renew_leases() == 1
    rows = {r["lease_owner"]: r["left"] for r in await pg.fetch(
        "SELECT lease_owner, extract(epoch FROM lease_expires_at - now()) AS left FROM gdpr_requests")}  # fmt: skip
    assert rows["a"] > 20 and rows["b"] < 2


async def test_release_returns_unstarted_without_counting_attempt(engine, pg):
    """Claims released at shutdown before any call go back to pending with the attempt not counted."""
    (rid,) = await insert_forget(pg, 1001)
    store = QueueStore(engine, owner="a", actor="t", lease_seconds=30)
    await store.claim(1)
    assert await store.release([rid], started=False, detail="released unstarted at shutdown") == 1
    row = await pg.fetchrow("SELECT status, attempts, lease_owner FROM gdpr_requests WHERE id = $1", rid)
    assert (row["status"], row["attempts"], row["lease_owner"]) == ("pending", 0, None)
