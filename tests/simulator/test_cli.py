"""The ``gdpr-daemon simulate`` command: its options and a real run until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from gdpr_daemon.simulator import cli

PASSWORD = "Cli-Pa55word-e2e"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_every_option_has_help() -> None:
    """Each simulate option carries a non-empty help text."""
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    options = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    assert len(options) >= 20
    assert all(a.help and len(a.help) > 10 for a in options)


def test_help_reads_in_sections() -> None:
    """Every simulate option sits in a titled group; none is left in the catch-all one."""
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    grouped = {
        a.dest: g.title
        for g in parser._action_groups
        if g.title not in ("options", "optional arguments", "positional arguments")
        for a in g._group_actions
    }
    options = {a.dest for a in parser._actions if a.option_strings and a.dest != "help"}
    assert options == set(grouped)
    assert grouped["host"] == "server" and grouped["email"] == "authentication"
    assert grouped["validate_requests"] == "answer formats and request validation"
    assert sum(title.startswith("faults: ") for title in set(grouped.values())) == 3


def test_credentials_come_from_env_unless_given() -> None:
    """Email and password default to the daemon's variables, then to the built-in ones."""
    env = {"GDPR_DAEMON_OWNBACKUP_EMAIL": "env@example.com",
           "GDPR_DAEMON_OWNBACKUP_PASSWORD": "env-pw"}  # fmt: skip
    sim = cli.build(parse(), env)
    assert (sim.config.email, sim.config.password) == ("env@example.com", "env-pw")
    sim = cli.build(parse("--email", "a@b.c", "--password", "p"), env)
    assert (sim.config.email, sim.config.password) == ("a@b.c", "p")
    sim = cli.build(parse(), {})
    assert (sim.config.email, sim.config.password) == (cli.DEFAULT_EMAIL, cli.DEFAULT_PASSWORD)


def test_fault_options_become_the_fault_config() -> None:
    """Fault flags map onto FaultConfig fields, repeated service ids into sets."""
    args = parse("--rate-5xx", "0.25", "--burst-429", "3", "--retry-after", "0",
                 "--session-expiry-after", "5", "--failing-service", "1002", "1004",
                 "--failing-service", "1003", "--latency-ms", "7", "--seed", "9",
                 "--services", "20", "--events", "1000000", "--date-format", "mixed")  # fmt: skip
    sim = cli.build(args, {})
    f = sim.faults
    assert (f.rate_5xx, f.burst_429, f.retry_after_s) == (0.25, 3, 0)
    assert f.session_expiry_after_calls == 5 and f.failing_services == {1002, 1003, 1004}
    assert f.latency_ms == 7 and f.seed == 9
    assert sim.config.services == 20 and sim.config.synthetic_events == 1_000_000
    assert sim.config.date_format == "mixed"


def test_bad_values_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """An out-of-range value exits 2 with a message instead of a traceback."""
    assert cli.run(parse("--rate-5xx", "2")) == 2
    assert "rate_5xx" in capsys.readouterr().err


async def test_runs_until_sigterm_and_never_prints_the_password(tmp_path: Path) -> None:
    """The command prints one line with the URL (no password), serves, and exits 0 on SIGTERM."""
    stderr = tmp_path / "stderr.log"
    with stderr.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gdpr_daemon.simulator.cli", "--port", "0",
            "--password", PASSWORD, "--events", "10",
            stdout=asyncio.subprocess.PIPE, stderr=err,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), timeout=20)).decode()
            url = line.split("listening on ", 1)[1].split(" ", 1)[0]
            assert "GDPR_DAEMON_OWNBACKUP_URL=" + url in line
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
                login = {"email": "dpo@example.com", "password": PASSWORD}
                async with http.post(url + "/api/auth/v1/login", data=login) as resp:
                    assert resp.status == 200
            proc.send_signal(signal.SIGTERM)
            rest, _ = await asyncio.wait_for(proc.communicate(), timeout=20)
            assert proc.returncode == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    output = line + rest.decode() + stderr.read_text()
    assert PASSWORD not in output
