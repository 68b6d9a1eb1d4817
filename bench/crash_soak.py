"""Crash soak: two replicas of `gdpr-daemon run` SIGKILLed over and over, with API faults.

The queue starts with ``--requests`` forget requests.  Two replicas drain it as users run
them (`gdpr-daemon run`, each its own process, default lease and reaper settings).  The
soak kills in cycles: one replica at a random moment while the other runs, then the other
while the first is down (so half the kills leave no replica running), then starts both
again.  Meanwhile the API fails: a small share of 5xx all along, a burst of 429s every
15 seconds, and two outages of five seconds (every call 5xx); and the daemons' database
connections are dropped (``pg_terminate_backend``) three times.

The API model (the simulator's faults): a call waits ``--latency-ms`` (plus jitter) before
it is handled, like a request still on its way; then it is carried out at once and its
answer held back ``--hold-ms``, like a service that works and then answers.  A call cut off
in the first phase was never carried out; one cut off in the second was.

Printed at the end, with the invariants checked:

* requests lost (not submitted, failed or rejected at the end): must be 0;
* requests sent more than once (from the simulator's ``/_simulator/calls``), and those
  not explained by their history (an unknown outcome noted for each extra call): must be 0;
* history rows saying "outcome unknown" against the real duplicates (goal: at most 1.5
  times), and rows saying "never sent" (claims a killed process had not started);
* for every request whose lease holder was killed, the time from the kill to the history
  row that returned it to the queue and to its next claim by another process (goal: at
  most 35 s with the default 30 s lease where a replica was running when the lease
  expired; while no replica runs, nothing can return a claim, so those are printed apart);
* both hash chains verify, and no daemon wrote anything but JSON log lines (no traceback).

    python bench/crash_soak.py [--requests 6000] [--kills 50] [--concurrency 16] [--hold-ms 600]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, SIM_EMAIL, SIM_PASSWORD, fresh_database, postgres, sim_control, simulator

# History sentences that say an attempt's outcome was unknown: only requests with one may
# have gone out more than once.
UNKNOWN_OUTCOME = ("outcome unknown", "lease had expired")
LEASE_SECONDS = 30  # the default queue_lease_seconds, which the replicas run with


@dataclass
class Replica:
    """One slot of the pair: the process running in it now, and its log."""

    name: str
    log_dir: Path
    env: dict[str, str]
    proc: asyncio.subprocess.Process | None = None
    runs: int = 0
    log: Path | None = None

    async def start(self) -> None:
        self.runs += 1
        instance = f"{self.name}-{self.runs}"
        self.log = self.log_dir / f"{instance}.log"
        with self.log.open("ab") as fh:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gdpr_daemon", "run", cwd=ROOT,
                env=dict(self.env, GDPR_DAEMON_INSTANCE_NAME=instance), stdout=fh, stderr=fh,
            )  # fmt: skip

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def instance(self) -> str:
        return f"{self.name}-{self.runs}"

    def token(self) -> str | None:
        """This run's lease token, from its daemon_started line (None before it got that far)."""
        assert self.log is not None
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("event") == "daemon_started":
                    return str(event["lease_owner"])
        return None

    def working(self) -> bool:
        """Whether this run has submitted a request yet."""
        assert self.log is not None
        return '"request_submitted"' in self.log.read_text(errors="replace")


@dataclass
class Kill:
    at: datetime  # the database's clock
    instance: str
    alone: bool  # no other replica was running
    held: list[int] = field(default_factory=list)  # its claims (in flight, its token) just after the kill


