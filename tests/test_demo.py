"""`gdpr-daemon demo`, the README's first command, run as a user runs it."""

from __future__ import annotations

import asyncio
import os
import random
import re
import sys
import tempfile
from pathlib import Path

from gdpr_daemon.demo import demo_batch


def _embedded_dirs() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("gdpr-pg-*"))


async def test_demo_runs_the_main_job_end_to_end_and_cleans_up():
    """Exit 0; every step shown; submitted, failed and rejected requests; events confirm the
    submissions; an erasure proved in a backup taken after it (and not before); no rectify value
    printed; the embedded Postgres gone afterwards."""
    before = _embedded_dirs()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GDPR_DAEMON_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gdpr_daemon", "demo", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out_b, err_b = await asyncio.wait_for(proc.communicate(), 120)
    out, err = out_b.decode(), err_b.decode()
    assert proc.returncode == 0, err
    steps = [int(m) for m in re.findall(r"^(\d)\. ", out, flags=re.M)]
    assert steps == list(range(1, 10)), steps
    status = out[out.index("9. `gdpr-daemon status`"):]
    counts = {m[0]: int(m[1]) for m in re.findall(r"^\s+(submitted|failed|rejected)\s+(\d+)", status, flags=re.M)}
    assert counts["submitted"] > 0 and counts["failed"] > 0 and counts["rejected"] > 0, counts
    confirmed = re.search(r"(\d+) requests confirmed by their OwnBackup event", out)
    assert confirmed and int(confirmed[1]) == counts["submitted"]
    proof = out[out.index("8. proving the erasure"):out.index("9. `gdpr-daemon status`")]
    assert re.search(r"right after submission:\n\s+request \d+: not yet verifiable: no backup of service 1001 "
                     r"completed after submission", proof), proof
    verified = re.search(r"^\s+request \d+: verified: record absent from backup (\d+) \(completed \S+Z\) "
                         r"\(([\d,]+) records read", proof, flags=re.M)
    assert verified and int(verified[2].replace(",", "")) > 0, proof
    assert f"demo-dpo   verified: record absent from backup {verified[1]} " in proof, "kept in the history"
    assert re.search(r"^\s+backups: 1 submitted request verified", status, flags=re.M), status
    values = [r.value for r in demo_batch(24, random.Random(2026)) if r.value]
    assert values and not [v for v in values if v in out or v in err], "a rectify value was printed"
    assert "embedded Postgres stopped and removed" in out
    assert _embedded_dirs() <= before, "the demo's embedded Postgres left its folder behind"
