"""Migration 0002: the audit tables as the contract describes them (their columns: tests/test_schema_mirror.py)."""

from __future__ import annotations

from alembic import command
from sqlalchemy.engine import Connection

from gdpr_daemon.db import migrate


async def test_design_types(pg):
    """The contract's types: bigint ids, timestamptz times, jsonb parameters and raw."""
    types = {r[0]: r[1] for r in await pg.fetch(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'audit_events'")}  # fmt: skip
    assert types["event_id"] == "bigint" and types["service_id"] == "integer"
    assert types["created_at"] == types["ingested_at"] == "timestamp with time zone"
    assert types["parameters"] == types["raw"] == "jsonb"
    indexes = {r[0] for r in await pg.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'audit_events'")}
    assert {"audit_events_created_idx", "audit_events_key_idx", "audit_events_user_idx",
            "audit_events_service_idx", "audit_events_gdpr_request_idx"} <= indexes  # fmt: skip


async def test_downgrade_and_upgrade_again(engine, pg):
    """Migration 0002 downgrades to 0001 (the audit tables go) and upgrades again."""

    def down(connection: Connection) -> None:
        cfg = migrate.alembic_config()
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0001")

    async with engine.begin() as conn:
        await conn.run_sync(down)
    assert await pg.fetchval("SELECT to_regclass('audit_events')") is None
    assert await migrate.upgrade(engine) == ("0001", migrate.head_revision())
    assert await pg.fetchval("SELECT to_regclass('audit_quarantine')::text") == "audit_quarantine"