def daemon_env(db_url: str, sim_url: str, args: argparse.Namespace) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GDPR_DAEMON_")}
    env.update(
        GDPR_DAEMON_DATABASE_URL=db_url, GDPR_DAEMON_OWNBACKUP_URL=sim_url,
        GDPR_DAEMON_OWNBACKUP_EMAIL=SIM_EMAIL, GDPR_DAEMON_OWNBACKUP_PASSWORD=SIM_PASSWORD,
        GDPR_DAEMON_LOG_LEVEL="info", GDPR_DAEMON_LOG_FORMAT="json",
        GDPR_DAEMON_QUEUE_CONCURRENCY=str(args.concurrency),
        GDPR_DAEMON_QUEUE_PER_SERVICE_CONCURRENCY=str(args.concurrency),
        # Retries within seconds, not the production minutes, so the soak ends.
        GDPR_DAEMON_QUEUE_BACKOFF_BASE_SECONDS="0.5", GDPR_DAEMON_QUEUE_BACKOFF_MAX_SECONDS="5",
        GDPR_DAEMON_QUEUE_MAX_ATTEMPTS="20",
    )  # fmt: skip
    return env


async def fill(conn: asyncpg.Connection, n: int, services: int) -> None:
    await conn.execute(
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id) "
        "SELECT 'forget', 1001 + g % $2, 'Contact', 'crash' || g FROM generate_series(1, $1) g",
        n, services,
    )  # fmt: skip


async def moment(replica: Replica, rng: random.Random) -> None:
    """Wait for a random moment to kill ``replica``: one time in five while it may still be
    starting (0.2 to 2 s after its start), otherwise 0.3 to 4 s after it submitted its first
    request (that wait bounded by 30 s)."""
    if rng.random() < 0.2:
        await asyncio.sleep(rng.uniform(0.2, 2.0))
        return
    deadline = time.monotonic() + 30
    while not replica.working() and time.monotonic() < deadline:  # noqa: ASYNC110 (a log file poll)
        await asyncio.sleep(0.1)
    await asyncio.sleep(rng.uniform(0.3, 4.0))


async def kill(replica: Replica, conn: asyncpg.Connection, alone: bool) -> Kill:
    assert replica.proc is not None
    replica.proc.kill()
    at = await conn.fetchval("SELECT clock_timestamp()")
    await asyncio.wait_for(replica.proc.wait(), 30)
    await asyncio.sleep(0.2)  # the server has seen the connections go and rolled back what was open
    token = replica.token()
    held = []
    if token is not None:
        held = [r["id"] for r in await conn.fetch(
            "SELECT id FROM gdpr_requests WHERE status = 'in_flight' AND lease_owner = $1", token)]  # fmt: skip
    return Kill(at=at, instance=replica.instance, alone=alone, held=held)


async def api_faults(sim_url: str, args: argparse.Namespace, stop: asyncio.Event, outages_at: list[float]) -> int:
    """A burst of five 429s every 15 s and the two outages, until ``stop``; how many bursts were sent."""
    started = time.monotonic()
    bursts = 0
    pending = sorted(outages_at)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        if stop.is_set():
            break
        elapsed = time.monotonic() - started
        if pending and elapsed >= pending[0]:
            pending.pop(0)
            await sim_control(sim_url, "PATCH", "/_simulator/faults", {"rate_5xx": 1.0})
            await asyncio.sleep(5.0)
            await sim_control(sim_url, "PATCH", "/_simulator/faults", {"rate_5xx": args.rate_5xx})
        if int(elapsed) % 15 == 0:
            await sim_control(sim_url, "PATCH", "/_simulator/faults", {"burst_429": 5})
            bursts += 1
    return bursts


async def drop_connections(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name LIKE 'gdpr-daemon%'"
    ))  # fmt: skip


