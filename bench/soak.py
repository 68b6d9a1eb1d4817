"""Soak run: 100,000 requests and 1,000,000 account events with the simulator's faults on.

The simulator (its own process) answers 5% of calls with a 5xx, sends a burst of 429s
every ``--burst-every`` seconds and lets a session die after ``--session-expiry-after``
calls.  The daemon runs as users run it (``gdpr-daemon run``, its own process) and drains
the queue; at the same time the account history is pulled by the daemon's event puller in
a process of its own.  Printed at the end: throughput, retries, re-logins, peak RSS of each
process, and the invariants, checked:

* every request finished (submitted, failed or rejected), none pending or in flight;
* a request sent more than once has an unknown outcome noted in its history;
* every submitted request's OwnBackup id is one the simulator issued for it;
* every event of the account is stored once (count and ids), none quarantined;
* both hash chains verify.

    python bench/soak.py [--requests 100000] [--events 1000000] [--services 20] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import asyncpg
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SIM_EMAIL, SIM_PASSWORD, fresh_database, postgres, sim_control, simulator

UNKNOWN_OUTCOME = ("outcome unknown", "lease had expired")


def daemon_env(db_url: str, sim_url: str, args: argparse.Namespace) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GDPR_DAEMON_")}
    env.update(
        GDPR_DAEMON_DATABASE_URL=db_url, GDPR_DAEMON_OWNBACKUP_URL=sim_url,
        GDPR_DAEMON_OWNBACKUP_EMAIL=SIM_EMAIL, GDPR_DAEMON_OWNBACKUP_PASSWORD=SIM_PASSWORD,
        GDPR_DAEMON_LOG_LEVEL="warning", GDPR_DAEMON_INSTANCE_NAME="soak",
        GDPR_DAEMON_QUEUE_CONCURRENCY=str(args.concurrency),
        GDPR_DAEMON_QUEUE_PER_SERVICE_CONCURRENCY=str(args.concurrency),
        # Retries within seconds, not the production minutes, so the soak ends.
        GDPR_DAEMON_QUEUE_BACKOFF_BASE_SECONDS="0.2", GDPR_DAEMON_QUEUE_BACKOFF_MAX_SECONDS="2",
        GDPR_DAEMON_QUEUE_MAX_ATTEMPTS="10",
    )  # fmt: skip
    return env


async def fill(url: str, n: int, services: int) -> None:
    """90% forget, 10% rectify (synthetic values), spread over the services."""
    conn = await asyncpg.connect(url)
    await conn.execute(
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, field, value) "
        "SELECT CASE WHEN g % 10 = 0 THEN 'rectify' ELSE 'forget' END, 1001 + g % $2, 'Contact', 'soak' || g, "
        "       CASE WHEN g % 10 = 0 THEN 'Email' END, CASE WHEN g % 10 = 0 THEN 'soak-' || md5(g::text) END "
        "FROM generate_series(1, $1) g",
        n, services,
    )  # fmt: skip
    await conn.execute("VACUUM ANALYZE gdpr_requests")
    await conn.close()


class Peak:
    """Peak RSS of a process, sampled."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.rss = 0

    def sample(self) -> None:
        with contextlib.suppress(psutil.Error):
            self.rss = max(self.rss, self.proc.memory_info().rss)


async def bursts(sim_url: str, every: float, size: int, stop: asyncio.Event) -> int:
    sent = 0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
        if not stop.is_set():
            await sim_control(sim_url, "PATCH", "/_simulator/faults", {"burst_429": size})
            sent += 1
    return sent


