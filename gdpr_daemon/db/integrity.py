"""Tamper evidence and retention: verify the hash chains, purge past the retention period.

The chains (migration 0004): every row of ``gdpr_request_log`` and ``audit_events``
carries ``chain_seq`` (consecutive from the chain's base) and ``row_hash = sha256(the
previous row's row_hash || its contents)``; the base is in ``integrity_chains``.

:func:`verify_chains` checks, for every row, the one equation that links it to the row
before: its stored hash equals the sha256 of the stored hash before it and its own
contents, and its chain_seq follows on.  If every row satisfies it and the first one
links to the base, the whole chain is intact.  The equation is checked in SQL with
window functions, in chunks of ``chunk`` rows read in chain order, all in one
REPEATABLE READ, READ ONLY transaction: a consistent snapshot while the daemon keeps
writing and a purge runs, constant memory, one index scan.  The contents expressions
below are written out here again, not taken from the database's trigger functions, so
a changed trigger cannot also change what verification expects.

The events are read from the view ``audit_events_masked`` (migration 0005): personal
keys of their parameters in digest form, which is what the events' hash covers.  So an
auditor verifies without reading a record id, and events the retention purge scrubbed
still verify.  An anchor whose row the retention purge removed cannot be compared any
more: verification says so and is not OK (exit 1), unless the anchor is exactly the
head of a purge, whose hash the checkpoint kept.

:func:`purge` is the retention purge: personal fields of finished requests older than
``retention_days``, then the oldest history rows and events older than
``history_days`` through ``gdpr_purge_chain`` (the only path the append-only triggers let
a row leave by; it records a checkpoint).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["CHAINS", "Anchor", "Breakage", "ChainReport", "PurgeResult", "purge", "verify_chains"]

CHAINS = ("gdpr_request_log", "audit_events")
# Keys of event parameters whose values the database keeps only in digest form after the
# retention period, and shows auditors only so (migration 0005 holds the same list).
PERSONAL_KEYS = ("record_id", "record_ids", "value", "values", "old_value", "new_value", "comment")
PERSONAL_KEY_RE = '"(' + "|".join(PERSONAL_KEYS) + ')": '
FINISHED_SQL = "('submitted', 'failed', 'rejected', 'cancelled')"


def _us(col: str) -> str:
    return f"(extract(epoch FROM {col}) * 1000000)::bigint"


def _q(col: str) -> str:
    return f"quote_nullable({col})"


# The same contents the insert triggers hash (migrations 0004 and 0005), row by row; for
# the events, of the view that shows personal keys in the digest form the hash covers.
_BODY = {
    "gdpr_request_log": (
        f"concat_ws('|', chain_seq, id, request_id, {_us('at')}, {_q('from_status')}, {_q('to_status')}, "
        f"{_q('detail')}, {_q('actor')})"
    ),
    "audit_events": (
        f"concat_ws('|', chain_seq, event_id, {_us('created_at')}, {_q('key')}, {_q('source')}, "
        f"{_q('user_email')}, {_q('user_id')}, {_q('ip_address')}, {_q('service_id')}, "
        f"{_q('parameters::text')}, {_q('raw::text')}, {_us('ingested_at')})"
    ),
}
# How a row is named to people: its key, and for history rows the request.
_KEY = {"gdpr_request_log": "id", "audit_events": "event_id"}
_SOURCE = {"gdpr_request_log": "gdpr_request_log", "audit_events": "audit_events_masked"}
_CONTEXT = {"gdpr_request_log": "request_id", "audit_events": "NULL::bigint"}
_TIME = {"gdpr_request_log": "at", "audit_events": "created_at"}


def _chunk_sql(chain: str) -> str:
    return f"""
