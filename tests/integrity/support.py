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


async def check_starts(pg: asyncpg.Connection, sim: Simulator) -> dict[str, int]:
    """No call went out before its start was in the history, and only started attempts are ever
    called "outcome unknown" by the reaper.

    For each request, the k-th call the simulator accepted came after the k-th history row
    "attempt N: sending to OwnBackup"; each reaper note "lease of attempt N ... expired: outcome
    unknown" comes after the start of attempt N.  Returns counts: starts, reaper notes
    (outcome unknown) and take-overs of claims never sent.
    """
    rows = await pg.fetch(
        "SELECT request_id, at, detail FROM gdpr_request_log "
        "WHERE detail LIKE 'attempt %: sending to OwnBackup' OR detail LIKE 'lease of attempt % expired: outcome unknown%' "
        "   OR detail LIKE '%never sent, taken over' ORDER BY id"
    )  # fmt: skip
    keys = {r["id"]: (r["service_id"], r["record_id"]) for r in await pg.fetch("SELECT id, service_id, record_id FROM gdpr_requests")}
    calls: dict[tuple[int, str], list[object]] = {}
    for c in sim.state.gdpr_calls:
        calls.setdefault((c.service_id, c.record_id), []).append(c.at)
    starts: dict[int, list[tuple[int, object]]] = {}
    reaped = never = 0
    for r in rows:
        detail = r["detail"]
        if detail.endswith(": sending to OwnBackup"):
            starts.setdefault(r["request_id"], []).append((int(detail.split()[1].rstrip(":")), r["at"]))
        elif detail.startswith("lease of attempt"):
            reaped += 1
            attempt = int(detail.split()[3])
            assert any(n == attempt and at < r["at"] for n, at in starts.get(r["request_id"], [])), (
                f"request {r['request_id']}: attempt {attempt} called outcome unknown without having been started"
            )
        else:
            never += 1
    for rid, key in keys.items():
        made = sorted(calls.get(key, []))  # type: ignore[type-var]
        started = sorted(at for _n, at in starts.get(rid, []))  # type: ignore[type-var]
        assert len(made) <= len(started), f"request {rid}: {len(made)} calls, {len(started)} starts"
        assert all(c >= s for c, s in zip(made, started, strict=False)), f"request {rid}: a call before its start"
    return {"starts": sum(len(v) for v in starts.values()), "reaped_unknown": reaped, "never_sent": never}


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
