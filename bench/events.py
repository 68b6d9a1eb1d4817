"""Benchmark: ingest the account event history (1,000,000 events) into audit_events.

The simulator (its own process) holds N synthetic events.  In the same run, on the same
data, each in a process of its own and into an identical table (same indexes):

* the daemon: ``EventPuller`` with the daemon's client and settings, as ``events pull``
  runs it (parse, quarantine, cursor and correlation in one transaction per page);
* a bare hand-written loop: aiohttp GET page by page, then the fastest insert that still
  skips duplicates, measured both ways: ``INSERT ... SELECT FROM unnest(...) ON CONFLICT
  DO NOTHING``, and COPY into a temporary table followed by ``INSERT ... ON CONFLICT DO
  NOTHING``.  The faster of the two is the reference.

Then the daemon's peak RSS pulling 10,000 events and pulling N (each its own process).

    python bench/events.py [--events 1000000] [--small 10000] [--date-format rfc1123|iso|mixed]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SIM_EMAIL, SIM_PASSWORD, postgres, simulator, with_db

PAGE = 1000
# The same columns and indexes as audit_events, none of its triggers (the bare loop is
# the minimal ingest); columns beyond the contract (the integrity chain) are left out.
BARE_TABLE = """
CREATE TABLE bare_events (LIKE audit_events INCLUDING ALL);
ALTER TABLE bare_events DROP COLUMN IF EXISTS chain_seq, DROP COLUMN IF EXISTS row_hash;
"""

UNNEST_INSERT = """
INSERT INTO bare_events (event_id, created_at, key, source, user_email, user_id, ip_address,
                         service_id, parameters, raw, ingested_at)
SELECT i, CAST(c AS timestamptz), k, s, ue, ui, ip, sv, r->'parameters', r, now()
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::integer[], $9::jsonb[]) AS t(i, c, k, s, ue, ui, ip, sv, r)
ON CONFLICT (event_id) DO NOTHING
"""
COPY_TEMP = """
CREATE TEMPORARY TABLE bare_page (event_id bigint, created_at text, key text, source text,
    user_email text, user_id text, ip_address text, service_id integer, raw text) ON COMMIT DELETE ROWS
"""
COPY_INSERT = """
INSERT INTO bare_events (event_id, created_at, key, source, user_email, user_id, ip_address,
                         service_id, parameters, raw, ingested_at)
SELECT event_id, CAST(created_at AS timestamptz), key, source, user_email, user_id, ip_address,
       service_id, CAST(raw AS jsonb)->'parameters', CAST(raw AS jsonb), now()