WITH c AS (
    SELECT chain_seq, {_KEY[chain]} AS row_key, {_CONTEXT[chain]} AS context, row_hash, {_BODY[chain]} AS body
    FROM {_SOURCE[chain]} WHERE chain_seq > :after ORDER BY chain_seq LIMIT :n
), w AS (
    SELECT chain_seq, row_key, context, row_hash,
           coalesce(lag(chain_seq) OVER o, :after) + 1 = chain_seq AS seq_ok,
           coalesce(lag(chain_seq) OVER o, :after) AS prev_seq,
           row_hash = sha256(coalesce(lag(row_hash) OVER o, :prev_hash) || convert_to(body, 'UTF8')) AS hash_ok,
           lead(chain_seq) OVER o IS NULL AS is_last
    FROM c WINDOW o AS (ORDER BY chain_seq)
)
SELECT chain_seq, row_key, context, row_hash, seq_ok, hash_ok, is_last, prev_seq FROM w
WHERE NOT (seq_ok AND hash_ok) OR is_last
ORDER BY chain_seq LIMIT 1
"""  # noqa: S608 - table names and expressions are fixed above


@dataclass(frozen=True, slots=True)
class Breakage:
    """The first row where a chain does not hold, and why, in words."""

    chain_seq: int
    row_key: int
    request_id: int | None
    reason: str

    def describe(self, chain: str) -> str:
        what = "row id" if chain == "gdpr_request_log" else "event_id"
        where = f"{what} {self.row_key} (chain_seq {self.chain_seq}"
        where += f", request {self.request_id})" if self.request_id is not None else ")"
        return f"BROKEN at {where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ChainReport:
    chain: str
    base_seq: int  # the chain starts after this row (0, or the last purged row)
    head_seq: int  # chain_seq of the newest row (base_seq when empty)
    head_hash: str  # hex; the base hash when empty
    broken: Breakage | None = None
    unchecked_anchor: str | None = None  # why an anchor given could not be compared

    @property
    def rows(self) -> int:
        return self.head_seq - self.base_seq

    @property
    def ok(self) -> bool:
        return self.broken is None and self.unchecked_anchor is None

    def summary(self) -> str:
        if self.broken is not None:
            return f"{self.chain}: {self.broken.describe(self.chain)}"
        if self.unchecked_anchor is not None:
            return f"{self.chain}: ANCHOR NOT CHECKED: {self.unchecked_anchor}"
        span = f" (chain_seq {self.base_seq + 1} to {self.head_seq})" if self.rows else ""
        purged = f", {self.base_seq} older rows purged" if self.base_seq else ""
        return (f"{self.chain}: OK, {self.rows} rows{span}{purged}; "
                f"head {self.chain}:{self.head_seq}:{self.head_hash}")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Anchor:
    """A head recorded earlier (``CHAIN:SEQ:HASH``), to detect a rewrite of the whole chain."""

    chain: str
    seq: int
    hash: str

    @classmethod
    def parse(cls, spec: str) -> Anchor:
        parts = spec.split(":")
        if len(parts) != 3 or parts[0] not in CHAINS or not parts[1].isdigit() or len(parts[2]) != 64:
            raise ValueError(f"an anchor is CHAIN:SEQ:HASH as `audit verify` prints it, not {spec!r}")
        return cls(parts[0], int(parts[1]), parts[2].lower())


async def _verify_one(conn: AsyncConnection, chain: str, chunk: int) -> ChainReport:
    base = (await conn.execute(
        text("SELECT base_seq, base_hash FROM integrity_chains WHERE chain = :c"), {"c": chain}
    )).one()  # fmt: skip
    base_seq, base_hash = int(base[0]), bytes(base[1])
    stray = (await conn.execute(
        text(f"SELECT chain_seq, {_KEY[chain]}, {_CONTEXT[chain]} FROM {_SOURCE[chain]} "  # noqa: S608
             "WHERE chain_seq <= :b ORDER BY chain_seq LIMIT 1"), {"b": base_seq},
    )).first()  # fmt: skip
    if stray is not None:
        reason = (f"it lies before the chain's base (chain_seq {base_seq}, where the retention purge "
                  "stopped), so it was added after the purge, not by the insert trigger")  # fmt: skip
        return ChainReport(chain, base_seq, base_seq, base_hash.hex(), Breakage(stray[0], stray[1], stray[2], reason))
    after, prev_hash = base_seq, base_hash
    sql = text(_chunk_sql(chain))
    while True:
        row = (await conn.execute(sql, {"after": after, "prev_hash": prev_hash, "n": chunk})).first()
        if row is None:
            return ChainReport(chain, base_seq, after, prev_hash.hex())
        seq, key, context, row_hash, seq_ok, hash_ok, is_last, prev_seq = row
        if not seq_ok:
            reason = (f"the rows with chain_seq {prev_seq + 1} to {seq - 1} are missing: deleted other than by "
                      "the retention purge")  # fmt: skip
            return ChainReport(chain, base_seq, after, prev_hash.hex(), Breakage(seq, key, context, reason))
        if not hash_ok:
            before = "the chain's base" if prev_seq == base_seq else f"chain_seq {prev_seq}"
            reason = (f"its stored hash does not match its contents and the hash of {before}: this row was "
                      f"altered, or {before} was altered and its hash recomputed")  # fmt: skip
            return ChainReport(chain, base_seq, after, prev_hash.hex(), Breakage(seq, key, context, reason))
        assert is_last
        done = seq - after < chunk
        after, prev_hash = int(seq), bytes(row_hash)
        if done:
            return ChainReport(chain, base_seq, after, prev_hash.hex())


async def verify_chains(
    engine: AsyncEngine,
    chains: Sequence[str] = CHAINS,
    *,
    anchors: Sequence[Anchor] = (),
    chunk: int = 20_000,
) -> list[ChainReport]:
    """Walk each chain; a report per chain, naming the first broken row if any."""
    reports: list[ChainReport] = []
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        async with conn.begin():
            for chain in chains:
                report = await _verify_one(conn, chain, chunk)
                for anchor in (a for a in anchors if a.chain == chain and report.ok):
                    report = await _check_anchor(conn, report, anchor)
                reports.append(report)
    return reports


_CHECKPOINT = text("""
SELECT kind, from_seq, to_seq, base_hash, at, newest_at FROM integrity_checkpoints
WHERE chain = :chain AND from_seq < :seq AND to_seq >= :seq AND kind = :kind
ORDER BY id DESC LIMIT 1
""")


def _day(at: datetime | None) -> str:
    return "an unknown day" if at is None else f"{at:%Y-%m-%d}"


async def _purged_anchor(conn: AsyncConnection, report: ChainReport, anchor: Anchor) -> ChainReport:
    """An anchor at or before the base: compare it with the purge that removed its row, if it can be."""
    cp = (await conn.execute(_CHECKPOINT, {"chain": report.chain, "seq": anchor.seq, "kind": "purge"})).first()
    if cp is not None and cp.to_seq == anchor.seq:
        if bytes(cp.base_hash).hex() == anchor.hash:
            return report
        reason = (f"the anchored row chain_seq {anchor.seq} was removed by the retention purge on {_day(cp.at)} "
                  "with a different hash than the anchor: the chain was rewritten before that purge")  # fmt: skip
        return _broken(report, Breakage(anchor.seq, 0, None, reason))
    if cp is None:
        note = (f"the anchored row chain_seq {anchor.seq} lies before the chain's base ({report.base_seq}) and no "
                "purge recorded removing it")  # fmt: skip
        return _broken(report, Breakage(anchor.seq, 0, None, note))
    newest = f", the newest of them from {_day(cp.newest_at)}" if cp.newest_at is not None else ""
    note = (f"chain_seq {anchor.seq} was removed by the retention purge on {_day(cp.at)} (rows {cp.from_seq + 1} "
            f"to {cp.to_seq}{newest}), so this anchor can no longer be compared; record the head this run prints "
            "as the new anchor")  # fmt: skip
    return ChainReport(report.chain, report.base_seq, report.head_seq, report.head_hash, unchecked_anchor=note)


def _broken(report: ChainReport, breakage: Breakage) -> ChainReport:
    return ChainReport(report.chain, report.base_seq, report.head_seq, report.head_hash, breakage)


async def _check_anchor(conn: AsyncConnection, report: ChainReport, anchor: Anchor) -> ChainReport:
    if anchor.seq <= report.base_seq:
        return await _purged_anchor(conn, report, anchor)
    row = (await conn.execute(
        text(f"SELECT {_KEY[report.chain]}, {_CONTEXT[report.chain]}, row_hash FROM {_SOURCE[report.chain]} "  # noqa: S608
             "WHERE chain_seq = :s"), {"s": anchor.seq},
    )).first()  # fmt: skip
    if row is None:
        reason = f"the anchored row chain_seq {anchor.seq} is gone: the chain was cut back"
        return ChainReport(report.chain, report.base_seq, report.head_seq, report.head_hash,
                           Breakage(anchor.seq, 0, None, reason))  # fmt: skip
    if bytes(row[2]).hex() != anchor.hash:
        reason = (f"the hash of chain_seq {anchor.seq} differs from the anchor recorded earlier: the chain "
                  "was rewritten up to here")  # fmt: skip
        rehash = (await conn.execute(_CHECKPOINT, {"chain": report.chain, "seq": anchor.seq, "kind": "rehash"})).first()
        if rehash is not None:
            reason += (f" (migration 0005 re-hashed chain_seq {rehash.from_seq + 1} to {rehash.to_seq} on "
                       f"{_day(rehash.at)}, putting personal keys of events in digest form: an anchor recorded "
                       "before then cannot be compared)")  # fmt: skip
        return ChainReport(report.chain, report.base_seq, report.head_seq, report.head_hash,
                           Breakage(anchor.seq, row[0], row[1], reason))  # fmt: skip
    return report


# ---- retention ------------------------------------------------------------------------
#
# The changes go through the database's functions (migration 0005), which apply the
# retention floors of gdpr_daemon_settings to every login that is not the schema owner:
# ``gdpr_purge_personal_fields``, ``gdpr_scrub_events`` and ``gdpr_purge_chain``.  The dry
# run counts with the same effective period (``gdpr_retention_days``).

_COUNT_REQUESTS = text(f"""
SELECT count(*) FROM gdpr_requests, LATERAL (SELECT gdpr_retention_days('retention_days', :days) AS d) e
WHERE e.d > 0 AND status IN {FINISHED_SQL} AND purged_at IS NULL AND updated_at < now() - make_interval(days => e.d)
""")  # noqa: S608 - FINISHED_SQL is a constant

_COUNT_SCRUB = text(f"""
SELECT count(*) FROM audit_events, LATERAL (SELECT gdpr_retention_days('retention_days', :days) AS d) e
WHERE e.d > 0 AND chain_seq > (SELECT scrubbed_seq FROM integrity_chains WHERE chain = 'audit_events')
  AND ingested_at < now() - make_interval(days => e.d)
  AND (raw::text ~ '{PERSONAL_KEY_RE}' OR parameters::text ~ '{PERSONAL_KEY_RE}')