async def open_requests(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM gdpr_requests WHERE status IN ('pending', 'in_flight')"))


async def soak(db_url: str, sim_url: str, args: argparse.Namespace, log_dir: Path) -> tuple[list[Kill], dict[str, int]]:
    rng = random.Random(args.seed)
    conn = await asyncpg.connect(db_url)
    await fill(conn, args.requests, args.services)
    env = daemon_env(db_url, sim_url, args)
    a, b = Replica("A", log_dir, env), Replica("B", log_dir, env)
    kills: list[Kill] = []
    stop = asyncio.Event()
    expected = args.kills / 2 * (2 * 6.0 + 1.5)  # seconds the kill cycles take, roughly
    faults = asyncio.create_task(api_faults(sim_url, args, stop, [expected / 3, 2 * expected / 3]))
    drops_at = sorted(rng.sample(range(1, args.kills), 3))
    dropped = 0
    try:
        await a.start()
        await b.start()
        while len(kills) < args.kills:
            first, second = (a, b) if rng.random() < 0.5 else (b, a)
            await moment(first, rng)
            kills.append(await kill(first, conn, alone=not second.running))
            if len(kills) in drops_at:
                dropped += await drop_connections(conn)
            if len(kills) >= args.kills:
                break
            await moment(second, rng)
            kills.append(await kill(second, conn, alone=not first.running))
            if len(kills) in drops_at:
                dropped += await drop_connections(conn)
            await asyncio.sleep(rng.uniform(0.0, 1.5))
            await first.start()
            await second.start()
            print(f"  {len(kills)} kills, {await open_requests(conn)} requests open", flush=True)
        for r in (a, b):
            if not r.running:
                await r.start()
        deadline = time.monotonic() + args.timeout
        while await open_requests(conn) and time.monotonic() < deadline:  # noqa: ASYNC110 (a database poll)
            await asyncio.sleep(1.0)
    finally:
        stop.set()
        bursts = await faults
        codes = []
        for r in (a, b):
            if r.running:
                assert r.proc is not None
                r.proc.send_signal(signal.SIGTERM)
                codes.append(await asyncio.wait_for(r.proc.wait(), 60))
        await conn.close()
    return kills, {"bursts": bursts, "dropped_connections": dropped, "bad_exit": sum(1 for c in codes if c != 0)}


async def results(db_url: str, sim_url: str, kills: list[Kill]) -> dict[str, object]:
    from gdpr_daemon.db.engine import make_engine
    from gdpr_daemon.db.integrity import verify_chains

    conn = await asyncpg.connect(db_url)
    states = dict(await conn.fetch("SELECT status, count(*) FROM gdpr_requests GROUP BY 1"))
    lost = sum(v for k, v in states.items() if k not in ("submitted", "failed", "rejected"))
    calls = await sim_control(sim_url, "GET", "/_simulator/calls")
    assert isinstance(calls, list)
    sent = Counter((c["service_id"], c["record_id"]) for c in calls)
    issued: dict[tuple[int, str], set[int]] = {}
    for c in calls:
        issued.setdefault((c["service_id"], c["record_id"]), set()).add(c["id"])
    noted = dict(await conn.fetch(
        "SELECT request_id, count(*) FROM gdpr_request_log WHERE "
        + " OR ".join(f"detail LIKE '%{s}%'" for s in UNKNOWN_OUTCOME) + " GROUP BY 1"))  # fmt: skip
    duplicates = extra_calls = unexplained = wrong_id = 0
    for r in await conn.fetch("SELECT id, status, service_id, record_id, ownbackup_request_id FROM gdpr_requests"):
        key = (r["service_id"], r["record_id"])
        if sent[key] > 1:
            duplicates += 1
            extra_calls += sent[key] - 1
            unexplained += noted.get(r["id"], 0) < sent[key] - 1
        if r["status"] == "submitted" and r["ownbackup_request_id"] not in issued.get(key, ()):
            wrong_id += 1
    unknown_rows = await conn.fetchval("SELECT count(*) FROM gdpr_request_log WHERE detail LIKE '%outcome unknown%'")
    # Of the reaper's "outcome unknown" rows: was the call carried out (the simulator accepted
    # one for the request between that attempt's claim and the row), or not (refused, or cut
    # off before it was carried out)?
    call_times: dict[tuple[int, str], list[datetime]] = {}
    for c in calls:
        call_times.setdefault((c["service_id"], c["record_id"]), []).append(
            datetime.fromisoformat(c["at"].replace("Z", "+00:00")))  # fmt: skip
    carried = not_carried = 0
    for n in await conn.fetch(
        "SELECT n.at, r.service_id, r.record_id, (SELECT max(c.at) FROM gdpr_request_log c WHERE c.request_id = n.request_id "
        "  AND c.at < n.at AND c.detail = 'claimed for attempt ' || split_part(n.detail, ' ', 4)) AS claimed "
        "FROM gdpr_request_log n JOIN gdpr_requests r ON r.id = n.request_id "
        "WHERE n.detail LIKE 'lease of attempt % expired: outcome unknown%'"
    ):  # fmt: skip
        key = (n["service_id"], n["record_id"])
        if n["claimed"] is not None and any(n["claimed"] <= t <= n["at"] for t in call_times.get(key, [])):
            carried += 1
        else:
            not_carried += 1
    never_rows = await conn.fetchval("SELECT count(*) FROM gdpr_request_log WHERE detail LIKE '%never sent%'")
    # Stranded claims: from each kill to the next claim of the request by another process,
    # and to the history row that gave it back (reaped).
    waits: list[float] = []
    backs: list[float] = []
    returned: list[tuple[float, datetime]] = []  # (wait to the next claim, when it was back in the queue)
    back_after: list[tuple[datetime, float]] = []  # (the kill, seconds from it to the row that gave the claim back)
    missing = 0
    for k in kills:
        for rid in k.held:
            row = await conn.fetchrow(
                "SELECT min(at) FILTER (WHERE detail LIKE 'claimed for attempt %') AS claimed, "
                "       min(at) FILTER (WHERE detail LIKE 'lease of attempt %') AS back "
                "FROM gdpr_request_log WHERE request_id = $1 AND at > $2 AND actor <> $3",
                rid, k.at, k.instance,
            )  # fmt: skip
            if row["claimed"] is None:
                missing += 1
                continue
            waits.append((row["claimed"] - k.at).total_seconds())
            if row["back"] is not None:
                backs.append((row["back"] - k.at).total_seconds())
                returned.append((waits[-1], row["back"]))
                back_after.append((k.at, backs[-1]))
    # What held the longest-waiting ones up, and why any request failed: their history, for the reader.
    stories: list[str] = []
    slow = []
    for k in kills:
        for rid in k.held:
            w = await _wait(conn, k, rid)
            if w is not None:
                slow.append((w, rid, k))
    slow.sort(key=lambda x: x[0], reverse=True)
    for w, rid, k in slow[:2]:
        stories.append(f"request {rid}, killed with {k.instance} at {k.at:%H:%M:%S.%f}, claimed again after {w:.1f} s:")
        stories += [f"    {h['at']:%H:%M:%S.%f} {h['actor']}: {h['detail'][:150]}" for h in await conn.fetch(
            "SELECT at, actor, detail FROM gdpr_request_log WHERE request_id = $1 AND at > $2::timestamptz - interval '40 seconds' "
            "ORDER BY id LIMIT 12", rid, k.at)]  # fmt: skip
    for rid in [r["id"] for r in await conn.fetch("SELECT id FROM gdpr_requests WHERE status = 'failed' LIMIT 2")]:
        stories.append(f"request {rid} failed:")
        stories += [f"    {h['at']:%H:%M:%S.%f} {h['actor']}: {h['detail'][:150]}" for h in await conn.fetch(
            "SELECT at, actor, detail FROM gdpr_request_log WHERE request_id = $1 ORDER BY id", rid)]  # fmt: skip
    await conn.close()
    engine = make_engine(db_url, pool_size=1)
    chains = await verify_chains(engine)
    await engine.dispose()
    return {
        "states": states, "lost": lost, "calls": len(calls), "duplicates": duplicates, "extra_calls": extra_calls,
        "unexplained": unexplained, "wrong_ids": wrong_id, "unknown_rows": unknown_rows, "never_rows": never_rows,
        "reaped_carried": carried, "reaped_not_carried": not_carried,
        "stranded": len(waits) + missing, "stranded_never_claimed": missing, "waits": waits, "backs": backs,
        "chains_ok": all(c.ok for c in chains), "stories": stories, "returned": returned, "back_after": back_after,
    }  # fmt: skip


async def _wait(conn: asyncpg.Connection, k: Kill, rid: int) -> float | None:
    at = await conn.fetchval(
        "SELECT min(at) FROM gdpr_request_log WHERE request_id = $1 AND at > $2 AND actor <> $3 "
        "AND detail LIKE 'claimed for attempt %'", rid, k.at, k.instance)  # fmt: skip
    return None if at is None else (at - k.at).total_seconds()


def running_spans(log_dir: Path, kills: list[Kill], end: datetime) -> list[tuple[datetime, datetime]]:
    """When each run was up: from its first log line (the database answered) to its kill (or the end)."""
    killed = {k.instance: k.at for k in kills}
    spans = []
    for path in log_dir.glob("*.log"):
        for line in path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError, KeyError):
                first = datetime.fromisoformat(json.loads(line)["timestamp"].replace("Z", "+00:00"))
                spans.append((first, killed.get(path.stem, end)))
                break
    return spans


