"""Bad input gets a clear error and disturbs nothing else (the rows of docs/bad-input.md)."""

from __future__ import annotations

import os

import asyncpg
import pytest

from tests.helpers import SIM_PASSWORD, insert_forget
from tests.test_cli import cli

COLUMNS = "request_type, service_id, table_name, record_id, field, value, comment, external_ref"
INSERT = f"INSERT INTO gdpr_requests ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
GOOD = ("forget", 1001, "Contact", "003A", None, None, None, None)


def row(**change: object) -> tuple[object, ...]:
    names = [c.strip() for c in COLUMNS.split(",")]
    return tuple(change.get(n, v) for n, v in zip(names, GOOD, strict=True))


# Refused by a CHECK constraint not already covered by tests/submit/test_schema.py.
REFUSED = [
    ("negative service id", row(service_id=-5), "service_id_is_positive"),
    ("empty table_name", row(table_name=""), "table_name_not_blank"),
    ("tab-only record_id", row(record_id="\t"), "record_id_no_control_characters"),
    ("control character in field", row(request_type="rectify", field="Em\x1bail", value="x"), "field_no_control_characters"),
    ("control character in external_ref", row(external_ref="DSR\r1"), "external_ref_no_control_characters"),
    ("blank external_ref", row(external_ref="  "), "external_ref_not_blank"),
    ("table_name too long", row(table_name="T" * 256), "table_name_at_most_255_characters"),
    ("field too long", row(request_type="rectify", field="F" * 256, value="x"), "field_at_most_255_characters"),
    ("external_ref too long", row(external_ref="R" * 256), "external_ref_at_most_255_characters"),
    ("comment too long", row(comment="c" * 4001), "comment_at_most_4000_characters"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "values", "constraint"), REFUSED, ids=[c[0] for c in REFUSED])
async def test_refused_at_insert(pg, case, values, constraint):
    """The database refuses the row by a named constraint; the rows already there stay as they were."""
    await pg.execute(INSERT, *GOOD)
    with pytest.raises(asyncpg.CheckViolationError) as err:
        await pg.execute(INSERT, *values)
    assert err.value.constraint_name == constraint
    assert await pg.fetchval("SELECT count(*) FROM gdpr_requests") == 1


@pytest.mark.parametrize(
    ("case", "sql", "error"),
    [
        ("service id not a number", "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id) "
         "VALUES ('forget', 'abc', 'Contact', '003A')", asyncpg.InvalidTextRepresentationError),
        ("service id beyond integer range", "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id) "
         "VALUES ('forget', 99999999999, 'Contact', '003A')", asyncpg.NumericValueOutOfRangeError),
        ("unknown status", "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, status) "
         "VALUES ('forget', 1001, 'Contact', '003A', 'done')", asyncpg.CheckViolationError),
    ],
)  # fmt: skip
async def test_malformed_values_refused(pg, case, sql, error):
    """Values of the wrong type or shape are refused by Postgres itself, and nothing is inserted."""
    with pytest.raises(error):
        await pg.execute(sql)
    assert await pg.fetchval("SELECT count(*) FROM gdpr_requests") == 0


@pytest.mark.parametrize("column", ["value", "comment", "external_ref"])
async def test_nul_in_any_text_refused(pg, column):
    """A NUL character in a value, comment or external_ref is refused: Postgres text cannot hold it."""
    values = dict(zip([c.strip() for c in COLUMNS.split(",")], row(request_type="rectify", field="Email", value="x"), strict=True))
    values[column] = "a\x00b"
    with pytest.raises((asyncpg.CharacterNotInRepertoireError, asyncpg.DataError, ValueError)):
        await pg.execute(INSERT, *values.values())
    assert await pg.fetchval("SELECT count(*) FROM gdpr_requests") == 0


# Accepted by the database, refused by the daemon before any call: (values, words of last_error).
REJECTED = [
    (("forget", 1001, "Contact", " 003A"), "leading or trailing white space"),
    (("forget", 1001, "Contact", "003A\u00a0"), "leading or trailing white space"),
    (("forget", 1001, "Contact Person", "003B"), "not a Salesforce object API name"),
    (("forget", 1001, "1Contact", "003C"), "not a Salesforce object API name"),
    (("forget", 4242, "Contact", "003D"), "Service 4242 is not one of the OwnBackup account's services"),
]


