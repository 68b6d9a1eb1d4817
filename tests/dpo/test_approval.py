"""Four eyes: requests wait for a second person when require_approval is on, and only then."""

from __future__ import annotations

import asyncpg
import pytest

from gdpr_daemon.db.intake_settings import read_require_approval, write_intake_settings
from gdpr_daemon.db.queue import QueueStore
from gdpr_daemon.db.requests import RequestError, approve_requests, cancel_request

INSERT = (
    "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, requested_by) "
    "VALUES ('forget', 1001, 'Contact', $1, $2) RETURNING id, status"
)


async def four_eyes(engine, on: bool = True) -> None:
    await write_intake_settings(engine, require_approval=on, holidays=None, authoritative=True)


async def test_off_nothing_changes(engine, pg):
    """With four eyes off (the default), a new request is pending at once."""
    row = await pg.fetchrow(INSERT, "003A", "alice")
    assert row["status"] == "pending"
    assert not await read_require_approval(engine)


async def test_approved_by_another_person(engine, pg):
    """A request waits in awaiting_approval, is not claimed, and a second person's approval makes it pending."""
    await four_eyes(engine)
    rid, status = await pg.fetchrow(INSERT, "003A", "alice")
    assert status == "awaiting_approval"
    assert await QueueStore(engine, owner="t", actor="t", lease_seconds=30).claim(10, []) == []
    assert await approve_requests(engine, [rid], actor="bob") == [rid]
    row = await pg.fetchrow("SELECT status, requested_by, approved_by FROM gdpr_requests WHERE id = $1", rid)
    assert dict(row) == {"status": "pending", "requested_by": "alice", "approved_by": "bob"}
    log = await pg.fetch("SELECT to_status, actor, detail FROM gdpr_request_log WHERE request_id = $1 ORDER BY id", rid)
    assert [(r["to_status"], r["actor"]) for r in log] == [("awaiting_approval", "alice"), ("pending", "bob")]
    assert "approved by bob" in log[1]["detail"] and "entered by alice" in log[1]["detail"]


@pytest.mark.parametrize("approver", ["alice", " Alice "])
async def test_own_request_refused(engine, pg, approver):
    """Approving one's own request is refused (names compared without case and outer spaces); it keeps waiting."""
    await four_eyes(engine)
    rid, _ = await pg.fetchrow(INSERT, "003A", "alice")
    with pytest.raises(RequestError, match=f"request {rid} was entered by alice; four eyes need a different person"):
        await approve_requests(engine, [rid], actor=approver)
    assert await pg.fetchval("SELECT status FROM gdpr_requests WHERE id = $1", rid) == "awaiting_approval"
    assert await pg.fetchval("SELECT count(*) FROM gdpr_request_log WHERE request_id = $1", rid) == 1


async def test_batch_is_all_or_nothing(engine, pg):
    """If one request of a batch cannot be approved, none is, and every reason is given."""
    await four_eyes(engine)
    a, _ = await pg.fetchrow(INSERT, "003A", "alice")
    b, _ = await pg.fetchrow(INSERT, "003B", "bob")
    with pytest.raises(RequestError) as err:
        await approve_requests(engine, [a, b, 999], actor="bob")
    assert str(err.value).splitlines() == [
        f"request {b} was entered by bob; four eyes need a different person to approve it.",
        "there is no request 999.",
        "Nothing was approved.",
    ]
    assert await pg.fetchval("SELECT count(*) FROM gdpr_requests WHERE status = 'awaiting_approval'") == 2


async def test_approve_twice_and_not_awaiting_refused(engine, pg):
    """A request approved already, or never awaiting approval, cannot be approved."""
    plain, _ = await pg.fetchrow(INSERT, "003A", "alice")
    await four_eyes(engine)
    rid, _ = await pg.fetchrow(INSERT, "003B", "alice")
    await approve_requests(engine, [rid], actor="bob")
    with pytest.raises(RequestError, match="approved already, by bob"):
        await approve_requests(engine, [rid], actor="carol")
    with pytest.raises(RequestError, match=f"request {plain} is pending, not awaiting approval"):
        await approve_requests(engine, [plain], actor="carol")


async def test_awaiting_request_can_be_cancelled(engine, pg):
    """A request awaiting approval can be cancelled by anyone, without an approver."""
    await four_eyes(engine)
    rid, _ = await pg.fetchrow(INSERT, "003A", "alice")
    await cancel_request(engine, rid, actor="alice", reason="entered twice")
    assert await pg.fetchval("SELECT status FROM gdpr_requests WHERE id = $1", rid) == "cancelled"


async def test_database_guards_four_eyes(engine, pg):
    """SQL cannot skip the approval, pre-approve at insert, or record the requester as approver."""
    await four_eyes(engine)
    rid = await pg.fetchval(
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, requested_by, approved_by) "
        "VALUES ('forget', 1001, 'Contact', '003A', 'alice', 'bob') RETURNING id"
    )
    assert tuple(await pg.fetchrow("SELECT status, approved_by FROM gdpr_requests WHERE id = $1", rid)) == (
        "awaiting_approval", None,
    )  # fmt: skip
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await pg.execute("UPDATE gdpr_requests SET status = 'pending' WHERE id = $1", rid)
    assert err.value.constraint_name == "approval_needs_approver"
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await pg.execute("UPDATE gdpr_requests SET status = 'pending', approved_by = 'ALICE' WHERE id = $1", rid)
    assert err.value.constraint_name == "approver_differs_from_requester"


async def test_command_never_switches_four_eyes_off(engine):
    """A DPO command's configuration can switch four eyes on but not off; the daemon's can do both."""
    await write_intake_settings(engine, require_approval=True, holidays=None, authoritative=False)
    await write_intake_settings(engine, require_approval=False, holidays=None, authoritative=False)
    assert await read_require_approval(engine)
    written = await write_intake_settings(engine, require_approval=False, holidays=None, authoritative=True)
    assert written.require_approval_changed and not await read_require_approval(engine)