def working_spans(log_dir: Path, kills: list[Kill], end: datetime) -> list[tuple[datetime, datetime]]:
    """When each run was working: from its first submission to its kill (or the end of the soak)."""
    killed = {k.instance: k.at for k in kills}
    spans = []
    for path in log_dir.glob("*.log"):
        first = None
        for line in path.read_text(errors="replace").splitlines():
            if '"request_submitted"' in line:
                with contextlib.suppress(ValueError, KeyError):
                    first = datetime.fromisoformat(json.loads(line)["timestamp"].replace("Z", "+00:00"))
                    break
        if first is not None:
            spans.append((first, killed.get(path.stem, end)))
    return spans


def scan_logs(log_dir: Path) -> tuple[int, int, Counter[str]]:
    """(lines, lines that are not JSON log lines, events at warning or above)."""
    lines = bad = 0
    loud: Counter[str] = Counter()
    for path in sorted(log_dir.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            lines += 1
            try:
                event = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if not isinstance(event, dict):
                bad += 1
            elif event.get("level") in ("warning", "error", "critical"):
                loud[str(event.get("event"))] += 1
    return lines, bad, loud


def spread(values: list[float]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"median {statistics.median(ordered):.1f} s, p95 {p95:.1f} s, longest {ordered[-1]:.1f} s"


async def main(args: argparse.Namespace) -> int:
    log_dir = Path(tempfile.mkdtemp(prefix="gdpr-crash-soak-"))
    print(f"bench/crash_soak.py: {args.requests} requests over {args.services} services, {args.kills} SIGKILLs of two "
          f"replicas (concurrency {args.concurrency}, default lease), seed {args.seed}; API: {args.latency_ms}+"
          f"{args.jitter_ms} ms before a call is carried out, answer held {args.hold_ms} ms, {args.rate_5xx:.0%} 5xx, "
          f"429 bursts, two 5 s outages; database connections dropped 3 times; logs in {log_dir}", flush=True)  # fmt: skip
    sim_args = ["--services", str(args.services), "--rate-5xx", str(args.rate_5xx), "--retry-after", "1",
                "--latency-ms", str(args.latency_ms), "--latency-jitter-ms", str(args.jitter_ms),
                "--hang-ms", str(args.hold_ms), "--hang-rate", "1", "--seed", str(args.seed)]  # fmt: skip
    started = time.monotonic()
    async with postgres() as admin, fresh_database(admin) as db:
        with simulator(*sim_args) as sim_url:
            kills, extra = await soak(db, sim_url, args, log_dir)
            r = await results(db, sim_url, kills)
    lines, bad, loud = scan_logs(log_dir)
    spans = working_spans(log_dir, kills, datetime.now(UTC))
    # "A replica that stays up": one was working when the claim came back and for 5 s after.
    up = [w for w, back in r["returned"] if any(a <= back and b >= back + timedelta(seconds=5) for a, b in spans)]  # type: ignore[attr-defined]
    # "Noticed by any live replica": one was running (its look-out starts once the database
    # answers) from the moment the killed lease expired until 5 s after.
    alive = running_spans(log_dir, kills, datetime.now(UTC))
    expiry = timedelta(seconds=LEASE_SECONDS)
    watched = [w for at, w in r["back_after"]  # type: ignore[attr-defined]
               if any(a <= at + expiry and b >= at + expiry + timedelta(seconds=5) for a, b in alive)]  # fmt: skip
    alone = sum(1 for k in kills if k.alone)
    print(f"{len(kills)} kills ({alone} with no other replica running) in {time.monotonic() - started:.0f} s; "
          f"{extra['bursts']} bursts of 429s; {extra['dropped_connections']} database connections dropped")  # fmt: skip
    print(f"requests: {args.requests}; states {r['states']}; lost {r['lost']}; calls accepted {r['calls']}")
    ratio = r["unknown_rows"] / r["duplicates"] if r["duplicates"] else float("inf") if r["unknown_rows"] else 0.0
    print(f"sent more than once: {r['duplicates']} requests ({r['extra_calls']} extra calls), "
          f"not explained by their history: {r['unexplained']}")  # fmt: skip
    print(f"history rows saying outcome unknown: {r['unknown_rows']} ({ratio:.2f} times the duplicates); "
          f"saying never sent: {r['never_rows']}")  # fmt: skip
    print(f"  of the reaper's outcome unknown rows, the call had been carried out for {r['reaped_carried']}, "
          f"not (refused, or cut off before it was) for {r['reaped_not_carried']}")  # fmt: skip
    print(f"claims held by killed processes: {r['stranded']}; kill to the row returning it: {spread(r['backs'])}, "
          f"and where a replica was running when the lease expired ({len(watched)} of them): {spread(watched)}; "
          f"kill to the next claim by another process: {spread(r['waits'])}, and where a replica was working when "
          f"it came back ({len(up)} of them): {spread(up)}")  # fmt: skip
    print(f"daemon output: {lines} lines, {bad} not JSON log lines; warnings and errors: {dict(loud.most_common(8))}")
    for line in r["stories"]:  # type: ignore[attr-defined]
        print(line)
    longest = max(up, default=0.0)
    longest_back = max(watched, default=0.0)
    checks = {
        "no request lost": r["lost"] == 0,
        "every submitted id is one the API issued for it": r["wrong_ids"] == 0,
        "every duplicate explained by its history": r["unexplained"] == 0,
        "every stranded claim claimed again": r["stranded_never_claimed"] == 0,
        "both hash chains verify": r["chains_ok"],
        "no traceback or other non-JSON output": bad == 0,
        "every replica stopped with exit 0": extra["bad_exit"] == 0,
        f"at least {args.kills} kills, half with no other replica": len(kills) >= args.kills and alone >= len(kills) // 2,
        "goal: outcome unknown at most 1.5 times the duplicates": r["unknown_rows"] <= 1.5 * r["duplicates"],
        "goal: stranded claims back in the queue within 35 s where a replica was running": bool(watched)
        and longest_back <= 35.0,
        "goal: ... and claimed again within 35 s where a replica was working": bool(up) and longest <= 35.0,
    }
    for name, ok in checks.items():
        print(f"  {'OK  ' if ok else 'FAIL'} {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=6000)
    p.add_argument("--services", type=int, default=20)
    p.add_argument("--kills", type=int, default=50)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--latency-ms", type=int, default=5, help="before a call is carried out")
    p.add_argument("--jitter-ms", type=int, default=10)
    p.add_argument("--hold-ms", type=int, default=600, help="answer held back after the call was carried out")
    p.add_argument("--rate-5xx", type=float, default=0.02)
    p.add_argument("--seed", type=int, default=int(os.environ.get("GDPR_SOAK_SEED") or time.time()) % 100000)
    p.add_argument("--timeout", type=float, default=600.0, help="longest wait for the queue to drain after the kills")
    sys.exit(asyncio.run(main(p.parse_args())))
