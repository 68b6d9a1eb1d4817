"""Benchmark: drain 20,000 pending requests over 20 services.

Prints the daemon's requests per second and, in the same run on the same data, a bare
hand-written loop (claim a batch with SKIP LOCKED, POST each with aiohttp at the same
concurrency, write the results back in one statement per batch), their ratio, and the CPU
each spent per 1,000 requests split three ways: its own process, the API server, Postgres.

The API is, by default, ``bench/minimal_api.py``: a server that answers the calls a drain
makes from precomputed bytes and costs far less CPU per call than either client, so it is
not what sets the pace.  ``--api simulator`` measures against the stateful simulator
instead (the realism run: there the simulator is the bottleneck for both).

Both run in this process with the garbage collector tuned as `gdpr-daemon run` tunes it
(``commands/run.tune_gc``), so the bare loop has every advantage the daemon has.
"The daemon" is `gdpr-daemon run` as deployed (scheduler, LISTEN, leases, history with its
hash chain, logging, metrics), timed from its start until the last outcome is committed:
the same job as the bare loop.  Daemon and bare loop alternate order round by round.
``run --once`` is measured once on the same data (``--api simulator`` only: it pulls the
confirming events too).  Then the pickup latency (INSERT to POST received) of single inserts
on an idle daemon, and the replica scaling: ``--replicas N`` processes of `gdpr-daemon run`
against an API slowed by ``--scale-latency-ms``, against one process on the same API (with
the idle RSS of those processes, started and listening on an empty queue).

    python bench/drain.py [--api minimal|simulator] [--requests 20000] [--services 20]
                          [--concurrency 32] [--rounds 2] [--pickups 200]
                          [--replicas 2] [--scale-latency-ms 40] [--scale-requests 10000]
                          [--chain-cost] [--split] [--log-level info|warning]

Where the daemon's time goes, measured in the same run: ``--chain-cost`` adds a third system
to the alternation, the daemon on a database whose history chain trigger only numbers and
timestamps the rows (no lock, no lookup, no hash, not pinned; the benchmark's throwaway
database only, never a way to run).  ``--split`` splits the daemon's own CPU in two: its
OwnBackup client against bare aiohttp (the same calls at the same concurrency, no
database), and the queue around the client (claims, start marks, outcomes with their
history, logging, tasks) with the API answered in the process.  ``--log-level warning``
drops the daemon's line a request, to show what it costs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    ROOT,
    SIM_EMAIL,
    SIM_PASSWORD,
    CpuMeter,
    api_process,
    fresh_database,
    minimal_api,
    percentile,
    postgres,
    sim_control,
)  # fmt: skip

from gdpr_daemon import logs
from gdpr_daemon.commands.run import tune_gc
from gdpr_daemon.config import Settings, load_settings
from gdpr_daemon.daemon import Daemon, OnceReport
from gdpr_daemon.ownbackup.models import GdprSubmission
from gdpr_daemon.runtime import open_runtime


async def fill(url: str, n: int, services: int, *, analyze: bool = True) -> None:
    conn = await asyncpg.connect(url)
    await conn.execute(
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id) "
        "SELECT 'forget', 1001 + (g % $2), 'Contact', 'rec' || g FROM generate_series(1, $1) g",
        n, services,
    )  # fmt: skip
    if analyze:
        await conn.execute("VACUUM ANALYZE gdpr_requests")
    await conn.close()


def settings(db_url: str, sim_url: str, concurrency: int, **extra: object):  # type: ignore[no-untyped-def]
    return load_settings(
        None, environ={}, database_url=db_url, ownbackup_url=sim_url, ownbackup_email=SIM_EMAIL,
        ownbackup_password=SIM_PASSWORD, queue_concurrency=concurrency,
        queue_per_service_concurrency=concurrency, log_format="json", log_level="info", **extra,
    )  # fmt: skip


Split = tuple[float, float, float]


@contextlib.asynccontextmanager
async def daemon_on(s: Settings) -> AsyncIterator[Daemon]:
    """The daemon as `gdpr-daemon run` opens it: its pool, the API client open."""
    async with open_runtime(s, api=True, pool_size=s.database_pool_size) as rt:
        yield Daemon(rt)


def database_name(url: str) -> str:
    from sqlalchemy.engine import make_url

    return str(make_url(url).database)


async def run_daemon(db_url: str, sim_url: str, n: int, concurrency: int, meter: CpuMeter) -> tuple[float, Split]:
    """`gdpr-daemon run`: from its start until the n-th outcome is committed."""
    async with daemon_on(settings(db_url, sim_url, concurrency)) as daemon:
        return await _time_daemon(daemon, db_url, n, meter)


async def _time_daemon(daemon: Daemon, db_url: str, n: int, meter: CpuMeter) -> tuple[float, Split]:
    stop = asyncio.Event()
    written = daemon.worker.recorder.written
    meter.start(database_name(db_url))
    t0 = time.perf_counter()
    task = asyncio.create_task(daemon.run(stop))
    deadline = time.monotonic() + 600
    # Polled (a wake-up every 2 ms, charged to the daemon) so that nothing is added to the daemon for the bench.
    while written["submitted"] < n and not task.done() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.002)
    elapsed = time.perf_counter() - t0
    cpu = meter.split()
    stop.set()
    assert await task == 0
    assert written["submitted"] == n and sum(written.values()) == n, written
    return n / elapsed, cpu


# For --chain-cost only, in the benchmark's own database: the chain trigger reduced to
# what a history row needs to be stored (a number above every existing one, the time).
UNCHAINED = r"""
CREATE SEQUENCE bench_unchained_seq START 1000000000;
CREATE OR REPLACE FUNCTION gdpr_request_log_chain() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.at := clock_timestamp();
    NEW.chain_seq := nextval('bench_unchained_seq');
    NEW.row_hash := '\x00'::bytea;
    RETURN NEW;