async def test_daemon_rejects_each_with_one_sentence_and_submits_the_rest(daemon_for, sim, settings_for, engine, pg):
    """Rows the database accepts but the daemon cannot send end rejected, each with one sentence; the good ones are sent."""
    bad = {}
    for values, words in REJECTED:
        rid = await pg.fetchval(
            "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id) VALUES ($1, $2, $3, $4) RETURNING id",
            *values,
        )  # fmt: skip
        bad[rid] = words
    rid = await pg.fetchval(
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, field, value) "
        "VALUES ('rectify', 1001, 'Contact', '003E', 'E-mail', 'PII-VALUE-x') RETURNING id"
    )
    bad[rid] = "not a Salesforce field API name"
    good = await insert_forget(pg, 1001, 3, prefix="GOOD")
    report = await (await daemon_for(settings_for())).run_once()
    assert (report.rejected, report.submitted) == (len(bad), 3)
    for rid, words in bad.items():
        r = await pg.fetchrow("SELECT status, last_error, attempts FROM gdpr_requests WHERE id = $1", rid)
        assert r["status"] == "rejected" and words in r["last_error"], r["last_error"]
        assert r["last_error"].count(". ") <= 1 and "\n" not in r["last_error"] and "PII-VALUE" not in r["last_error"]
    assert {c.record_id for c in sim.state.gdpr_calls} == {f"GOOD{n:012d}" for n in (1, 2, 3)}
    assert set(await pg.fetch("SELECT DISTINCT status FROM gdpr_requests WHERE id = ANY($1)", good)) == {("submitted",)}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--record-id", "   "], "refused: record_id is empty or only white space"),
        (["--record-id", "003\x07A"], "refused: record_id contains a control character"),
        (["--record-id", "003A", "--service-id", "0"], "refused: service_id must be a positive number"),
    ],
)
async def test_cli_submit_shows_one_line(db_url, sim_url, pg, args, needle):
    """`gdpr-daemon submit` with a bad value exits 1 with one line saying what is wrong; nothing is inserted."""
    base = ["submit", "forget", "--service-id", "1001", "--table", "Contact"]
    if "--service-id" in args:
        base = ["submit", "forget", "--table", "Contact"]
    code, _, err = await cli(db_url, sim_url, *base, *args)
    assert code == 1 and needle in err and len(err.strip().splitlines()) == 1, err
    assert await pg.fetchval("SELECT count(*) FROM gdpr_requests") == 0


async def test_cli_duplicate_external_ref(db_url, sim_url, pg):
    """A second request with the same external_ref exits 1 naming the reason; the first stays."""
    args = ["submit", "forget", "--service-id", "1001", "--table", "Contact", "--external-ref", "DSR-9"]
    assert (await cli(db_url, sim_url, *args, "--record-id", "003A"))[0] == 0
    code, _, err = await cli(db_url, sim_url, *args, "--record-id", "003B")
    assert code == 1 and "external_ref is already used by another request" in err
    assert await pg.fetchval("SELECT count(*) FROM gdpr_requests") == 1


def run_main(monkeypatch: pytest.MonkeyPatch, argv: list[str], **env: str) -> int:
    """`gdpr-daemon ARGV` in this process, with only the given GDPR_DAEMON_* variables."""
    from gdpr_daemon.cli import main

    for key in [k for k in os.environ if k.startswith("GDPR_DAEMON_")]:
        monkeypatch.delenv(key)
    base = {"GDPR_DAEMON_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
            "GDPR_DAEMON_OWNBACKUP_URL": "http://127.0.0.1:1", "GDPR_DAEMON_OWNBACKUP_EMAIL": "dpo@example.com",
            "GDPR_DAEMON_OWNBACKUP_PASSWORD": SIM_PASSWORD}  # fmt: skip
    for key, value in {**base, **env}.items():
        monkeypatch.setenv(key, value)
    return main(argv)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"GDPR_DAEMON_OWNBACKUP_PASSWORD_FILE": "/nonexistent/pw"}, "ownbackup_password_file (GDPR_DAEMON_OWNBACKUP_PASSWORD_FILE): cannot read"),
        ({"GDPR_DAEMON_RETENTION_DAYS": "-1"}, "retention_days (GDPR_DAEMON_RETENTION_DAYS)"),
        ({"GDPR_DAEMON_QUEUE_LEASE_SECONDS": "600"}, "queue_lease_seconds (GDPR_DAEMON_QUEUE_LEASE_SECONDS)"),
        ({"GDPR_DAEMON_CONFIG": "/nonexistent/gdpr.toml"}, "config file /nonexistent/gdpr.toml does not exist"),
        ({"GDPR_DAEMON_OWNBACKUP_AUTH": "kerberos"}, "ownbackup_auth (GDPR_DAEMON_OWNBACKUP_AUTH)"),
        ({"GDPR_DAEMON_OWNBACKUP_EMAIL": ""}, "ownbackup_email (GDPR_DAEMON_OWNBACKUP_EMAIL) is not set"),
    ],
)  # fmt: skip
def test_more_bad_configuration_exits_2(monkeypatch, capsys, keep_suite_logging, env, needle):
    """More bad settings: exit 2 with one line naming the key and why, and no secret in it."""
    assert run_main(monkeypatch, ["run", "--once"], **env) == 2
    out, err = capsys.readouterr()
    assert needle in err and len(err.strip().splitlines()) == 1, err
    assert SIM_PASSWORD not in err + out


def test_config_file_not_toml(monkeypatch, capsys, keep_suite_logging, tmp_path):
    """A configuration file that is not TOML exits 2 naming the file."""
    cfg = tmp_path / "gdpr.toml"
    cfg.write_text("[queue\nconcurrency = 4\n")
    assert run_main(monkeypatch, ["--config", str(cfg), "run", "--once"]) == 2
    err = capsys.readouterr().err
    assert f"config file {cfg} is not valid TOML" in err and len(err.strip().splitlines()) == 1
