"""Verification under the least-privilege roles of config/sql/roles.sql: the daemon's role records
outcomes, an intake role is told it may not, an auditor's report counts them."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gdpr_daemon.audit.reports.requests import write_requests_report
from gdpr_daemon.db.engine import sqlalchemy_url
from gdpr_daemon.db.requests import RequestError
from gdpr_daemon.ownbackup import OwnBackupClient
from gdpr_daemon.runtime import client_config
from gdpr_daemon.verify.batch import verify_ids
from gdpr_daemon.verify.job import RoundResult, VerifyJob
from tests.verify.conftest import back_up_now, contact, enter_forget, history, submit_all

ROLES_SQL = Path(__file__).resolve().parents[2] / "config" / "sql" / "roles.sql"


@pytest.fixture
async def role_engine(pg: asyncpg.Connection, db_url: str) -> AsyncIterator:  # type: ignore[type-arg]
    """An engine factory whose connections act as one of the roles (roles.sql applied first)."""
    await pg.execute(ROLES_SQL.read_text(encoding="utf-8"))
    made: list[AsyncEngine] = []

    def make(role: str) -> AsyncEngine:
        engine = create_async_engine(sqlalchemy_url(db_url), pool_size=2,
                                     connect_args={"server_settings": {"role": role}})  # fmt: skip
        made.append(engine)
        return engine

    yield make
    for engine in made:
        await engine.dispose()


async def test_daemon_role_records_and_intake_role_is_told(pg, vsim, vsettings, role_engine) -> None:  # type: ignore[no-untyped-def]
    """As gdpr_daemon the job records the verification; as gdpr_intake recording is refused in one
    sentence naming the role to use; as gdpr_auditor the requests report counts it."""
    settings = vsettings()
    rid = await enter_forget(pg, contact(40))
    await submit_all(settings)
    await back_up_now(settings, vsim)
    async with OwnBackupClient(client_config(settings)) as client:
        with pytest.raises(RequestError, match=r"may not write the request history.*gdpr_daemon"):
            await verify_ids(role_engine("gdpr_intake"), client, [rid], actor="alice")
        job = VerifyJob(role_engine("gdpr_daemon"), client, after_hours=0, actor="daemon-1")
        assert await job.run() == RoundResult(verified=1)
    assert (await history(pg, rid))[-1]["detail"].startswith("verified: record absent from backup ")

    out = io.StringIO()
    now = datetime.now(UTC)
    await write_requests_report(role_engine("gdpr_auditor"), out, "json", since=now - timedelta(days=1),
                                until=now + timedelta(days=1))  # fmt: skip
    assert json.loads(out.getvalue())["summary"]["verified"] == 1
