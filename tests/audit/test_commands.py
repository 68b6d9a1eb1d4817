"""``events pull`` and ``report`` on the command line, as real processes."""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys
from datetime import UTC, datetime

import pytest

from gdpr_daemon import cli
from gdpr_daemon.commands import events, report
from gdpr_daemon.commands.report import parse_since, parse_until
from gdpr_daemon.simulator import FaultConfig
from tests.helpers import subprocess_env, wait_until

from .reportdata import insert_known_requests, read_html


async def gdpr_daemon(db_url, sim_url, log_file, *args: str) -> asyncio.subprocess.Process:
    """Start ``gdpr-daemon ARGS`` (with the audit commands wired in); stderr goes to the scanned log."""
    fh = log_file.open("ab")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.audit.run_command", *args,
        env=subprocess_env(db_url, sim_url), stdout=asyncio.subprocess.PIPE, stderr=fh,
    )  # fmt: skip
    fh.close()
    return proc


async def run(db_url, sim_url, log_file, *args: str, timeout: float = 60) -> tuple[int, str]:
    proc = await gdpr_daemon(db_url, sim_url, log_file, *args)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode, out.decode()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gdpr-daemon")
    p.add_argument("--config")
    p.add_argument("--log-format")
    sub = p.add_subparsers(dest="command", required=True)
    events.add_parsers(sub)
    report.add_parsers(sub)
    return p


def test_every_option_has_help():
    """Each option of events pull, report audit and report requests carries a help text."""
    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    commands = [sub.choices["events"], sub.choices["report"]]
    leaves = []
    for command in commands:
        (inner,) = [a for a in command._actions if isinstance(a, argparse._SubParsersAction)]
        leaves += inner.choices.values()
    assert len(leaves) == 3
    for leaf in leaves:
        options = [a for a in leaf._actions if a.option_strings and a.dest != "help"]
        assert options and all(a.help and len(a.help) > 15 for a in options), leaf.prog


def test_dates_accept_a_day_or_iso_8601():
    """--since 2026-01-31 starts that day, --until 2026-01-31 includes it; full ISO times are read as given, in UTC."""
    assert parse_since("2026-01-31") == datetime(2026, 1, 31, tzinfo=UTC)
    assert parse_until("2026-01-31") == datetime(2026, 2, 1, tzinfo=UTC)
    assert parse_since("2026-01-31T13:00:00+01:00") == datetime(2026, 1, 31, 12, tzinfo=UTC)
    assert parse_until("2026-01-31T12:00:00Z") == datetime(2026, 1, 31, 12, tzinfo=UTC)
    assert parse_since("2026-01-31T12:00") == datetime(2026, 1, 31, 12, tzinfo=UTC)
    for bad in ("31/01/2026", "2026-02-30", "yesterday", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="is not a date"):
            parse_since(bad)


async def test_report_command_writes_the_file_and_a_summary_line(pg, db_url, sim_url, log_file, tmp_path):
    """`report requests --output F.html` writes a whole HTML file and prints one line with the counts."""
    await insert_known_requests(pg)
    target = tmp_path / "requests.html"
    code, out = await run(db_url, sim_url, log_file, "report", "requests", "--since", "2026-02-01",
                          "--until", "2026-03-31", "--output", str(target))  # fmt: skip
    assert code == 0
    assert out.strip() == f"report requests: 6 requests (3 overdue, 1 failed) written to {target} (html)"
    page = read_html(target.read_text(encoding="utf-8"))
    assert page.figures["requests"] == "6"
    assert [p.name for p in tmp_path.iterdir()] == ["requests.html"], "no partial file left beside it"


