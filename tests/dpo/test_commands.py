"""The DPO's commands as a user runs them: services, backups, submit --all-services, list, approve, extend."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tests.dpo.support import cli

DPO_COMMANDS = [["services"], ["backups"], ["import"], ["requests", "approve"], ["requests", "extend"]]


@pytest.mark.parametrize("command", DPO_COMMANDS, ids=[" ".join(c) for c in DPO_COMMANDS])
async def test_help(command, run):
    """Each new command answers --help with its usage, exit 0."""
    code, out, _ = await run(*command, "--help")
    assert code == 0 and out.startswith("usage: gdpr-daemon") and "options:" in out


async def test_services_and_backups(sim, db_url, sim_url, run):
    """`services` lists every service with its state; `backups N` its backups; an unknown service is exit 1."""
    code, out, _ = await cli(db_url, sim_url, "services")
    assert code == 0
    assert out.splitlines()[0].split() == ["ID", "NAME", "PROVIDER", "STATUS", "ENABLED", "ARCHIVED", "LAST", "BACKUP"]
    assert "Acme Developer Sandbox (legacy)" in out and "DISABLED" in out and "ARCHIVED" in out
    assert "still hold backups with personal data" in out
    code, out, _ = await run("services", "--format", "json")
    listed = json.loads(out)
    assert [s["id"] for s in listed] == list(range(1001, 1007))
    assert listed[5]["archived"] is True and listed[4]["enabled"] is False
    code, out, _ = await run("backups", "1001", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) >= 1 and all(r["status"] for r in rows)
    code, _, err = await run("backups", "4711")
    assert code == 1 and "4711" in err and "not found" in err.lower()


async def test_forget_everywhere_with_four_eyes(sim, db_url, sim_url, pg, run):
    """--all-services enters one request per service under one ref; with four eyes they wait for a second person."""
    four_eyes = {"GDPR_DAEMON_INTAKE_REQUIRE_APPROVAL": "true"}
    code, out, err = await cli(db_url, sim_url, "submit", "forget", "--all-services", "--table", "Contact",
                               "--record-id", "0035g00000EVERY", "--external-ref", "DSR-42", "--actor", "alice",
                               **four_eyes)  # fmt: skip
    assert code == 0, err
    assert "6 requests enqueued (forget), one per service of the account: 1001 Acme Production" in out
    assert "gdpr-daemon requests approve 1-6" in out
    rows = await pg.fetch("SELECT service_id, external_ref, status, requested_by FROM gdpr_requests ORDER BY id")
    assert [(r["service_id"], r["external_ref"]) for r in rows] == [(s, f"DSR-42/{s}") for s in range(1001, 1007)]
    assert {(r["status"], r["requested_by"]) for r in rows} == {("awaiting_approval", "alice")}

    code, _, err = await run("requests", "approve", "1-6", "--actor", "alice")
    assert code == 1 and "request 1 was entered by alice; four eyes need a different person" in err
    assert err.strip().endswith("Nothing was approved.")
    code, out, _ = await run("requests", "approve", "1-6", "--actor", "bob")
    assert code == 0 and "6 requests (1 to 6) approved by bob" in out
    code, out, _ = await run("requests", "list", "--ref", "DSR-42", "--format", "json")
    listed = json.loads(out)
    assert len(listed) == 6 and {(r["status"], r["approved_by"]) for r in listed} == {("pending", "bob")}


async def test_extend_and_list(pg, run):
    """`requests extend` once with a reason; a second time is refused; `list` shows deadlines, age and overdue."""
    await pg.execute(
        "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, received_at, external_ref) "
        "VALUES ('forget', 1001, 'Contact', 'a', now() - interval '3 days', 'FRESH'), "
        "       ('forget', 1002, 'Contact', 'b', now() - interval '50 days', 'LATE')"
    )
    code, out, err = await run("requests", "extend", "1", "--reason", "many records", "--actor", "alice")
    assert code == 0, err
    assert "the deadline of request 1 is now" in out and "Tell the data subject" in out
    code, _, err = await run("requests", "extend", "1", "--reason", "again", "--months", "1")
    assert code == 1 and "extended once already" in err
    code, _, err = await run("requests", "extend", "2", "--reason", "too late")
    assert code == 1 and "GDPR Art. 12(3) allows an extension only within the first month" in err

    code, out, _ = await run("requests", "list")
    lines = out.splitlines()
    assert lines[0].split()[:9] == ["ID", "TYPE", "SERVICE", "STATUS", "RECEIVED", "AGE", "DUE", "DUE", "IN"]
    fresh = next(ln for ln in lines if "FRESH" in ln)
    late = next(ln for ln in lines if "LATE" in ln)
    assert " 3d " in fresh and "(extended)" in fresh and " 50d " in late and "OVERDUE" in late
    code, out, _ = await run("requests", "list", "--due-within", "7d", "--format", "csv")
    assert [r["external_ref"] for r in csv.DictReader(io.StringIO(out))] == ["LATE"]
    code, out, _ = await run("requests", "list", "--overdue", "--format", "json")
    assert [r["external_ref"] for r in json.loads(out)] == ["LATE"]
    code, _, err = await run("requests", "list", "--due-within", "soon")
    assert code == 2 and "'soon' is not a duration like 7d, 36h or 2w" in err


async def test_submit_checks_before_insert(pg, run):
    """`submit` refuses a request the daemon would reject, in one line, before anything is inserted."""
    code, _, err = await run("submit", "forget", "--service-id", "1001", "--table", "Contact Person",
                             "--record-id", "003A")  # fmt: skip
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "table_name 'Contact Person' is not a Salesforce object API name" in err
    assert await pg.fetchval("SELECT count(*) FROM gdpr_requests") == 0
