"""`gdpr-daemon requests verify` end to end: real Postgres, the real queue and client, the simulator's
backups over loopback, the command run as a user runs it."""

from __future__ import annotations

import json
import re

import asyncpg

from gdpr_daemon.db.stats import status_figures
from tests.helpers import pii, run_cli
from tests.verify.conftest import (
    ERASE_OLD_AFTER,
    PRODUCTION,
    back_up_now,
    contact,
    enter_forget,
    enter_rectify,
    history,
    submit_all,
)

VERIFIED = re.compile(r"^request (\d+): verified: record absent from backup (\d+) \(completed \S+Z\) \([\d,]+ records")


async def test_forget_then_backup_verifies_absent(pg: asyncpg.Connection, engine, vsim, vsettings, db_url) -> None:  # type: ignore[no-untyped-def]
    """A forget submitted, then a backup: verify reads that backup's CSV, finds no record, exits 0 and
    records "verified: record absent from backup N (completed T)" in the request's history."""
    settings = vsettings()
    rid = await enter_forget(pg, contact(5))
    await submit_all(settings)
    backup_id = await back_up_now(settings, vsim)
    code, out, err = await run_cli(db_url, vsim.url, "requests", "verify", str(rid), "--actor", "dpo-anna")
    assert code == 0, (out, err)
    m = VERIFIED.match(out)
    assert m and int(m.group(1)) == rid and int(m.group(2)) == backup_id, out
    last = (await history(pg, rid))[-1]
    assert (last["from_status"], last["to_status"], last["actor"]) == ("submitted", "submitted", "dpo-anna")
    assert last["detail"].startswith(f"verified: record absent from backup {backup_id} (completed ")
    assert contact(5) not in out + err + last["detail"], "the record id is never printed or recorded"
    figures = await status_figures(engine, unconfirmed_after_hours=24)
    assert (figures.verified, figures.still_present) == (1, 0)


async def test_backup_running_at_submission_still_holds_the_record(pg, engine, vsim, vsettings, db_url) -> None:  # type: ignore[no-untyped-def]
    """A backup started before the forget and completed after it still holds the record: verify says
    "still present in backup N" (exit 1, recorded); after the next backup it says verified."""
    settings = vsettings()
    rid = await enter_forget(pg, contact(7))
    running = await back_up_now(settings, vsim, complete=False)
    await submit_all(settings)
    vsim.clock.advance(10)  # the running backup completes, after the submission
    code, out, _ = await run_cli(db_url, vsim.url, "requests", "verify", str(rid))
    assert code == 1 and f"request {rid}: still present in backup {running} (completed " in out, out
    assert (await history(pg, rid))[-1]["detail"].startswith(f"still present in backup {running} (completed ")
    figures = await status_figures(engine, unconfirmed_after_hours=24)
    assert (figures.verified, figures.still_present) == (0, 1)

    later = await back_up_now(settings, vsim)
    code, out, _ = await run_cli(db_url, vsim.url, "requests", "verify", str(rid))
    assert code == 0 and f"verified: record absent from backup {later} " in out, out
    figures = await status_figures(engine, unconfirmed_after_hours=24)
    assert (figures.verified, figures.still_present) == (1, 0), "the latest verification counts"


async def test_old_backups_lose_the_record_after_the_delay(pg, vsim, vsettings, db_url) -> None:  # type: ignore[no-untyped-def]
    """The simulator erases from backups started before the forget once its delay has passed: the
    same backup that held the record verifies absent afterwards."""
    settings = vsettings()
    rid = await enter_forget(pg, contact(8))
    running = await back_up_now(settings, vsim, complete=False)
    await submit_all(settings)
    vsim.clock.advance(10)
    code, out, _ = await run_cli(db_url, vsim.url, "requests", "verify", str(rid))
    assert code == 1 and "still present" in out
    vsim.clock.advance(ERASE_OLD_AFTER)
    code, out, _ = await run_cli(db_url, vsim.url, "requests", "verify", str(rid))
    assert code == 0 and f"verified: record absent from backup {running} " in out, out