async def test_report_usage_errors_exit_2(tmp_path, capsys):
    """A bad date, an empty period or a missing directory is a usage error (exit 2) and writes nothing."""
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(["report", "audit", "--since", "2026-13-01", "--until", "2026-12-31"])
    assert exc.value.code == 2 and "is not a date" in capsys.readouterr().err
    for args in (["--since", "2026-05-01", "--until", "2026-04-01"],
                 ["--since", "2026-01-01", "--until", "2026-12-31", "--output", str(tmp_path / "no" / "r.csv")],
                 ["--since", "2026-01-01", "--until", "2026-12-31", "--format", "json", "--bom"]):  # fmt: skip
        assert cli.main(["report", "audit", *args]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.startswith("gdpr-daemon: ")
    assert list(tmp_path.iterdir()) == []


async def test_events_pull_command(sim, db_url, sim_url, log_file, pg):
    """`events pull` stores the history and prints its counts; run again it stores only what is new."""
    sim.state.add_events(1500)
    code, out = await run(db_url, sim_url, log_file, "events", "pull")
    assert code == 0
    last = sim.state.events.last_event_id
    assert re.fullmatch(rf"events pull: 2 pages, {last} events stored, 0 already stored, 0 quarantined, "
                        rf"0 requests confirmed; cursor {last}\n", out)  # fmt: skip
    code, out = await run(db_url, sim_url, log_file, "events", "pull")
    assert code == 0  # its own login is the one new event
    assert out.startswith("events pull: 1 page, 1 events stored, 0 already stored") and f"cursor {last + 1}" in out
    assert await pg.fetchval("SELECT count(*) FROM audit_events") == await pg.fetchval("SELECT max(event_id) FROM audit_events")


async def test_events_pull_refuses_another_account(sim, db_url, sim_url, log_file, pg):
    """`events pull` against a database of another account exits 2 with the reason, storing nothing."""
    await pg.execute("INSERT INTO event_cursors (account, last_event_id) VALUES ('https://uk1.owndata.com', 9)")
    code, _out = await run(db_url, sim_url, log_file, "events", "pull")
    assert code == 2
    assert "https://uk1.owndata.com" in log_file.read_text()
    assert await pg.fetchval("SELECT count(*) FROM audit_events") == 0


@pytest.mark.slow
async def test_killed_pull_resumes_without_loss_or_duplicates(sim, db_url, sim_url, log_file, pg):
    """SIGKILL in the middle of a pull, then pull again: every event is stored exactly once."""
    sim.state.add_events(40_000)
    sim.faults = FaultConfig(latency_ms=40)
    proc = await gdpr_daemon(db_url, sim_url, log_file, "events", "pull")
    try:
        await wait_until(lambda: pg.fetchval("SELECT coalesce(max(last_event_id), 0) >= 6000 FROM event_cursors"),
                         timeout=60, what="a few pages stored")  # fmt: skip
    finally:
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 10)
    assert proc.returncode == -signal.SIGKILL
    at_kill = await pg.fetchval("SELECT last_event_id FROM event_cursors")
    assert 6000 <= at_kill < 40_000, "killed in the middle"
    assert await pg.fetchval("SELECT count(*) FROM audit_events") == at_kill, "the cursor covers exactly what is stored"

    sim.faults = FaultConfig()
    code, out = await run(db_url, sim_url, log_file, "events", "pull")
    assert code == 0 and "skipped" not in out, "the killed process's lock went with its connection"
    last = sim.state.events.last_event_id
    ids = [r[0] for r in await pg.fetch("SELECT event_id FROM audit_events ORDER BY event_id")]
    assert ids == list(range(1, last + 1))
    assert await pg.fetchval("SELECT last_event_id FROM event_cursors") == last


@pytest.mark.slow
async def test_two_pull_processes_together(sim, db_url, sim_url, log_file, pg):
    """Two `events pull` processes started together both exit 0, and every event is stored once."""
    sim.state.add_events(8000)
    sim.faults = FaultConfig(latency_ms=30)
    procs = [await gdpr_daemon(db_url, sim_url, log_file, "events", "pull") for _ in range(2)]
    outs = [(await asyncio.wait_for(p.communicate(), 60))[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    stored = [int(m.group(1)) if (m := re.search(r"(\d+) events stored", o)) else 0 for o in outs]
    last = sim.state.events.last_event_id
    assert sum(stored) >= 8000 and all("skipped" in o or "events stored" in o for o in outs)
    ids = [r[0] for r in await pg.fetch("SELECT event_id FROM audit_events ORDER BY event_id")]
    assert ids == list(range(1, last + 1))
