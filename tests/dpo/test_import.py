"""`gdpr-daemon import`: all or nothing, every bad line reported with its number, values never echoed."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from gdpr_daemon.dpo.imports import HeaderError, import_csv
from gdpr_daemon.runtime import open_runtime
from tests.dpo.support import HEADER, cli, csv_bytes, forget, rectify, write_csv
from tests.helpers import PII_MARKER, pii

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


async def no_services() -> list[int]:
    raise AssertionError("the service list is fetched only for service_id all")


async def run_import(engine, data: bytes, **kw):
    return await import_csv(engine, io.BytesIO(data), actor="alice", service_ids=kw.pop("service_ids", no_services),
                            now=NOW, **kw)  # fmt: skip


def problems_of(outcome) -> list[str]:
    return [str(p) for p in outcome.problems]


async def test_good_file_imported(engine, pg):
    """Every line becomes a request with its history row, in file order, with who entered it."""
    value = pii("imp")
    data = csv_bytes([
        forget("1001", "0035g00000AAA", "CASE-1"),
        rectify("1002", "0035g00000BBB", "Email", value, "CASE-2"),
        ["forget", "1003", "Lead", "00Q5g00000CCC", "", "", "a comment", "", "2026-03-10", "carol"],
    ])  # fmt: skip
    outcome = await run_import(engine, data)
    assert outcome.problems == [] and outcome.records == 3 and outcome.inserted.inserted == 3
    rows = await pg.fetch("SELECT request_type, service_id, external_ref, value, requested_by, status, "
                          "received_at::date::text AS received FROM gdpr_requests ORDER BY id")  # fmt: skip
    assert [(r["service_id"], r["external_ref"], r["requested_by"], r["status"]) for r in rows] == [
        (1001, "CASE-1", "alice", "pending"), (1002, "CASE-2", "alice", "pending"), (1003, None, "carol", "pending"),
    ]  # fmt: skip
    assert rows[1]["value"] == value and rows[2]["received"] == "2026-03-10"
    assert await pg.fetchval("SELECT count(*) FROM gdpr_request_log WHERE detail LIKE 'received %'") == 3


async def test_every_bad_line_reported_and_nothing_inserted(engine, pg):
    """Each kind of bad line is reported with its number in one sentence; nothing is inserted; no value echoed."""
    await pg.execute("INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, external_ref) "
                     "VALUES ('forget', 1001, 'Contact', 'x', 'TAKEN-1')")  # fmt: skip
    secret = pii("never-shown")
    rows = [
        forget("1001", "0035g00000OK1", "OK-1"),  # line 2: fine
        ["forget", "1001", "Contact"],  # 3: wrong column count
        ["erase", "1001", "Contact", "003X", "", "", "", "", "", ""],  # 4: unknown type
        rectify("1001", "003X", "", secret),  # 5: rectify without field
        rectify("1001", "003X", "Email", ""),  # 6: rectify without value
        forget("1001", "   "),  # 7: empty record id
        forget("1001", "003\x07X"),  # 8: control character
        rectify("1001", "003X", "Email", secret + "x" * 131073),  # 9: value too long
        forget("1001", "0035g00000OK2", "OK-1"),  # 10: duplicate ref within the file
        forget("1001", "0035g00000OK3", "TAKEN-1"),  # 11: duplicate ref against the table
        forget("abc", "003X", table="Contact Person"),  # 12: two problems
        ["forget", "1001", "Contact", "003X", "", "", "", "", "2099-01-01", ""],  # 13: received in the future
        ["forget", "0", "Contact", "003X", "Email", secret, "", "", "", ""],  # 14: service 0, forget with a value
    ]
    data = csv_bytes(rows) + b"forget,1001,Contact,003\xff\xfe,,,,,,\n"  # 15: not UTF-8
    outcome = await run_import(engine, data)
    got = problems_of(outcome)
    assert got == [
        "line 3: this line has 3 fields, the header has 10.",
        "line 4: request_type 'erase' is neither forget nor rectify.",
        "line 5: a rectify request needs a field (the field to correct, like Email).",
        "line 6: a rectify request needs a value (the corrected value).",
        "line 7: record_id is empty or only white space.",
        "line 8: record_id contains a control character.",
        "line 9: the rectify value is longer than 131072 characters.",
        "line 10: external_ref 'OK-1' is also used on line 2; each case needs its own.",
        "line 11: external_ref 'TAKEN-1' is already used by request 1; each case needs its own.",
        "line 12: service_id 'abc' is not a whole number (or all).",
        "line 12: table_name 'Contact Person' is not a Salesforce object API name (like Contact or Invoice__c).",
        "line 13: received_at is in the future.",
        "line 14: a forget request takes no field or value.",
        "line 14: service_id must be a positive number.",
        "line 15: this line is not valid UTF-8; save the file as CSV UTF-8.",
    ]
    assert outcome.bad_lines == 13 and outcome.inserted is None
    assert PII_MARKER not in "\n".join(got)
    assert await pg.fetchval("SELECT count(*) FROM gdpr_requests") == 1


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("request_type,service_id,table,record_id", "line 1: unknown column 'table'; the columns are request_type, "),
        ("request_type,service_id,record_id", "line 1: the header lacks the column table_name"),
        ("request_type,service_id,table_name,record_id,record_id", "line 1: column record_id appears twice"),
        ("", "line 1 is empty"),
    ],
)
async def test_bad_header_refused(engine, header, message):
    """A file whose header is unusable is refused as a whole, naming the problem."""
    with pytest.raises(HeaderError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        await run_import(engine, (header + "\nforget,1001,Contact,003A\n").encode())


async def test_spreadsheet_variants(engine, pg):
    """A byte order mark, semicolons, columns in another order, upper-case types and a value over two lines all work."""
    value = pii("two\nlines")
    data = ("\ufeffRecord_ID;Request_Type;Service_ID;Table_Name;Field;Value\r\n"
            "003A;FORGET;1001;Contact;;\r\n"
            f'003B;rectify;1001;Contact;MailingStreet;"{value}"\r\n'
            "\r\n"
            "003C;forget;1001;;;\r\n").encode()  # fmt: skip
    outcome = await run_import(engine, data)
    assert problems_of(outcome) == ["line 6: table_name is empty or only white space."]
    fixed = data.replace(b"003C;forget;1001;;;", b"003C;forget;1001;Lead;;")
    outcome = await run_import(engine, fixed)
    assert outcome.problems == [] and outcome.inserted.inserted == 3
    assert await pg.fetchval("SELECT value FROM gdpr_requests WHERE record_id = '003B'") == value


async def test_all_services_line(sim, engine, pg, settings_for):
    """service_id `all` makes one request per service of the account, disabled and archived included."""
    settings = settings_for()

    async def ids() -> list[int]:
        async with open_runtime(settings, api=True) as rt:
            return [s.id for s in await rt.client.list_services()]

    data = csv_bytes([forget("all", "0035g00000ALL", "DSR-9"), forget("1001", "0035g00000ONE", "DSR-9/1001")])
    outcome = await run_import(engine, data, service_ids=ids)
    assert problems_of(outcome) == ["line 3: external_ref 'DSR-9/1001' is also used on line 2; each case needs its own."]
    outcome = await run_import(engine, csv_bytes([forget("all", "0035g00000ALL", "DSR-9")]), service_ids=ids)
    assert outcome.inserted.inserted == 6
    refs = [r[0] for r in await pg.fetch("SELECT external_ref FROM gdpr_requests ORDER BY service_id")]
    assert refs == [f"DSR-9/{sid}" for sid in range(1001, 1007)]


async def test_check_only_inserts_nothing(engine, pg):
    """--check reads and checks the whole file and inserts nothing."""
    outcome = await run_import(engine, csv_bytes([forget("1001", "003A")]), check_only=True)
    assert outcome.problems == [] and outcome.requests == 1 and outcome.inserted is None
    assert await pg.fetchval("SELECT count(*) FROM gdpr_requests") == 0


async def test_large_file_in_one_statement(engine, pg):
    """20,000 lines import in one transaction, each with its history row; progress is reported as lines are read."""
    n = 20_000
    data = csv_bytes([forget("1001", f"0035g{i:010d}", f"BULK-{i}") for i in range(n)])
    seen: list[int] = []
    outcome = await run_import(engine, data, progress=seen.append)
    assert outcome.inserted.inserted == n and seen[0] == 1000 and seen[-1] == n
    assert await pg.fetchval("SELECT count(*) FROM gdpr_request_log") == n
    assert await pg.fetchval("SELECT min(id) = $1 AND max(id) = $2 FROM gdpr_requests",
                             outcome.inserted.first_id, outcome.inserted.last_id)  # fmt: skip


async def test_import_command(db_url, sim_url, pg, tmp_path, run):
    """The command reports bad lines on stderr with exit 1, then imports the fixed file with a summary, exit 0."""
    secret = pii("cli")
    bad = write_csv(tmp_path / "dsr.csv", [rectify("1001", "003A", "", secret), forget("1001", "003B")])
    code, out, err = await run("import", str(bad), "--progress")
    assert code == 1 and "line 2: a rectify request needs a field" in err
    assert "import refused: 1 of 2 lines have problems (1 in all); nothing was imported." in err
    assert secret not in err + out
    good = write_csv(tmp_path / "dsr.csv", [rectify("1001", "003A", "Email", secret), forget("1001", "003B")])
    code, out, err = await cli(db_url, sim_url, "import", str(good), "--actor", "alice",
                               GDPR_DAEMON_INTAKE_REQUIRE_APPROVAL="true")  # fmt: skip
    assert code == 0 and "imported 2 requests from 2 lines of dsr.csv (ids 1 to 2)" in out
    assert "2 await approval by a second person (four eyes): gdpr-daemon requests approve 1-2" in out
    assert await pg.fetchval("SELECT count(*) FROM gdpr_requests WHERE status = 'awaiting_approval'") == 2
    assert HEADER.startswith("request_type,")
