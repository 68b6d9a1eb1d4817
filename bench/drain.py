"""Benchmark: drain 20,000 pending requests over 20 services (simulator, no latency).

Prints the daemon's requests per second and, in the same run on the same data, a bare
hand-written loop (claim a batch with SKIP LOCKED, POST each with aiohttp at the same
concurrency, write the results back in one statement per batch), and their ratio.

"The daemon" is `gdpr-daemon run` as deployed (scheduler, LISTEN, leases, history,
logging, metrics), timed from its start until the last outcome is committed: the same
job as the bare loop.  `run --once` is measured too, once, on the same data: it also
pulls the 20,000 confirming events of the account history after submitting, which the
bare loop does not do, so its rate is printed beside the ratio rather than in it.
Then the pickup latency (INSERT to POST received) of single inserts on an idle daemon.

    python bench/drain.py [--requests 20000] [--services 20] [--concurrency 32] [--pickups 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    SIM_EMAIL,
    SIM_PASSWORD,
    fresh_database,
    percentile,
    postgres,
    sim_control,
    simulator,
)  # fmt: skip

from gdpr_daemon import logging as glog
from gdpr_daemon.config import load_settings
from gdpr_daemon.daemon import Daemon, OnceReport


async def fill(url: str, n: int, services: int) -> None:
    conn = await asyncpg.connect(url)
    await conn.execute(
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id) "
        "SELECT 'forget', 1001 + (g % $2), 'Contact', 'rec' || g FROM generate_series(1, $1) g",
        n, services,
    )  # fmt: skip
    await conn.execute("VACUUM ANALYZE gdpr_requests")
    await conn.close()


def settings(db_url: str, sim_url: str, concurrency: int, **extra: object):  # type: ignore[no-untyped-def]
    return load_settings(
        None, environ={}, database_url=db_url, ownbackup_url=sim_url, ownbackup_email=SIM_EMAIL,
        ownbackup_password=SIM_PASSWORD, queue_concurrency=concurrency,
        queue_per_service_concurrency=concurrency, log_format="json", log_level="info", **extra,
    )  # fmt: skip


async def run_daemon(db_url: str, sim_url: str, n: int, concurrency: int) -> float:
    """`gdpr-daemon run`: from its start until the n-th outcome is committed."""
    daemon = Daemon(settings(db_url, sim_url, concurrency))
    stop = asyncio.Event()
    written = daemon.worker.recorder.written
    t0 = time.perf_counter()
    task = asyncio.create_task(daemon.run(stop))
    deadline = time.monotonic() + 600
    # Polled (a wake-up every 2 ms, charged to the daemon) so that nothing is added to the daemon for the bench.
    while written["submitted"] < n and not task.done() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.002)
    elapsed = time.perf_counter() - t0
    stop.set()
    assert await task == 0
    assert written["submitted"] == n and sum(written.values()) == n, written
    return n / elapsed


async def run_once(db_url: str, sim_url: str, n: int, concurrency: int) -> OnceReport:
    report = await Daemon(settings(db_url, sim_url, concurrency)).run_once()
    assert report.submitted == n and report.events["stored"] >= n, report
    return report


async def run_bare(db_url: str, sim_url: str, n: int, concurrency: int, batch: int) -> float:
    conn = await asyncpg.connect(db_url)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.post(sim_url + "/api/auth/v1/login", data={"email": SIM_EMAIL, "password": SIM_PASSWORD}) as r:
            sid = (await r.json())["session_id"]
        headers = {"X-SESSION-ID": sid}
        sem = asyncio.Semaphore(concurrency)

        async def post(row: asyncpg.Record) -> int:
            async with sem, http.post(
                f"{sim_url}/api/v1/services/{row['service_id']}/gdpr/forget",
                data={"record_id": row["record_id"], "table_name": row["table_name"]}, headers=headers,
            ) as r:  # fmt: skip
                return int((await r.json())["id"])

        t0 = time.perf_counter()
        done = 0
        while True:
            rows = await conn.fetch(
                "UPDATE gdpr_requests SET status = 'in_flight' WHERE id IN (SELECT id FROM gdpr_requests "
                "WHERE status = 'pending' ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) "
                "RETURNING id, service_id, record_id, table_name", batch,
            )  # fmt: skip
            if not rows:
                break
            ob_ids = await asyncio.gather(*(post(r) for r in rows))
            await conn.execute(
                "UPDATE gdpr_requests r SET status = 'submitted', ownbackup_request_id = u.ob, submitted_at = now() "
                "FROM unnest($1::bigint[], $2::bigint[]) AS u(id, ob) WHERE r.id = u.id",
                [r["id"] for r in rows], ob_ids,
            )  # fmt: skip
            done += len(rows)
        elapsed = time.perf_counter() - t0
    await conn.close()
    assert done == n
    return n / elapsed


async def pickup_latency(db_url: str, sim_url: str, count: int) -> list[float]:
    daemon = Daemon(settings(db_url, sim_url, 32, queue_poll_interval_seconds=60))
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    await asyncio.wait_for(daemon.ready.wait(), 30)
    await sim_control(sim_url, "POST", "/_simulator/reset")
    conn = await asyncpg.connect(db_url)
    inserted: dict[str, float] = {}
    for i in range(count):
        rec = f"pickup{i}"
        inserted[rec] = time.time()
        await conn.execute(
            "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id) VALUES ('forget', 1001, 'Contact', $1)",
            rec,
        )
        await asyncio.sleep(0.02)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if await conn.fetchval("SELECT count(*) FROM gdpr_requests WHERE status = 'submitted'") == count:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await task
    await conn.close()
    calls = await sim_control(sim_url, "GET", "/_simulator/calls")
    assert isinstance(calls, list)
    lat = []
    for c in calls:
        at = datetime.fromisoformat(c["at"].replace("Z", "+00:00")).timestamp()
        lat.append((at - inserted[c["record_id"]]) * 1000)
    return lat


async def main(args: argparse.Namespace) -> None:
    log_path = Path(tempfile.mkstemp(prefix="gdpr-bench-", suffix=".log")[1])
    glog.configure("json", "info", stream=log_path.open("a"))
    print(f"bench/drain.py: {args.requests} requests over {args.services} services, concurrency {args.concurrency}")
    async with postgres() as admin:
        with simulator("--services", str(args.services)) as sim_url:
            results: dict[str, list[float]] = {"daemon": [], "bare": []}
            for rnd in range(args.rounds):
                for name in ("bare", "daemon") if rnd % 2 == 0 else ("daemon", "bare"):
                    async with fresh_database(admin) as db:
                        await fill(db, args.requests, args.services)
                        await sim_control(sim_url, "POST", "/_simulator/reset")
                        cpu = time.process_time()
                        if name == "daemon":
                            rate = await run_daemon(db, sim_url, args.requests, args.concurrency)
                        else:
                            rate = await run_bare(db, sim_url, args.requests, args.concurrency, args.bare_batch)
                        cpu_us = (time.process_time() - cpu) / args.requests * 1e6
                        results[name].append(rate)
                        # CPU of this process (daemon or bare loop; not the simulator's, not Postgres'):
                        # steadier than the rate on a shared machine, so it shows where a change helps.
                        print(f"  round {rnd + 1} {name:<6} {rate:8.0f} requests/s   {cpu_us:4.0f} us CPU a request")
            d, b = max(results["daemon"]), max(results["bare"])
            print(f"daemon (gdpr-daemon run): {d:.0f} requests/s (best of {args.rounds})")
            print(f"bare loop: {b:.0f} requests/s (best of {args.rounds}; batch {args.bare_batch}, no history, no leases)")
            print(f"ratio daemon/bare, best against best: {d / b:.2f} (goal >= 0.80)")
            pairs = [x / y for x, y in zip(results["daemon"], results["bare"], strict=True)]
            print(f"ratio daemon/bare per round: {', '.join(f'{r:.2f}' for r in pairs)}; "
                  f"median {statistics.median(pairs):.2f}")  # fmt: skip
            async with fresh_database(admin) as db:
                await fill(db, args.requests, args.services)
                await sim_control(sim_url, "POST", "/_simulator/reset")
                once = await run_once(db, sim_url, args.requests, args.concurrency)
            total = once.submit_seconds + once.events_seconds
            print(f"run --once: {args.requests / total:.0f} requests/s in all ({total:.1f} s): submitting "
                  f"{once.submit_seconds:.1f} s ({args.requests / once.submit_seconds:.0f} requests/s), then pulling "
                  f"{once.events['stored']} confirming events {once.events_seconds:.1f} s")  # fmt: skip
            async with fresh_database(admin) as db:
                lat = await pickup_latency(db, sim_url, args.pickups)
            print(f"pickup latency (INSERT -> POST received), {len(lat)} single inserts on an idle daemon: "
                  f"p50 {percentile(lat, 50):.1f} ms, p99 {percentile(lat, 99):.1f} ms (goal p50 < 50 ms)")  # fmt: skip
    log_path.unlink()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--services", type=int, default=20)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--bare-batch", type=int, default=100)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--pickups", type=int, default=200)
    asyncio.run(main(p.parse_args()))