""")  # noqa: S608 - a constant pattern

_HISTORY_CUTOFF = text("""
SELECT CASE WHEN d > 0 THEN least(CAST(:cutoff AS timestamptz), now() - make_interval(days => d)) END
FROM (SELECT CASE WHEN gdpr_acts_as_owner(session_user) THEN 1
                  ELSE gdpr_retention_days('retention_history_days', 1) END AS d) x
""")

assert re.fullmatch(r'[\w"(|): ]+', PERSONAL_KEY_RE)


def _count_prefix_sql(chain: str) -> str:
    return f"""
SELECT count(*) FROM {chain}
WHERE chain_seq > (SELECT base_seq FROM integrity_chains WHERE chain = '{chain}')
  AND chain_seq < coalesce((SELECT min(chain_seq) FROM {chain} WHERE {_TIME[chain]} >= :cutoff),
                           9223372036854775807)
"""  # noqa: S608 - fixed names


@dataclass(frozen=True, slots=True)
class PurgeResult:
    requests_purged: int = 0  # requests whose personal fields were removed
    history_deleted: int = 0  # gdpr_request_log rows deleted
    events_deleted: int = 0  # audit_events rows deleted
    dry_run: bool = False
    events_scrubbed: int = 0  # audit_events whose personal keys were put in digest form

    def summary(self) -> str:
        verb = "would be" if self.dry_run else "were"
        return (f"{self.requests_purged} finished requests {verb} purged of personal fields, "
                f"{self.history_deleted} history rows and {self.events_deleted} account events "
                f"{verb} deleted, {self.events_scrubbed} account events {verb} left with record ids and values "
                "in digest form only")  # fmt: skip


def cutoff(days: int, now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)) - timedelta(days=days)


async def purge(
    engine: AsyncEngine,
    *,
    retention_days: int,
    history_days: int,
    actor: str,
    dry_run: bool = False,
    batch: int = 5000,
) -> PurgeResult:
    """The retention purge (0 days: that part is off).  Each batch is its own transaction.

    For a login that is not the schema owner the database uses the longer of these periods
    and its retention floors (gdpr_daemon_settings).
    """
    requests = history = events = scrubbed = 0
    if retention_days > 0:
        if dry_run:
            async with engine.connect() as conn:
                requests = int((await conn.execute(_COUNT_REQUESTS, {"days": retention_days})).scalar_one())
                scrubbed = int((await conn.execute(_COUNT_SCRUB, {"days": retention_days})).scalar_one())
        else:
            requests = await _loop(engine, "SELECT gdpr_purge_personal_fields(:days, :batch, :actor)",
                                   {"days": retention_days, "batch": batch, "actor": actor})  # fmt: skip
            scrubbed = await _scrub(engine, retention_days, batch)
    if history_days > 0:
        when = cutoff(history_days)
        counts = {}
        for chain in CHAINS:
            if dry_run:
                counts[chain] = await _count_prefix(engine, chain, when)
            else:
                counts[chain] = await _loop(engine, "SELECT gdpr_purge_chain(:chain, :cutoff, :batch)",
                                            {"chain": chain, "cutoff": when, "batch": batch})  # fmt: skip
        history, events = counts["gdpr_request_log"], counts["audit_events"]
    return PurgeResult(requests, history, events, dry_run, scrubbed)


async def _count_prefix(engine: AsyncEngine, chain: str, when: datetime) -> int:
    async with engine.connect() as conn:
        effective = (await conn.execute(_HISTORY_CUTOFF, {"cutoff": when})).scalar_one()
        if effective is None:
            return 0
        return int((await conn.execute(text(_count_prefix_sql(chain)), {"cutoff": effective})).scalar_one())


async def _loop(engine: AsyncEngine, sql: str, params: dict[str, object]) -> int:
    """Call a purge function, one transaction a batch, until a batch comes back short."""
    total = 0
    while True:
        async with engine.begin() as conn:
            n = int((await conn.execute(text(sql), params)).scalar_one())
        total += n
        if n < int(params["batch"]):  # type: ignore[call-overload]
            return total


async def _scrub(engine: AsyncEngine, days: int, batch: int) -> int:
    total = 0
    while True:
        async with engine.begin() as conn:
            looked, scrubbed = (await conn.execute(
                text("SELECT looked, scrubbed FROM gdpr_scrub_events(:days, :batch)"), {"days": days, "batch": batch}
            )).one()  # fmt: skip
        total += int(scrubbed)
        if looked < batch:
            return total