async def child_pull(db_url: str, sim_url: str) -> None:
    """In its own process: pull the whole account history as the daemon does."""
    from gdpr_daemon import logs
    from gdpr_daemon.audit import EventPuller
    from gdpr_daemon.config import load_settings
    from gdpr_daemon.db.engine import make_engine
    from gdpr_daemon.ownbackup import OwnBackupClient
    from gdpr_daemon.runtime import client_config

    logs.configure("json", "warning", stream=sys.stderr)
    settings = load_settings(None, environ={}, database_url=db_url, ownbackup_url=sim_url,
                             ownbackup_email=SIM_EMAIL, ownbackup_password=os.environ["BENCH_SIM_PASSWORD"])  # fmt: skip
    engine = make_engine(db_url, pool_size=2)
    t0 = time.perf_counter()
    async with OwnBackupClient(client_config(settings)) as client:
        result = await EventPuller(engine, client, account=settings.api_base_url).pull()
    await engine.dispose()
    print(json.dumps({"stored": result.stored, "pages": result.pages, "quarantined": result.quarantined,
                      "seconds": time.perf_counter() - t0,
                      "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))  # fmt: skip


async def run_pull(db_url: str, sim_url: str) -> tuple[asyncio.subprocess.Process, Peak]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--child-pull", db_url, sim_url,
        env=dict(os.environ, BENCH_SIM_PASSWORD=SIM_PASSWORD), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    return proc, Peak(proc.pid)


async def check(db_url: str, sim_url: str) -> dict[str, object]:
    from gdpr_daemon.db.engine import make_engine
    from gdpr_daemon.db.integrity import verify_chains

    conn = await asyncpg.connect(db_url)
    states = dict(await conn.fetch("SELECT status, count(*) FROM gdpr_requests GROUP BY 1"))
    open_ = sum(v for k, v in states.items() if k not in ("submitted", "failed", "rejected"))
    calls = await sim_control(sim_url, "GET", "/_simulator/calls")
    assert isinstance(calls, list)
    sent = Counter((c["service_id"], c["record_id"]) for c in calls)
    issued: dict[tuple[int, str], set[int]] = {}
    for c in calls:
        issued.setdefault((c["service_id"], c["record_id"]), set()).add(c["id"])
    unknown = dict(await conn.fetch(
        "SELECT request_id, count(*) FROM gdpr_request_log WHERE "
        + " OR ".join(f"detail LIKE '%{s}%'" for s in UNKNOWN_OUTCOME) + " GROUP BY 1"))  # fmt: skip
    dup = unexplained = wrong_id = 0
    for r in await conn.fetch("SELECT id, status, service_id, record_id, ownbackup_request_id FROM gdpr_requests"):
        key = (r["service_id"], r["record_id"])
        if sent[key] > 1:
            dup += 1
            unexplained += unknown.get(r["id"], 0) < sent[key] - 1
        if r["status"] == "submitted" and r["ownbackup_request_id"] not in issued.get(key, ()):
            wrong_id += 1
    retries = await conn.fetchval("SELECT count(*) FROM gdpr_request_log WHERE detail LIKE 'attempt % failed%'")
    values_left = await conn.fetchval("SELECT count(*) FROM gdpr_requests WHERE status = 'submitted' AND value IS NOT NULL")
    events = await conn.fetchrow("SELECT count(*) n, count(DISTINCT event_id) d, max(event_id) m FROM audit_events")
    quarantined = await conn.fetchval("SELECT count(*) FROM audit_quarantine")
    await conn.close()
    last = await sim_control(sim_url, "POST", "/_simulator/events", {"count": 0})
    assert isinstance(last, dict)
    engine = make_engine(db_url, pool_size=1)
    chains = await verify_chains(engine)
    await engine.dispose()
    return {
        "states": states, "open": open_, "duplicates": dup, "unexplained_duplicates": unexplained,
        "wrong_ids": wrong_id, "retries": retries, "values_left": values_left, "events": dict(events),
        "account_events": last["last_event_id"], "quarantined": quarantined,
        "chains": [c.summary() for c in chains], "chains_ok": all(c.ok for c in chains),
    }  # fmt: skip


async def main(args: argparse.Namespace) -> int:
    log_path = Path(tempfile.mkstemp(prefix="gdpr-soak-", suffix=".log")[1])
    print(f"bench/soak.py: {args.requests} requests over {args.services} services, {args.events} events; "
          f"faults: {args.rate_5xx:.0%} 5xx, a burst of {args.burst_size} 429s every {args.burst_every:g} s, "
          f"sessions die after {args.session_expiry_after} calls")  # fmt: skip
    sim_args = ["--services", str(args.services), "--events", str(args.events), "--rate-5xx", str(args.rate_5xx),
                "--session-expiry-after", str(args.session_expiry_after), "--retry-after", "1"]  # fmt: skip
    async with postgres() as admin, fresh_database(admin) as db:
        with simulator(*sim_args) as sim_url:
            await fill(db, args.requests, args.services)
            with log_path.open("ab") as log:
                t0 = time.perf_counter()
                daemon = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "gdpr_daemon", "run", env=daemon_env(db, sim_url, args), stdout=log, stderr=log
                )  # fmt: skip
                peak_daemon = Peak(daemon.pid)
                pull, peak_pull = await run_pull(db, sim_url)
                stop = asyncio.Event()
                burster = asyncio.create_task(bursts(sim_url, args.burst_every, args.burst_size, stop))
                conn = await asyncpg.connect(db)
                drained_at = pulled_at = None
                deadline = time.monotonic() + args.timeout
                while time.monotonic() < deadline and (drained_at is None or pulled_at is None):
                    peak_daemon.sample()
                    peak_pull.sample()
                    if drained_at is None and not await conn.fetchval(
                        "SELECT count(*) FROM gdpr_requests WHERE status IN ('pending', 'in_flight')"
                    ):
                        drained_at = time.perf_counter() - t0
                    if pulled_at is None and pull.returncode is not None:
                        pulled_at = time.perf_counter() - t0
                    await asyncio.sleep(0.5)
                stop.set()
                n_bursts = await burster
                await conn.close()
                daemon.send_signal(signal.SIGTERM)
                code = await asyncio.wait_for(daemon.wait(), 60)
                out, _ = await asyncio.wait_for(pull.communicate(), 60)
            pull_result = json.loads(out.decode().strip().splitlines()[-1]) if out.strip() else {}
            stats = await sim_control(sim_url, "GET", "/_simulator/stats")
            assert isinstance(stats, dict)
            # The pull stopped at the history's end as it was then; events the GDPR calls added
            # later are pulled by a last, quick pull, as the daemon's next scheduled pull would
            # (faults off: it is bookkeeping, not part of the measured run).
            await sim_control(sim_url, "PUT", "/_simulator/faults", {})
            final, _ = await run_pull(db, sim_url)
            await asyncio.wait_for(final.communicate(), 600)
            result = await check(db, sim_url)
    log_path.unlink()
    drained = drained_at or float("nan")
    print(f"daemon exit status {code} after SIGTERM")
    print(f"requests: {args.requests} in {drained:.1f} s = {args.requests / drained:.0f} requests/s; "
          f"states {result['states']}")  # fmt: skip
    print(f"retries: {result['retries']} failed attempts retried; re-logins: {stats['logins'] - 2} "
          f"(401s sent {stats['sent_401']}); 5xx sent {stats['sent_5xx']}; 429s sent {stats['sent_429']} "
          f"in {n_bursts} bursts; API calls {stats['total_calls']}")  # fmt: skip
    if pull_result:
        print(f"events: {pull_result['stored']} stored in {pull_result['seconds']:.1f} s = "
              f"{pull_result['stored'] / pull_result['seconds']:.0f} events/s ({pull_result['pages']} pages)")  # fmt: skip
    print(f"peak RSS: daemon {peak_daemon.rss / 2**20:.0f} MiB, event puller "
          f"{max(peak_pull.rss, pull_result.get('rss_kb', 0) * 1024) / 2**20:.0f} MiB")  # fmt: skip
    ok = {
        "no request lost (none pending or in flight)": result["open"] == 0,
        "duplicates only with an unknown outcome noted": result["unexplained_duplicates"] == 0,
        "each submitted id is one the API issued for it": result["wrong_ids"] == 0,
        "every rectify value erased once submitted": result["values_left"] == 0,
        "every account event stored once, none quarantined": (
            result["events"]["n"] == result["events"]["d"] == result["account_events"] and result["quarantined"] == 0
        ),
        "both hash chains verify": result["chains_ok"],
    }
    print(f"invariants: duplicates {result['duplicates']} (all noted: {result['unexplained_duplicates'] == 0}); "
          f"events {result['events']['n']} stored of {result['account_events']} in the account")  # fmt: skip
    for c in result["chains"]:
        print(f"  {c}")
    for name, good in ok.items():
        print(f"  {'OK  ' if good else 'FAIL'} {name}")
    return 0 if all(ok.values()) and code == 0 else 1


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child-pull":
        asyncio.run(child_pull(sys.argv[2], sys.argv[3]))
        sys.exit(0)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=100_000)
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--services", type=int, default=20)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--rate-5xx", type=float, default=0.05)
    p.add_argument("--burst-every", type=float, default=10.0, help="seconds between 429 bursts")
    p.add_argument("--burst-size", type=int, default=20, help="429s in a burst")
    p.add_argument("--session-expiry-after", type=int, default=500)
    p.add_argument("--timeout", type=float, default=3600.0, help="give up after this many seconds")
    sys.exit(asyncio.run(main(p.parse_args())))