FROM bare_page
ON CONFLICT (event_id) DO NOTHING
"""


def _text(v: object) -> str | None:
    return None if v is None else str(v)


async def bare_loop(db_url: str, sim_url: str, method: str) -> dict[str, float]:
    """GET page by page, insert each page skipping duplicates; no checks, no cursor."""
    conn = await asyncpg.connect(db_url)
    if method == "copy":
        await conn.execute(COPY_TEMP)
    stored = 0
    insert_s = 0.0
    t0 = time.perf_counter()
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{sim_url}/api/auth/v1/login", data={"email": SIM_EMAIL, "password": SIM_PASSWORD}) as r:
            headers = {"X-SESSION-ID": (await r.json())["session_id"]}
        cursor = None
        while True:
            params = {} if cursor is None else {"from": str(cursor)}
            async with http.get(f"{sim_url}/api/v1/events", params=params, headers=headers) as r:
                page = await r.json()
            if page:
                t1 = time.perf_counter()
                rows = [(e["event_id"], e["created_at"], e.get("key"), e.get("source"), e.get("user_email"),
                         _text(e.get("user_id")), e.get("ip_address"), e.get("service_id"), json.dumps(e))
                        for e in page]  # fmt: skip
                async with conn.transaction():
                    if method == "copy":
                        await conn.copy_records_to_table("bare_page", records=rows)
                        status = await conn.execute(COPY_INSERT)
                    else:
                        status = await conn.execute(UNNEST_INSERT, *map(list, zip(*rows, strict=True)))
                stored += int(status.split()[-1])
                insert_s += time.perf_counter() - t1
                cursor = page[-1]["event_id"]
            if len(page) < PAGE:
                break
    seconds = time.perf_counter() - t0
    await conn.close()
    return {"events": stored, "seconds": seconds, "insert_seconds": insert_s,
            "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}  # fmt: skip


async def daemon_pull(db_url: str, sim_url: str) -> dict[str, float]:
    """The daemon's own pull, with the settings and client the daemon builds."""
    from gdpr_daemon import logs
    from gdpr_daemon.audit import EventPuller
    from gdpr_daemon.config import load_settings
    from gdpr_daemon.db.engine import make_engine
    from gdpr_daemon.ownbackup import OwnBackupClient
    from gdpr_daemon.runtime import client_config

    logs.configure("json", "warning", stream=sys.stderr)
    settings = load_settings(None, environ={}, database_url=db_url, ownbackup_url=sim_url,
                             ownbackup_email=SIM_EMAIL, ownbackup_password=SIM_PASSWORD)  # fmt: skip
    engine = make_engine(db_url, pool_size=2)
    t0 = time.perf_counter()
    async with OwnBackupClient(client_config(settings)) as client:
        result = await EventPuller(engine, client, account=settings.api_base_url).pull()
    seconds = time.perf_counter() - t0
    await engine.dispose()
    return {"events": result.stored, "seconds": seconds, "pages": result.pages,
            "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}  # fmt: skip


def child(kind: str, db_url: str, sim_url: str) -> dict[str, float]:
    """Run one measurement in a fresh Python process (its own peak RSS)."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, db_url, sim_url],
        check=False, capture_output=True, text=True, timeout=3600,
        env=dict(os.environ, BENCH_SIM_PASSWORD=SIM_PASSWORD),  # common.py draws a new one per process
    )  # fmt: skip
    if out.returncode:
        raise SystemExit(f"the {kind} measurement failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


@contextlib.asynccontextmanager
async def database(admin: str, revision: str) -> AsyncIterator[str]:
    """A fresh database migrated to ``revision``, dropped afterwards."""
    from gdpr_daemon.db import migrate
    from gdpr_daemon.db.engine import make_engine

    name = f"gdpr_bench_{secrets.token_hex(4)}"
    url = with_db(admin, name)
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    try:
        engine = make_engine(url, pool_size=1)
        await migrate.upgrade(engine, revision)
        await engine.dispose()
        yield url
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def prepare(admin: str, stack: contextlib.AsyncExitStack, revision: str, *, bare: bool) -> str:
    url = await stack.enter_async_context(database(admin, revision))
    if bare:
        conn = await asyncpg.connect(url)
        await conn.execute(BARE_TABLE)
        await conn.close()
    return url


async def checkpoint(url: str) -> None:
    conn = await asyncpg.connect(url)
    await conn.execute("CHECKPOINT")
    await conn.close()


def line(name: str, r: dict[str, float]) -> str:
    text = f"  {name:<24} {r['events']:>9,.0f} events in {r['seconds']:7.2f} s = {r['events'] / r['seconds']:>8,.0f} events/s"
    if "insert_seconds" in r:
        text += f" (its inserts alone: {r['events'] / r['insert_seconds']:,.0f} rows/s)"
    return text


async def main(args: argparse.Namespace) -> int:
    n, small = args.events, args.small
    fmt = ["--date-format", args.date_format]
    print(f"bench/events.py: {n:,} events ({args.date_format} dates), pages of {PAGE}, schema at revision "
          f"{args.revision}; simulator, daemon and bare loop each in a process of its own", flush=True)  # fmt: skip
    async with postgres() as admin, contextlib.AsyncExitStack() as stack:
        results: dict[str, dict[str, float]] = {}
        with simulator("--events", str(n), *fmt) as sim_url:
            for kind in ("bare-unnest", "bare-copy", "daemon"):
                url = await prepare(admin, stack, args.revision, bare=kind.startswith("bare"))
                await checkpoint(url)
                results[kind] = await asyncio.to_thread(child, kind, url, sim_url)
                print(line(kind, results[kind]), flush=True)
        with simulator("--events", str(small), *fmt) as sim_url:
            url = await prepare(admin, stack, args.revision, bare=False)
            results["daemon-small"] = await asyncio.to_thread(child, "daemon", url, sim_url)
            print(line("daemon (small history)", results["daemon-small"]), flush=True)
    rate = {k: v["events"] / v["seconds"] for k, v in results.items()}
    bare = max(rate["bare-unnest"], rate["bare-copy"])
    ratio = rate["daemon"] / bare
    big, little = results["daemon"]["rss_kb"] / 1024, results["daemon-small"]["rss_kb"] / 1024
    print(f"daemon: {rate['daemon']:,.0f} events/s; bare loop (best of unnest/COPY): {bare:,.0f} events/s; "
          f"ratio {ratio:.2f} (goal >= 0.70) {'OK' if ratio >= 0.7 else 'BELOW GOAL'}")  # fmt: skip
    growth = big / little - 1
    print(f"daemon peak RSS: {little:.1f} MiB for {results['daemon-small']['events']:,.0f} events, "
          f"{big:.1f} MiB for {results['daemon']['events']:,.0f} events: {growth:+.1%} "
          f"(goal within 20%) {'OK' if abs(growth) <= 0.2 else 'BELOW GOAL'}")  # fmt: skip
    expected = n + 1  # the daemon's own login is an event too
    if results["daemon"]["events"] < n or results["daemon"]["events"] > expected + 2:
        print(f"unexpected: the daemon stored {results['daemon']['events']:,.0f} events, expected about {expected:,}")
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        SIM_PASSWORD = os.environ["BENCH_SIM_PASSWORD"]
        _, _, kind, db, sim = sys.argv
        run = daemon_pull(db, sim) if kind == "daemon" else bare_loop(db, sim, kind.removeprefix("bare-"))
        print(json.dumps(asyncio.run(run)))
        raise SystemExit(0)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the history (default 1,000,000)")
    parser.add_argument("--small", type=int, default=10_000, help="the small history for the RSS comparison")
    parser.add_argument("--date-format", choices=("rfc1123", "iso", "mixed"), default="rfc1123",
                        help="format of created_at in the simulator (default rfc1123, the vendor's example)")  # fmt: skip
    parser.add_argument("--revision", default="head",
                        help="migrate the databases to this revision (default head), to measure what a "
                        "migration costs the ingest")  # fmt: skip
    raise SystemExit(asyncio.run(main(parser.parse_args())))
