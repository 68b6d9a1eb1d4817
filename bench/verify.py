"""`gdpr-daemon requests verify` against large backup sections: records/s and peak memory.

For each size N (default 10,000 and 1,000,000 records): a simulator process whose backups
hold N records per object (``simulate --backup-rows N``), a fresh database, one forget
submitted with ``gdpr-daemon run --once``, a backup taken after it, then
``gdpr-daemon requests verify ID`` run as its own process, as a DPO runs it.  Printed:

- records read per second: records read / the verification's own time (the command's JSON:
  listing backups and sections, downloading and scanning the CSV, not the process start);
- the verifier's CPU seconds per million records (the simulator generates the CSV in
  another process and is, on 2 cores, usually the slower side);
- the peak resident memory of the whole command (the kernel's high-water mark, ru_maxrss).

Memory that stays flat from 10,000 to 1,000,000 records is the point; the file of a
million Contact records is about 120 MB.

    .venv/bin/python bench/verify.py [--sizes 10000,1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import asyncpg
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SIM_EMAIL, SIM_PASSWORD, api_process, fresh_database, postgres

from gdpr_daemon.ownbackup import ClientConfig, OwnBackupClient, SessionAuth
from gdpr_daemon.simulator.csvdata import record_id

SERVICE = 1001
# Runs `gdpr-daemon ARGS`, then prints its peak RSS (KiB) and CPU seconds on stderr's last line.
MEASURED = (
    "import resource, sys\n"
    "from gdpr_daemon.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "u = resource.getrusage(resource.RUSAGE_SELF)\n"
    "print('measured', u.ru_maxrss, u.ru_utime + u.ru_stime, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def env(db_url: str, sim_url: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("GDPR_DAEMON_")}
    out.update(GDPR_DAEMON_DATABASE_URL=db_url, GDPR_DAEMON_OWNBACKUP_URL=sim_url, GDPR_DAEMON_OWNBACKUP_EMAIL=SIM_EMAIL,
               GDPR_DAEMON_OWNBACKUP_PASSWORD=SIM_PASSWORD, GDPR_DAEMON_LOG_LEVEL="warning")  # fmt: skip
    return out


async def run(*argv: str, environ: dict[str, str]) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *argv, env=environ, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 900)
    return proc.returncode or 0, out, err


async def backup_after(sim_url: str) -> None:
    """Back up the service now and wait (bounded) until that backup has completed."""
    config = ClientConfig(base_url=sim_url, auth=SessionAuth(SIM_EMAIL, SIM_PASSWORD))
    async with OwnBackupClient(config) as client:
        before = (await client.get_backup(SERVICE, "last")).id
        await client.backup_now(SERVICE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            last = await client.get_backup(SERVICE, "last")
            if last.id != before and last.completed_at is not None:
                return
            await asyncio.sleep(0.2)
    raise SystemExit("the simulator's backup did not complete within 60 s")


async def one_size(admin_url: str, rows: int) -> dict[str, float]:
    with api_process("-m", "gdpr_daemon", "simulate", "--backup-rows", str(rows)) as (sim_url, sim_pid):
        async with fresh_database(admin_url) as db_url:
            environ = env(db_url, sim_url)
            pg = await asyncpg.connect(db_url)
            try:
                rid = await pg.fetchval(
                    "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id) "
                    "VALUES ('forget', $1, 'Contact', $2) RETURNING id", SERVICE, record_id("Contact", SERVICE, rows // 2),
                )  # fmt: skip
            finally:
                await pg.close()
            code, out, err = await run(sys.executable, "-m", "gdpr_daemon", "run", "--once", environ=environ)
            if code != 0:
                raise SystemExit(f"run --once failed: {err.decode()[-500:]}")
            await backup_after(sim_url)
            sim_cpu = psutil.Process(sim_pid).cpu_times()
            started = time.perf_counter()
            code, out, err = await run(sys.executable, "-c", MEASURED, "requests", "verify", str(rid), "--format",
                                       "json", environ=environ)  # fmt: skip
            wall = time.perf_counter() - started
            after = psutil.Process(sim_pid).cpu_times()
            sim_seconds = after.user + after.system - sim_cpu.user - sim_cpu.system
    if code != 0:
        raise SystemExit(f"requests verify exited {code}: {out.decode()[-500:]} {err.decode()[-500:]}")
    (result,) = json.loads(out)
    _, peak_kib, cpu = err.decode().strip().splitlines()[-1].split()
    read = int(result["records_read"])
    return {"rows": rows, "read": read, "seconds": float(result["seconds"]), "wall": wall,
            "peak_mib": int(peak_kib) / 1024, "cpu": float(cpu), "sim_cpu": sim_seconds}  # fmt: skip


async def main() -> None:
    from gdpr_daemon import logs

    logs.configure("console", "warning")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,1000000", help="records per section, comma-separated")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    async with postgres() as admin_url:
        results = [await one_size(admin_url, n) for n in sizes]
    print(f"{'records':>12} {'read':>12} {'verify s':>9} {'records/s':>11} {'CPU s/M':>8} {'sim CPU s/M':>12} "
          f"{'peak RSS':>12} {'process s':>10}")  # fmt: skip
    for r in results:
        per_million = r["cpu"] / max(r["read"], 1) * 1e6
        sim_per_million = r["sim_cpu"] / max(r["read"], 1) * 1e6
        print(f"{r['rows']:>12,} {r['read']:>12,} {r['seconds']:>9.2f} {r['read'] / r['seconds']:>11,.0f} "
              f"{per_million:>8.1f} {sim_per_million:>12.1f} {r['peak_mib']:>8.1f} MiB {r['wall']:>10.2f}")  # fmt: skip
    if len(results) > 1:
        low, high = results[0], results[-1]
        print(f"peak RSS grew {high['peak_mib'] - low['peak_mib']:+.1f} MiB from {low['rows']:,} to {high['rows']:,} "
              f"records ({high['peak_mib'] / low['peak_mib']:.2f}x)")  # fmt: skip
        print("CPU s/M: the verifying process's CPU per million records read, start-up included; sim CPU s/M: the "
              "simulator's, generating and sending the CSV")


if __name__ == "__main__":
    asyncio.run(main())
