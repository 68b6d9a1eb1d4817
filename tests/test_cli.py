"""The command line as a user runs it: real subprocesses, real database, the simulator."""

from __future__ import annotations

import json

import pytest

from tests.helpers import SIM_PASSWORD, pii, run_cli

cli = run_cli  # `gdpr-daemon ARGS` in a subprocess: (exit status, stdout, stderr)


COMMANDS = [
    [], ["migrate"], ["run"], ["submit", "forget"], ["submit", "rectify"], ["requests", "list"],
    ["requests", "show"], ["requests", "retry"], ["requests", "cancel"], ["status"], ["check"], ["demo"], ["simulate"],
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) or "top" for c in COMMANDS])
async def test_help_explains_each_command(command, db_url, sim_url):
    """Every command answers --help with a usage line and its options, exit 0."""
    code, out, _ = await cli(db_url, sim_url, *command, "--help")
    assert code == 0 and out.startswith("usage: gdpr-daemon") and "options:" in out


async def test_submit_list_show_retry_cancel(sim, db_url, sim_url, pg):
    """A DPO's round trip: submit, list, show with history, cancel, and refusals with exit 1."""
    code, out, _ = await cli(db_url, sim_url, "submit", "forget", "--service-id", "1001", "--table", "Contact",
                             "--record-id", "0035g00000AAA", "--external-ref", "CASE-7", "--actor", "alice")  # fmt: skip
    assert code == 0 and "request 1 enqueued" in out
    value = pii("cli")
    code, out, _ = await cli(db_url, sim_url, "submit", "rectify", "--service-id", "1002", "--table", "Contact",
                             "--record-id", "0035g00000BBB", "--field", "Email", "--value", "-",
                             stdin=(value + "\n").encode())  # fmt: skip
    assert code == 0
    assert await pg.fetchval("SELECT value FROM gdpr_requests WHERE id = 2") == value

    code, out, _ = await cli(db_url, sim_url, "requests", "list", "--format", "json")
    rows = json.loads(out)
    assert [r["id"] for r in rows] == [2, 1] and all("value" not in r for r in rows)
    assert value not in out

    code, out, _ = await cli(db_url, sim_url, "requests", "show", "1")
    assert code == 0 and "received forget request" in out and "alice" in out

    code, out, err = await cli(db_url, sim_url, "requests", "retry", "1")
    assert code == 1 and "pending already" in err

    code, out, _ = await cli(db_url, sim_url, "requests", "cancel", "1", "--reason", "duplicate case")
    assert code == 0
    assert await pg.fetchval("SELECT status FROM gdpr_requests WHERE id = 1") == "cancelled"
    assert await pg.fetchval("SELECT detail FROM gdpr_request_log WHERE request_id = 1 ORDER BY id DESC LIMIT 1") == (
        "cancelled by the DPO: duplicate case"
    )

    code, out, err = await cli(db_url, sim_url, "submit", "forget", "--service-id", "1001", "--table", "Contact",
                               "--record-id", "0035g00000CCC", "--external-ref", "CASE-7")  # fmt: skip
    assert code == 1 and "external_ref is already used" in err and "0035g00000CCC" not in err


async def test_run_once_then_retry(sim, db_url, sim_url, pg):
    """`run --once` submits what is due and reports a rejection without failing; retry re-queues it."""
    await pg.execute("INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id) VALUES "
                     "('forget', 1001, 'Contact', 'a'), ('forget', 9999, 'Contact', 'b')")  # fmt: skip
    code, out, _ = await cli(db_url, sim_url, "run", "--once")
    assert code == 0 and "1 submitted" in out and "1 rejected" in out
    code, out, _ = await cli(db_url, sim_url, "requests", "retry", "2")
    assert code == 0
    assert await pg.fetchval("SELECT status FROM gdpr_requests WHERE id = 2") == "pending"


async def test_rectify_without_value_refused(db_url, sim_url, pg):
    """An empty record id is refused at INSERT with a one-sentence reason and exit 1."""
    code, _, err = await cli(db_url, sim_url, "submit", "forget", "--service-id", "1001", "--table", "Contact",
                             "--record-id", "   ")  # fmt: skip
    assert code == 1 and "record_id is empty or only white space" in err
    assert len(err.strip().splitlines()) == 1
    assert await pg.fetchval("SELECT count(*) FROM gdpr_requests") == 0


async def test_migrate_is_idempotent(db_url, sim_url):
    """`migrate` on a current schema says so and exits 0."""
    code, out, _ = await cli(db_url, sim_url, "migrate")
    assert code == 0 and "is current" in out


async def test_check_all_ok(sim, db_url, sim_url):
    """`check` prints OK for config, database, schema, login and services, exit 0."""
    code, out, _ = await cli(db_url, sim_url, "check")
    assert code == 0, out
    for name in ("config", "database", "schema", "api login", "services"):
        assert any(line.startswith("OK") and name in line for line in out.splitlines()), (name, out)
    assert SIM_PASSWORD not in out


async def test_check_wrong_password(sim, db_url, sim_url):
    """`check` with a wrong password fails the login line with the API's reason, exit 1."""
    code, out, _ = await cli(db_url, sim_url, "check", GDPR_DAEMON_OWNBACKUP_PASSWORD="wrong-password-123")
    assert code == 1
    line = next(ln for ln in out.splitlines() if "api login" in ln)
    assert line.startswith("FAIL") and "refused" in line.lower()


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"GDPR_DAEMON_OWNBACKUP_REGION": "mars1", "GDPR_DAEMON_OWNBACKUP_URL": ""}, "ownbackup_region (GDPR_DAEMON_OWNBACKUP_REGION): unknown region 'mars1'"),
        ({"GDPR_DAEMON_QUEUE_CONCURRENCY": "lots"}, "queue_concurrency (GDPR_DAEMON_QUEUE_CONCURRENCY)"),
        ({"GDPR_DAEMON_OWNBACKUP_URL": "ftp://x"}, "ownbackup_url (GDPR_DAEMON_OWNBACKUP_URL): must be an http(s) URL"),
        ({"GDPR_DAEMON_OWNBACKUP_URL": "http://backup.example.com"}, "uses plain http"),
        ({"GDPR_DAEMON_OWNBACKUP_PASSWORD": ""}, "ownbackup_password"),
        ({"GDPR_DAEMON_DATABASE_URL": "mysql://x"}, "database_url (GDPR_DAEMON_DATABASE_URL): must start with postgresql://"),
    ],
)
async def test_bad_configuration_exits_2_with_one_line(db_url, sim_url, env, needle):
    """A bad configuration value exits 2 with one line naming the key and why."""
    code, out, err = await cli(db_url, sim_url, "run", "--once", **env)
    assert code == 2, (out, err)
    assert needle in err and len(err.strip().splitlines()) == 1, err


async def test_unknown_key_in_config_file(db_url, sim_url, tmp_path):
    """An unknown key in the TOML file exits 2 naming the key."""
    cfg = tmp_path / "gdpr.toml"
    cfg.write_text("[queue]\nconcurency = 4\n")
    code, _, err = await cli(db_url, sim_url, "--config", str(cfg), "run", "--once")
    assert code == 2 and "unknown configuration key 'queue_concurency'" in err