END $$;
"""


async def unchain(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(UNCHAINED)
    finally:
        await conn.close()


class InProcessApi:
    """For --split only: the client's GDPR calls answered in the process, each after one
    turn of the event loop (a real call yields too), so what is left is the queue's own work."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    async def gdpr_forget(self, service_id: int, **_fields: object) -> GdprSubmission:
        await asyncio.sleep(0)
        return GdprSubmission(id=next(self._ids))

    gdpr_rectify = gdpr_forget


async def run_queue_only(db_url: str, sim_url: str, n: int, concurrency: int, meter: CpuMeter) -> tuple[float, Split]:
    async with daemon_on(settings(db_url, sim_url, concurrency)) as daemon:
        daemon.worker.api = InProcessApi()
        return await _time_daemon(daemon, db_url, n, meter)


async def client_cpu(sim_url: str, n: int, concurrency: int) -> tuple[float, float]:
    """Own CPU per call, µs: (the daemon's OwnBackup client, bare aiohttp), the same n forget
    calls at the same concurrency against the same API, no database."""
    sem = asyncio.Semaphore(concurrency)
    async with open_runtime(settings("postgresql://unused@127.0.0.1/unused", sim_url, concurrency), api=True) as rt:
        client = rt.client

        async def ours(i: int) -> int:
            async with sem:
                return (await client.gdpr_forget(1001 + i % 20, record_id=f"rec{i}", table_name="Contact")).id

        t0 = time.process_time()
        await asyncio.gather(*(ours(i) for i in range(n)))
        own = time.process_time() - t0
    async with bare_api(sim_url, concurrency) as forget:
        t0 = time.process_time()
        await asyncio.gather(*(forget(1001 + i % 20, f"rec{i}", "Contact") for i in range(n)))
        plain = time.process_time() - t0
    return own / n * 1e6, plain / n * 1e6


async def split(admin: str, sim_url: str, args: argparse.Namespace, meter: CpuMeter) -> None:
    clients: list[tuple[float, float]] = []
    queue: list[float] = []
    for _ in range(args.rounds):
        await reset_api(sim_url, args.api)
        clients.append(await client_cpu(sim_url, args.requests, args.concurrency))
        async with fresh_database(admin) as db:
            await fill(db, args.requests, args.services)
            _rate, cpu = await run_queue_only(db, sim_url, args.requests, args.concurrency, meter)
            queue.append(cpu[0] / args.requests * 1e6)
    ours, plain = (statistics.median(c[i] for c in clients) for i in range(2))
    print(f"split of the daemon's own CPU (--split, median of {args.rounds}): its OwnBackup client {ours:.0f} µs a call "
          f"against bare aiohttp's {plain:.0f} µs (the same calls, concurrency {args.concurrency}); the queue around it, "
          f"with the API answered in the process, {statistics.median(queue):.0f} µs a request")  # fmt: skip


