"""A million-record section verified in flat memory: `requests verify` as a separate process, its
peak resident memory (the kernel's high-water mark) compared with the same command on 10,000 records."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import pytest

from gdpr_daemon.config import load_settings
from gdpr_daemon.simulator import Simulator, SimulatorConfig
from tests.helpers import SECRETS_SEEN, SIM_EMAIL, SIM_PASSWORD, subprocess_env
from tests.verify.conftest import contact, enter_forget, submit_all

# Runs `gdpr-daemon ARGS` and prints the process's peak RSS (KiB) on stderr's last line.
PEAK = (
    "import resource, sys\n"
    "from gdpr_daemon.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print('peak_rss_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)
# Reading the whole 1M-record file (about 120 MB) into memory would add at least that much.
FLAT_BOUND_KIB = 40 * 1024


async def verify_with_peak(db_url: str, sim_url: str, request_id: int) -> tuple[dict[str, Any], int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PEAK, "requests", "verify", str(request_id), "--format", "json",
        env=subprocess_env(db_url, sim_url), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode == 0, (out, err)
    peak = int(err.decode().strip().splitlines()[-1].split()[1])
    (result,) = json.loads(out)
    return result, peak


async def run_size(rows: int, pg, db_url: str) -> tuple[dict[str, Any], int]:  # type: ignore[no-untyped-def]
    config = SimulatorConfig(email=SIM_EMAIL, password=SIM_PASSWORD, seed=7, backup_seconds=0.0, backup_now_rows=rows)
    sim = Simulator(config)
    async with sim.serve(host="127.0.0.1", port=0) as url:
        settings = load_settings(None, environ={}, database_url=db_url, ownbackup_url=url, ownbackup_email=SIM_EMAIL,
                                 ownbackup_password=SIM_PASSWORD, log_format="json", instance_name="t")  # fmt: skip
        rid = await enter_forget(pg, contact(rows // 2))
        await submit_all(settings)
        from gdpr_daemon.ownbackup import OwnBackupClient
        from gdpr_daemon.runtime import client_config

        async with OwnBackupClient(client_config(settings)) as client:
            await client.backup_now(1001)
        try:
            return await verify_with_peak(db_url, url, rid)
        finally:
            SECRETS_SEEN.update(sim.state.credentials.issued)


@pytest.mark.slow
async def test_million_records_in_flat_memory(pg, db_url) -> None:  # type: ignore[no-untyped-def]
    """Verifying a forget against a 1,000,000-record Contact section reads every record (the forgotten
    one is gone) and peaks at less than 40 MB above the same verification of 10,000 records."""
    small, small_peak = await run_size(10_000, pg, db_url)
    large, large_peak = await run_size(1_000_000, pg, db_url)
    assert small["verified"] and large["verified"], (small, large)
    # Every record read: all but the forgotten one are in the file.
    assert (small["records_read"], large["records_read"]) == (9_999, 999_999)
    print(f"peak RSS of requests verify: {small_peak / 1024:.1f} MiB for 10,000 records, "
          f"{large_peak / 1024:.1f} MiB for 1,000,000")
    assert large_peak - small_peak < FLAT_BOUND_KIB, (small_peak, large_peak)