async def test_rectify_verified_by_digest_after_the_value_is_erased(pg, vsim, vsettings, db_url) -> None:  # type: ignore[no-untyped-def]
    """A rectify's value is erased at submission; verify compares the SHA-256 of the record's Email cell
    in the later backup with value_sha256, and says so without showing the value."""
    settings = vsettings()
    value = pii("rectify") + "@example.org"
    rid = await enter_rectify(pg, contact(9), value)
    running = await back_up_now(settings, vsim, complete=False)
    await submit_all(settings)
    assert await pg.fetchval("SELECT value IS NULL AND value_sha256 IS NOT NULL FROM gdpr_requests WHERE id = $1", rid)
    vsim.clock.advance(10)
    code, out, _ = await run_cli(db_url, vsim.url, "requests", "verify", str(rid))
    assert code == 1, out
    assert f"still present in backup {running} (completed " in out and "Email does not hold the new value" in out
    later = await back_up_now(settings, vsim)
    code, out, err = await run_cli(db_url, vsim.url, "requests", "verify", str(rid), "--format", "json")
    assert code == 0, (out, err)
    (result,) = json.loads(out)
    assert result["verified"] and result["recorded"] and result["backup_id"] == later
    assert result["sentence"].startswith(f"verified: new value of Email in backup {later} (completed ")
    assert value not in out + err and value not in str([r["detail"] for r in await history(pg, rid)])


async def test_not_yet_verifiable_and_refusals(pg, vsim, vsettings, db_url) -> None:  # type: ignore[no-untyped-def]
    """No backup completed after submission: "not yet verifiable", exit 1, nothing recorded; a pending or
    unknown request is refused in one sentence; several ids are answered one line each."""
    settings = vsettings()
    submitted = await enter_forget(pg, contact(11))
    await submit_all(settings)
    pending = await enter_forget(pg, contact(12))
    before = len(await history(pg, submitted))
    code, out, err = await run_cli(db_url, vsim.url, "requests", "verify", str(submitted), str(pending), "999999")
    assert code == 1, err
    lines = out.splitlines()
    assert len(lines) == 3, out
    assert lines[0] == (f"request {submitted}: not yet verifiable: no backup of service {PRODUCTION} completed after "
                        f"submission ({lines[0].split('(')[1].split(')')[0]})")  # fmt: skip
    assert lines[1] == f"request {pending}: not verified: request {pending} is pending, not submitted: there is " \
        "nothing in the backups to verify yet"
    assert lines[2] == "request 999999: there is no request 999999"
    assert len(await history(pg, submitted)) == before, "not yet verifiable is not recorded"


async def test_verified_counts_in_status_and_report(pg, engine, vsim, vsettings, db_url) -> None:  # type: ignore[no-untyped-def]
    """`status` and the requests report count verified and still-present requests from the history."""
    import io
    from datetime import UTC, datetime, timedelta

    from gdpr_daemon.audit.reports.requests import write_requests_report

    settings = vsettings()
    held = await enter_forget(pg, contact(20))
    await back_up_now(settings, vsim, complete=False)
    await submit_all(settings)
    vsim.clock.advance(10)
    assert (await run_cli(db_url, vsim.url, "requests", "verify", str(held)))[0] == 1
    erased = await enter_forget(pg, contact(21))
    await submit_all(settings)
    await back_up_now(settings, vsim)
    assert (await run_cli(db_url, vsim.url, "requests", "verify", str(erased)))[0] == 0

    code, out, _ = await run_cli(db_url, vsim.url, "status", "--format", "json")
    got = json.loads(out)
    assert code == 0 and (got["submitted_verified"], got["submitted_still_present"]) == (1, 1)
    code, out, _ = await run_cli(db_url, vsim.url, "status")
    line = next(x for x in out.splitlines() if x.startswith("backups:"))
    assert "1 submitted request verified" in line and "1 still present" in line

    buf = io.StringIO()
    now = datetime.now(UTC)
    await write_requests_report(engine, buf, "json", since=now - timedelta(days=1), until=now + timedelta(days=1))
    summary = json.loads(buf.getvalue())["summary"]
    assert (summary["verified"], summary["still_present"]) == (1, 1)


async def test_purged_record_id_is_still_verified_by_its_digest(pg, engine, vsim, vsettings, db_url) -> None:  # type: ignore[no-untyped-def]
    """After the retention purge replaced the record id by its SHA-256, verify still finds (or misses)
    the record by comparing digests of the Id column."""
    from gdpr_daemon.db.integrity import purge

    settings = vsettings()
    held = await enter_forget(pg, contact(50))
    await back_up_now(settings, vsim, complete=False)
    await submit_all(settings)
    vsim.clock.advance(10)
    await pg.execute("UPDATE gdpr_requests SET updated_at = now() - interval '400 days' WHERE id = $1", held)
    result = await purge(engine, retention_days=365, history_days=0, actor="test")
    assert result.requests_purged == 1
    assert await pg.fetchval("SELECT record_id FROM gdpr_requests WHERE id = $1", held) == "purged"
    code, out, _ = await run_cli(db_url, vsim.url, "requests", "verify", str(held))
    assert code == 1 and f"request {held}: still present in backup " in out, out
    later = await back_up_now(settings, vsim)
    code, out, _ = await run_cli(db_url, vsim.url, "requests", "verify", str(held))
    assert code == 0 and f"verified: record absent from backup {later} " in out, out