async def run_once(db_url: str, sim_url: str, n: int, concurrency: int) -> OnceReport:
    async with daemon_on(settings(db_url, sim_url, concurrency)) as daemon:
        report = await daemon.run_once()
    assert report.submitted == n and report.events["stored"] >= n, report
    return report


@contextlib.asynccontextmanager
async def bare_api(sim_url: str, concurrency: int) -> AsyncIterator[Callable[[int, str, str], Awaitable[int]]]:
    """The bare loop's HTTP side: one aiohttp session, logged in, whose forget(service_id,
    record_id, table_name) posts at most ``concurrency`` calls at once and answers the id."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        async with http.post(sim_url + "/api/auth/v1/login", data={"email": SIM_EMAIL, "password": SIM_PASSWORD}) as r:
            headers = {"X-SESSION-ID": (await r.json())["session_id"]}
        sem = asyncio.Semaphore(concurrency)

        async def forget(service_id: int, record_id: str, table_name: str) -> int:
            async with sem, http.post(f"{sim_url}/api/v1/services/{service_id}/gdpr/forget",
                                      data={"record_id": record_id, "table_name": table_name}, headers=headers) as r:  # fmt: skip
                return int((await r.json())["id"])

        yield forget


async def run_bare(db_url: str, sim_url: str, n: int, concurrency: int, batch: int, meter: CpuMeter) -> tuple[float, Split]:
    meter.start(database_name(db_url))
    conn = await asyncpg.connect(db_url)
    async with bare_api(sim_url, concurrency) as forget:
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
            ob_ids = await asyncio.gather(*(forget(r["service_id"], r["record_id"], r["table_name"]) for r in rows))
            await conn.execute(
                "UPDATE gdpr_requests r SET status = 'submitted', ownbackup_request_id = u.ob, submitted_at = now() "
                "FROM unnest($1::bigint[], $2::bigint[]) AS u(id, ob) WHERE r.id = u.id",
                [r["id"] for r in rows], ob_ids,
            )  # fmt: skip
            done += len(rows)
        elapsed = time.perf_counter() - t0
        cpu = meter.split()
    await conn.close()
    assert done == n
    return n / elapsed, cpu


async def pickup_latency(db_url: str, sim_url: str, count: int, api: str) -> list[float]:
    async with daemon_on(settings(db_url, sim_url, 32, queue_poll_interval_seconds=60)) as daemon:
        return await _pickups(daemon, db_url, sim_url, count, api)


async def _pickups(daemon: Daemon, db_url: str, sim_url: str, count: int, api: str) -> list[float]:
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    await asyncio.wait_for(daemon.ready.wait(), 30)
    await reset_api(sim_url, api)
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
    return [(at - inserted[record]) * 1000 for record, at in await received_calls(sim_url, api)]


async def reset_api(url: str, api: str) -> None:
    await sim_control(url, "POST", "/_simulator/reset" if api == "simulator" else "/_bench/reset")


async def received_calls(url: str, api: str) -> list[tuple[str, float]]:
    """(record_id, unix time received) of each GDPR call the API server took."""
    if api == "minimal":
        calls = await sim_control(url, "GET", "/_bench/calls")
        assert isinstance(calls, list)
        return [(c[0], float(c[1])) for c in calls]
    calls = await sim_control(url, "GET", "/_simulator/calls")
    assert isinstance(calls, list)
    return [(c["record_id"], datetime.fromisoformat(c["at"].replace("Z", "+00:00")).timestamp()) for c in calls]


async def scaling(admin: str, args: argparse.Namespace) -> None:
    """One `gdpr-daemon run` process against ``args.replicas``, on an API slowed by scale_latency_ms."""
    n = args.scale_requests
    print(f"replica scaling: {n} requests, API latency {args.scale_latency_ms:.0f} ms a call, "
          f"concurrency {args.concurrency} a process")  # fmt: skip
    rates: dict[int, float] = {}
    idle: list[float] = []
    with minimal_api("--services", str(args.services), "--latency-ms", str(args.scale_latency_ms)) as (url, _pid):
        for replicas in (1, args.replicas):
            async with fresh_database(admin) as db:
                rates[replicas] = await drain_with_processes(db, url, n, replicas, args.concurrency, idle)
            print(f"  {replicas} process(es): {rates[replicas]:8.0f} requests/s")
    print(f"idle RSS of `gdpr-daemon run` (started, listening, queue empty): {max(idle):.1f} MiB at most of "
          f"{len(idle)} processes (goal < 90 MiB)")
    ideal = min(args.replicas * args.concurrency, args.services * 8) / (args.scale_latency_ms / 1000)
    print(f"scaling {args.replicas} processes / 1: {rates[args.replicas] / rates[1]:.2f} "
          f"(goal >= {0.9 * args.replicas:.1f}; the API's latency allows {ideal:.0f} requests/s at this concurrency)")


def rss_mib(pid: int) -> float:
    """Resident memory of a process (Linux: VmRSS in /proc/PID/status), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def drain_with_processes(db_url: str, api_url: str, n: int, replicas: int, concurrency: int,
                               idle: list[float]) -> float:  # fmt: skip
    """Start ``replicas`` `gdpr-daemon run` processes on an empty queue, note their idle RSS in
    ``idle``, insert n requests in one statement (NOTIFY wakes them), and time from its commit
    to the last outcome committed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GDPR_DAEMON_")}
    env.update(
        GDPR_DAEMON_DATABASE_URL=db_url, GDPR_DAEMON_OWNBACKUP_URL=api_url, GDPR_DAEMON_OWNBACKUP_EMAIL=SIM_EMAIL,
        GDPR_DAEMON_OWNBACKUP_PASSWORD=SIM_PASSWORD, GDPR_DAEMON_QUEUE_CONCURRENCY=str(concurrency),
        GDPR_DAEMON_LOG_LEVEL="warning", GDPR_DAEMON_HEALTH_ADDRESS="",
    )  # fmt: skip
    procs = []
    conn = await asyncpg.connect(db_url)
    try:
        for i in range(replicas):
            procs.append(subprocess.Popen(  # noqa: ASYNC220 (started once, before the clock)
                [sys.executable, "-m", "gdpr_daemon", "run"], env=dict(env, GDPR_DAEMON_INSTANCE_NAME=f"bench-{i}"),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
            ))  # fmt: skip
        deadline = time.monotonic() + 60
        while await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                  "AND query ILIKE 'LISTEN%'") < replicas:  # fmt: skip
            assert time.monotonic() < deadline, "the daemons did not start listening within 60 s"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # let each finish its start-up work (event pull, service list)
        idle.extend(rss_mib(p.pid) for p in procs)
        await fill(db_url, n, 20, analyze=False)
        t0 = time.perf_counter()
        deadline = time.monotonic() + 600
        while await conn.fetchval("SELECT count(*) FROM gdpr_requests WHERE status = 'submitted'") < n:
            assert time.monotonic() < deadline, "the drain did not finish within 600 s"
            await asyncio.sleep(0.01)
        return n / (time.perf_counter() - t0)
    finally:
        await conn.close()
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(60)


def per_thousand(cpu: Split, n: int) -> str:
    own, api, pg = (x / n * 1000 for x in cpu)
    return f"CPU s per 1,000: own {own:.2f} / API {api:.2f} / Postgres {pg:.2f}"


@contextlib.contextmanager
def api_server(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    if args.api == "minimal":
        with minimal_api("--services", str(args.services)) as server:
            yield server
    else:
        with api_process("-m", "gdpr_daemon", "simulate", "--services", str(args.services)) as server:
            yield server


async def main(args: argparse.Namespace) -> None:
    log_path = Path(tempfile.mkstemp(prefix="gdpr-bench-", suffix=".log")[1])
    logs.configure("json", args.log_level, stream=log_path.open("a"))
    # Both systems run in this process, with the garbage collector tuned as `gdpr-daemon run`
    # tunes it: the bare loop gains from it as much as the daemon, so the ratio is not flattered.
    tune_gc()
    print(f"bench/drain.py: {args.requests} requests over {args.services} services, concurrency {args.concurrency}, "
          f"API: {args.api}, {os.cpu_count()} CPUs, {datetime.now().date()}")  # fmt: skip
    async with postgres() as admin:
        with api_server(args) as (sim_url, api_pid):
            meter = CpuMeter(api_pid)
            systems = ("bare", "daemon", "unchained") if args.chain_cost else ("bare", "daemon")
            results: dict[str, list[float]] = {name: [] for name in systems}
            cpus: dict[str, list[Split]] = {name: [] for name in systems}
            for rnd in range(args.rounds):
                for name in systems if rnd % 2 == 0 else systems[::-1]:
                    async with fresh_database(admin) as db:
                        await fill(db, args.requests, args.services)
                        await reset_api(sim_url, args.api)
                        if name == "unchained":
                            await unchain(db)
                        if name != "bare":
                            rate, cpu = await run_daemon(db, sim_url, args.requests, args.concurrency, meter)
                        else:
                            rate, cpu = await run_bare(db, sim_url, args.requests, args.concurrency,
                                                       args.bare_batch, meter)  # fmt: skip
                        results[name].append(rate)
                        cpus[name].append(cpu)
                        print(f"  round {rnd + 1} {name:<9} {rate:8.0f} requests/s   {per_thousand(cpu, args.requests)}")
            for name in ("daemon", "bare", "unchained")[: len(systems)]:
                med = tuple(statistics.median(c[i] for c in cpus[name]) for i in range(3))
                print(f"{name:<9} median of {args.rounds} rounds: {statistics.median(results[name]):.0f} requests/s, "
                      f"{per_thousand(med, args.requests)}")  # type: ignore[arg-type]  # fmt: skip
            pairs = [x / y for x, y in zip(results["daemon"], results["bare"], strict=True)]
            print(f"ratio daemon/bare per round: {', '.join(f'{r:.2f}' for r in pairs)}; "
                  f"median {statistics.median(pairs):.2f} (goal >= 0.80)")  # fmt: skip
            pg_ratio = [d[2] / b[2] for d, b in zip(cpus["daemon"], cpus["bare"], strict=True) if b[2] > 0]
            if pg_ratio:
                print(f"Postgres CPU daemon/bare: median {statistics.median(pg_ratio):.2f} (goal <= 2.0)")
            if args.chain_cost:
                pairs = [x / y for x, y in zip(results["unchained"], results["bare"], strict=True)]
                pg = [d[2] / b[2] for d, b in zip(cpus["unchained"], cpus["bare"], strict=True) if b[2] > 0]
                print(f"without the hash chain's work (--chain-cost): ratio per round {', '.join(f'{r:.2f}' for r in pairs)}; "
                      f"median {statistics.median(pairs):.2f}; Postgres CPU / bare: median "
                      f"{statistics.median(pg) if pg else float('nan'):.2f}")  # fmt: skip
            if args.split:
                await split(admin, sim_url, args, meter)
            if args.api == "simulator":
                async with fresh_database(admin) as db:
                    await fill(db, args.requests, args.services)
                    await reset_api(sim_url, args.api)
                    once = await run_once(db, sim_url, args.requests, args.concurrency)
                total = once.submit_seconds + once.events_seconds
                print(f"run --once: {args.requests / total:.0f} requests/s in all ({total:.1f} s): submitting "
                      f"{once.submit_seconds:.1f} s ({args.requests / once.submit_seconds:.0f} requests/s), then "
                      f"pulling {once.events['stored']} confirming events {once.events_seconds:.1f} s")  # fmt: skip
            if args.pickups:
                async with fresh_database(admin) as db:
                    lat = await pickup_latency(db, sim_url, args.pickups, args.api)
                print(f"pickup latency (INSERT -> POST received), {len(lat)} single inserts on an idle daemon: "
                      f"p50 {percentile(lat, 50):.1f} ms, p99 {percentile(lat, 99):.1f} ms (goal p50 < 10 ms)")  # fmt: skip
        if args.replicas > 1:
            await scaling(admin, args)
    log_path.unlink()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--services", type=int, default=20)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--bare-batch", type=int, default=100)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--pickups", type=int, default=200, help="0 skips the pickup latency")
    p.add_argument("--api", choices=("minimal", "simulator"), default="minimal")
    p.add_argument("--replicas", type=int, default=2, help="processes in the scaling run; 1 skips it")
    p.add_argument("--scale-latency-ms", type=float, default=40.0)
    p.add_argument("--scale-requests", type=int, default=10_000)
    p.add_argument("--chain-cost", action="store_true",
                   help="also time the daemon with the history chain's trigger reduced to numbering rows")  # fmt: skip
    p.add_argument("--log-level", choices=("info", "warning"), default="info",
                   help="the daemon's log level (info, as deployed: one line a request; warning: what that line costs)")
    p.add_argument("--split", action="store_true",
                   help="split the daemon's own CPU: its API client vs bare aiohttp, and the queue around it")  # fmt: skip
    asyncio.run(main(p.parse_args()))
