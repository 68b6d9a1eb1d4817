"""`run --once --dry-run`: every waiting request checked against the account, nothing changed."""

from __future__ import annotations

import asyncpg

from gdpr_daemon.db.intake_settings import write_intake_settings
from gdpr_daemon.ownbackup import Service
from gdpr_daemon.submit.dryrun import APPROVAL, LATER, REJECT, SUBMIT, dry_run, render_report
from tests.dpo.support import cli
from tests.helpers import pii

ARRANGE = """
INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, field, value, external_ref, status, next_attempt_at)
VALUES ('forget', 1001, 'Contact', '003A', NULL, NULL, 'OK', 'pending', now()),
       ('rectify', 1006, 'Contact', '003B', 'Email', $1, 'ARCHIVED', 'pending', now()),
       ('forget', 4711, 'Contact', '003C', NULL, NULL, 'NO-SUCH-SERVICE', 'pending', now()),
       ('forget', 1002, 'Contact Person', '003D', NULL, NULL, 'BAD-TABLE', 'pending', now()),
       ('forget', 1003, 'Contact', '003E', NULL, NULL, 'RETRY', 'pending', now() + interval '1 hour'),
       ('forget', 1004, 'Contact', '003F', NULL, NULL, 'DONE', 'submitted', now())
"""


async def snapshot(pg: asyncpg.Connection) -> tuple[list, list, list]:
    return (
        [tuple(r) for r in await pg.fetch("SELECT * FROM gdpr_requests ORDER BY id")],
        [tuple(r) for r in await pg.fetch("SELECT * FROM gdpr_request_log ORDER BY id")],
        [tuple(r) for r in await pg.fetch("SELECT * FROM gdpr_daemon_settings ORDER BY key")],
    )


def services() -> list[Service]:
    return [Service(id=1001, displayed_name="Prod", status="ACTIVE", enabled=True, archived=False),
            Service(id=1002, displayed_name="UAT", status="ACTIVE", enabled=True, archived=False),
            Service(id=1003, displayed_name="QA", status="ACTIVE", enabled=True, archived=False),
            Service(id=1004, displayed_name="Dev", status="DISABLED", enabled=False, archived=False),
            Service(id=1006, displayed_name="EU", status="ARCHIVED", enabled=False, archived=True)]  # fmt: skip


async def test_verdicts_without_changes(engine, pg):
    """Each waiting request gets what the daemon would do with it; the database is exactly as before."""
    await pg.execute(ARRANGE, pii("dry"))
    await write_intake_settings(engine, require_approval=True, holidays=None, authoritative=True)
    await pg.execute("INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, external_ref) "
                     "VALUES ('forget', 1001, 'Contact', '003G', 'FOUR-EYES')")  # fmt: skip
    before = await snapshot(pg)

    async def listed() -> list[Service]:
        return services()

    report = await dry_run(engine, listed)
    assert await snapshot(pg) == before
    got = {v.external_ref: v.action for v in report.verdicts}
    assert got == {"OK": SUBMIT, "ARCHIVED": SUBMIT, "NO-SUCH-SERVICE": REJECT, "BAD-TABLE": REJECT,
                   "RETRY": LATER, "FOUR-EYES": APPROVAL}  # fmt: skip
    text = render_report(report)
    assert "dry run: nothing was claimed, submitted or changed." in text
    assert "archived: still submitted to, its backups hold the data" in text
    assert "Service 4711 is not one of the OwnBackup account's services" in text
    assert "summary: 2 would be submitted now, 2 would be rejected, 1 wait for a retry, 1 await approval" in text


async def test_dry_run_command(sim, db_url, sim_url, pg):
    """`run --once --dry-run` prints the account's services and the verdicts, submits nothing, exit 0."""
    value = pii("dry-cli")
    await pg.execute(ARRANGE, value)
    before = await snapshot(pg)
    code, out, err = await cli(db_url, sim_url, "run", "--once", "--dry-run")
    assert code == 0, err
    assert "Acme EU Production (acquired 2017)" in out and "ARCHIVED" in out
    assert "2 requests would be submitted now:" in out and "2 requests would be rejected:" in out
    assert value not in out + err
    assert await snapshot(pg) == before
    assert sim.state.gdpr_calls == []


async def test_dry_run_needs_once(run):
    """--dry-run without --once is a usage error, exit 2."""
    code, _, err = await run("run", "--dry-run")
    assert code == 2 and "--dry-run goes with --once" in err
