"""Helpers of the fault tests: daemon subprocesses, and the invariants checked at the end."""

from __future__ import annotations

from collections import Counter

import asyncpg

from gdpr_daemon.simulator import Simulator
from tests.helpers import log_events, start_daemon, stop_daemon  # noqa: F401 - re-exported for the fault tests

# History sentences that say an attempt's outcome was unknown (a crash, a lost lease, a
# call cut off): only such requests may have been submitted more than once.
UNKNOWN_OUTCOME = ("outcome unknown", "lease had expired")


async def check_invariants(pg: asyncpg.Connection, sim: Simulator) -> dict[str, int]:
    """Every request finished; any request sent twice says so in its history.

    Returns counts: finished states, calls, requests sent more than once, and those with
    an outcome-unknown note (which bound the duplicates).
    """
    open_rows = await pg.fetch("SELECT id, status FROM gdpr_requests WHERE status NOT IN ('submitted', 'failed', 'rejected')")
    assert not open_rows, f"requests left unfinished: {[tuple(r) for r in open_rows[:10]]}"
    rows = await pg.fetch("SELECT id, status, service_id, record_id, ownbackup_request_id FROM gdpr_requests")
    calls = Counter((c.service_id, c.record_id) for c in sim.state.gdpr_calls)
    call_ids = {(c.service_id, c.record_id): set() for c in sim.state.gdpr_calls}
    for c in sim.state.gdpr_calls:
        call_ids[(c.service_id, c.record_id)].add(c.id)
    unknown = dict(await pg.fetch(
        "SELECT request_id, count(*) FROM gdpr_request_log WHERE " + " OR ".join(
            f"detail LIKE '%{s}%'" for s in UNKNOWN_OUTCOME) + " GROUP BY 1"))  # fmt: skip
    duplicates = 0
    for r in rows:
        sent = calls[(r["service_id"], r["record_id"])]
        if r["status"] == "submitted":
            assert sent >= 1 and r["ownbackup_request_id"] in call_ids[(r["service_id"], r["record_id"])], dict(r)
        if sent > 1:
            duplicates += 1
            assert unknown.get(r["id"], 0) >= sent - 1, (
                f"request {r['id']} went out {sent} times but its history notes {unknown.get(r['id'], 0)} "
                "unknown outcomes"
            )
    states = Counter(r["status"] for r in rows)
    return {**states, "calls": sum(calls.values()), "duplicates": duplicates, "unknown_noted": len(unknown)}


async def check_reaped(pg: asyncpg.Connection, sim: Simulator) -> dict[str, int]:
    """What the reaper said of expired claims is true: no call was made for an attempt it called never sent.

    For each note "lease of attempt N ... expired before its call was made: never sent", the
    simulator accepted no call for that request between the row "claimed for attempt N" and
    the note.  Returns counts: reaper notes saying outcome unknown, and never sent.
    """
    rows = await pg.fetch(
        "SELECT request_id, at, detail FROM gdpr_request_log "
        "WHERE detail LIKE 'claimed for attempt %' OR detail LIKE 'lease of attempt % expired%' ORDER BY id"
    )
    keys = {r["id"]: (r["service_id"], r["record_id"]) for r in await pg.fetch("SELECT id, service_id, record_id FROM gdpr_requests")}
    calls: dict[tuple[int, str], list[object]] = {}
    for c in sim.state.gdpr_calls:
        calls.setdefault((c.service_id, c.record_id), []).append(c.at)
    claimed: dict[tuple[int, int], object] = {}
    unknown = never = 0
    for r in rows:
        words = r["detail"].split()
        if r["detail"].startswith("claimed for attempt"):
            claimed[(r["request_id"], int(words[3]))] = r["at"]
            continue
        attempt = int(words[3])
        if "never sent" not in r["detail"]:
            unknown += 1
            continue
        never += 1
        since = claimed[(r["request_id"], attempt)]
        made = [at for at in calls.get(keys[r["request_id"]], []) if since <= at <= r["at"]]  # type: ignore[operator]
        assert not made, f"request {r['request_id']}: attempt {attempt} called never sent, but a call came at {made}"
    return {"reaped_unknown": unknown, "never_sent": never}


# What a history row's hash covers (migrations 0004/0005), for tests that rewrite rows as a
# superuser would and then re-link the whole chain.
LOG_BODY = (
    "concat_ws('|', r.chain_seq, r.id, r.request_id, (extract(epoch FROM r.at) * 1000000)::bigint, "
    "quote_nullable(r.from_status), quote_nullable(r.to_status), quote_nullable(r.detail), quote_nullable(r.actor))"
)


async def rehash_history(pg: asyncpg.Connection) -> None:
    """Recompute every history hash from the chain's base (a superuser with the triggers off)."""
    async with pg.transaction():
        await pg.execute("SET LOCAL session_replication_role = replica")
        await pg.execute(f"""
            DO $$ DECLARE r record; h bytea := (SELECT base_hash FROM integrity_chains WHERE chain = 'gdpr_request_log');
            BEGIN FOR r IN SELECT * FROM gdpr_request_log ORDER BY chain_seq LOOP
                h := sha256(h || convert_to({LOG_BODY}, 'UTF8'));
                UPDATE gdpr_request_log SET row_hash = h WHERE id = r.id; END LOOP; END $$""")  # fmt: skip


async def backdate_history(pg: asyncpg.Connection, request_ids: list[int], age: str) -> None:
    """Make these requests' history rows ``age`` older (the database stamps ``at`` itself), chain re-linked."""
    async with pg.transaction():
        await pg.execute("SET LOCAL session_replication_role = replica")
        await pg.execute("UPDATE gdpr_request_log SET at = at - $2::text::interval WHERE request_id = ANY($1)",
                         request_ids, age)  # fmt: skip
    await rehash_history(pg)
