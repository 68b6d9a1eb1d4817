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

:func:`purge` is the retention purge: personal fields of finished requests older than
``retention_days``, then the oldest history rows and events older than
``history_days`` through ``gdpr_purge_chain`` (the only path the append-only triggers let
a row leave by; it records a checkpoint).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["CHAINS", "Anchor", "Breakage", "ChainReport", "PurgeResult", "purge", "verify_chains"]

CHAINS = ("gdpr_request_log", "audit_events")
FINISHED_SQL = "('submitted', 'failed', 'rejected', 'cancelled')"


def _us(col: str) -> str:
    return f"(extract(epoch FROM {col}) * 1000000)::bigint"


def _q(col: str) -> str:
    return f"quote_nullable({col})"


# The same contents the insert triggers hash (migration 0004), row by row.
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
_CONTEXT = {"gdpr_request_log": "request_id", "audit_events": "NULL::bigint"}
_TIME = {"gdpr_request_log": "at", "audit_events": "created_at"}


def _chunk_sql(chain: str) -> str:
    return f"""
WITH c AS (
    SELECT chain_seq, {_KEY[chain]} AS row_key, {_CONTEXT[chain]} AS context, row_hash, {_BODY[chain]} AS body
    FROM {chain} WHERE chain_seq > :after ORDER BY chain_seq LIMIT :n
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

    @property
    def rows(self) -> int:
        return self.head_seq - self.base_seq

    @property
    def ok(self) -> bool:
        return self.broken is None

    def summary(self) -> str:
        if self.broken is not None:
            return f"{self.chain}: {self.broken.describe(self.chain)}"
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
        text(f"SELECT chain_seq, {_KEY[chain]}, {_CONTEXT[chain]} FROM {chain} "  # noqa: S608
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


async def _check_anchor(conn: AsyncConnection, report: ChainReport, anchor: Anchor) -> ChainReport:
    if anchor.seq <= report.base_seq:
        return report  # purged since it was recorded: nothing left to compare
    row = (await conn.execute(
        text(f"SELECT {_KEY[report.chain]}, {_CONTEXT[report.chain]}, row_hash FROM {report.chain} "  # noqa: S608
             "WHERE chain_seq = :s"), {"s": anchor.seq},
    )).first()  # fmt: skip
    if row is None:
        reason = f"the anchored row chain_seq {anchor.seq} is gone: the chain was cut back"
        return ChainReport(report.chain, report.base_seq, report.head_seq, report.head_hash,
                           Breakage(anchor.seq, 0, None, reason))  # fmt: skip
    if bytes(row[2]).hex() != anchor.hash:
        reason = (f"the hash of chain_seq {anchor.seq} differs from the anchor recorded earlier: the chain "
                  "was rewritten up to here")  # fmt: skip
        return ChainReport(report.chain, report.base_seq, report.head_seq, report.head_hash,
                           Breakage(anchor.seq, row[0], row[1], reason))  # fmt: skip
    return report


# ---- retention ------------------------------------------------------------------------

_PURGE_REQUESTS = text(f"""
WITH x AS (
    SELECT id FROM gdpr_requests
    WHERE status IN {FINISHED_SQL} AND purged_at IS NULL AND updated_at < :cutoff
    ORDER BY id LIMIT :batch
    FOR NO KEY UPDATE SKIP LOCKED
), u AS (
    UPDATE gdpr_requests r
    SET record_id_sha256 = encode(sha256(convert_to(r.record_id, 'UTF8')), 'hex'),
        record_id = 'purged',
        value_sha256 = CASE WHEN r.value IS NOT NULL THEN encode(sha256(convert_to(r.value, 'UTF8')), 'hex')
                            ELSE r.value_sha256 END,
        value = NULL, comment = NULL, purged_at = now(), updated_at = now()
    FROM x WHERE r.id = x.id AND r.purged_at IS NULL
    RETURNING r.id, r.status
), l AS (
    INSERT INTO gdpr_request_log (request_id, from_status, to_status, detail, actor)
    SELECT id, status, status, :detail, :actor FROM u
)
SELECT count(*) FROM u
""")  # noqa: S608 - FINISHED_SQL is a constant

_COUNT_REQUESTS = text(f"""
SELECT count(*) FROM gdpr_requests
WHERE status IN {FINISHED_SQL} AND purged_at IS NULL AND updated_at < :cutoff
""")  # noqa: S608


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

    def summary(self) -> str:
        verb = "would be" if self.dry_run else "were"
        return (f"{self.requests_purged} finished requests {verb} purged of personal fields, "
                f"{self.history_deleted} history rows and {self.events_deleted} account events "
                f"{verb} deleted")  # fmt: skip


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
    """The retention purge (0 days: that part is off).  Each batch is its own transaction."""
    requests = history = events = 0
    if retention_days > 0:
        when = cutoff(retention_days)
        if dry_run:
            async with engine.connect() as conn:
                requests = int((await conn.execute(_COUNT_REQUESTS, {"cutoff": when})).scalar_one())
        else:
            detail = (f"personal fields purged after the retention period of {retention_days} days: "
                      "record_id, value and comment removed, their SHA-256 digests kept")  # fmt: skip
            while True:
                async with engine.begin() as conn:
                    n = int((await conn.execute(
                        _PURGE_REQUESTS, {"cutoff": when, "batch": batch, "detail": detail, "actor": actor}
                    )).scalar_one())  # fmt: skip
                requests += n
                if n < batch:
                    break
    if history_days > 0:
        when = cutoff(history_days)
        counts = {}
        for chain in CHAINS:
            if dry_run:
                counts[chain] = await _count_prefix(engine, chain, when)
            else:
                counts[chain] = await _purge_chain(engine, chain, when, batch)
        history, events = counts["gdpr_request_log"], counts["audit_events"]
    return PurgeResult(requests, history, events, dry_run)


async def _count_prefix(engine: AsyncEngine, chain: str, when: datetime) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(_count_prefix_sql(chain)), {"cutoff": when})).scalar_one())


async def _purge_chain(engine: AsyncEngine, chain: str, when: datetime, batch: int) -> int:
    total = 0
    while True:
        async with engine.begin() as conn:
            n = int((await conn.execute(
                text("SELECT gdpr_purge_chain(:chain, :cutoff, :batch)"),
                {"chain": chain, "cutoff": when, "batch": batch},
            )).scalar_one())  # fmt: skip
        total += n
        if n < batch:
            return total
