"""Every DPO command as a real login of each role of config/sql/roles.sql: what docs/dpo-guide.md
says each role can do, it can, and what it says it cannot, is refused in one sentence (exit 1)
with nothing changed.  This is the table in the guide, section "Who can run what"."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.helpers import run_cli
from tests.security import db_logins
from tests.security.db_logins import connected

roles, login = db_logins.roles, db_logins.login  # fixtures

ENTER = ("INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, external_ref) "
         "VALUES ('forget', 1001, 'Contact', $1, $1) RETURNING id")  # fmt: skip
DAY = "2026-01-01"

# command -> the arguments (request ids filled in per test), and the roles that may run it.
COMMANDS: dict[str, tuple[list[str], set[str]]] = {
    "submit": (["submit", "forget", "--service-id", "1001", "--table", "Contact", "--record-id", "003NEW"],
               {"gdpr_intake"}),
    "import": (["import", "{csv}"], {"gdpr_intake"}),
    "requests list": (["requests", "list"], {"gdpr_intake", "gdpr_daemon"}),
    "requests show": (["requests", "show", "{pending}"], {"gdpr_intake", "gdpr_daemon"}),
    "requests approve": (["requests", "approve", "{awaiting}"], {"gdpr_intake"}),
    "requests extend": (["requests", "extend", "{pending}", "--reason", "many records"], {"gdpr_intake"}),
    "requests retry": (["requests", "retry", "{failed}"], {"gdpr_intake"}),
    "requests cancel": (["requests", "cancel", "{cancel}", "--reason", "entered twice"], {"gdpr_intake"}),
    "status": (["status"], {"gdpr_intake", "gdpr_daemon", "gdpr_auditor"}),
    "report requests": (["report", "requests", "--since", DAY, "--until", "2200-01-01", "--format", "json"], {"gdpr_intake", "gdpr_daemon", "gdpr_auditor"}),
    "report audit": (["report", "audit", "--since", DAY, "--until", "2200-01-01", "--format", "json"], {"gdpr_daemon", "gdpr_auditor"}),
    "audit verify": (["audit", "verify"], {"gdpr_daemon", "gdpr_auditor"}),
    "purge": (["purge"], {"gdpr_daemon"}),
    "events pull": (["events", "pull"], {"gdpr_daemon"}),
}  # fmt: skip


async def arrange(pg: asyncpg.Connection, enterer_url: str) -> dict[str, int]:
    """Requests in the states the commands act on, entered by another intake login; four eyes on."""
    await pg.execute("INSERT INTO gdpr_daemon_settings (key, value) VALUES ('require_approval', 'true')")
    ids = {}
    async with connected(enterer_url) as enterer:
        for name in ("awaiting", "pending", "failed", "cancel"):
            ids[name] = await enterer.fetchval(ENTER, f"003{name.upper()}")
    await pg.execute("UPDATE gdpr_requests SET status = 'pending', approved_by = 'boss' WHERE id = ANY($1)",
                     [ids["pending"], ids["cancel"]])  # fmt: skip
    await pg.execute("UPDATE gdpr_requests SET status = 'failed', approved_by = 'boss' WHERE id = $1", ids["failed"])
    await pg.execute("INSERT INTO audit_events (event_id, created_at, key, parameters, raw) VALUES "
                     "(1, now(), 'gdpr.forget', '{\"record_id\": \"003X\"}', '{\"event_id\": 1}')")  # fmt: skip
    return ids


async def snapshot(pg: asyncpg.Connection) -> tuple:
    return (
        tuple(await pg.fetch("SELECT id, status, due_at, approved_by, record_id FROM gdpr_requests ORDER BY id")),
        await pg.fetchval("SELECT count(*) FROM gdpr_request_log"),
    )


CASES = [(name, group) for name in COMMANDS for group in db_logins.GROUPS]


@pytest.mark.parametrize(("command", "group"), CASES, ids=[f"{c}-{g}" for c, g in CASES])
async def test_each_command_as_each_role(command, group, login, pg, sim, sim_url, tmp_path):
    """A DPO command run as a login of this role works where the guide says so, else is refused in one line."""
    ids = await arrange(pg, await login("gdpr_intake"))
    url = await login(group)
    csv = tmp_path / "requests.csv"
    csv.write_text("request_type,service_id,table_name,record_id\nforget,1001,Contact,003CSV\n", encoding="utf-8")
    argv, allowed = COMMANDS[command]
    args = [a.format(csv=csv, **{k: str(v) for k, v in ids.items()}) for a in argv]
    before = await snapshot(pg)
    code, out, err = await asyncio.wait_for(run_cli(url, sim_url, *args), 90)
    if group in allowed:
        assert code == 0, f"{command} as {group}: {err}"
        if command == "report audit" and group == "gdpr_auditor":
            assert "003X" not in out and "sha256:" in out, "the auditor's report shows record ids as digests"
    else:
        assert code == 1, f"{command} as {group} should be refused: {out} {err}"
        lines = [ln for ln in err.splitlines() if ln.startswith("gdpr-daemon:")]
        assert len(lines) == 1 and ("privilege" in lines[0] or "permission" in lines[0]), err
        assert await snapshot(pg) == before, f"{command} as {group} was refused but changed something"
