"""Apply and inspect Alembic migrations in-process.

The migrations live in the repository's top-level ``migrations/`` and are installed as the
package ``gdpr_daemon.migrations``, so ``gdpr-daemon migrate`` works from any directory and
in the container image.  Concurrent upgrades
(two replicas, or a Kubernetes Job racing an init container) serialise on an advisory
lock, so the second one finds the schema current and does nothing.
"""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATION_LOCK = 0x6764_7072_6D69  # "gdprmi": pg_advisory_xact_lock key for upgrades


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(files("gdpr_daemon.migrations")))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> tuple[str | None, str]:
    """Upgrade to ``revision``; returns (revision before, revision after)."""
    cfg = alembic_config()

    def _upgrade(connection: Connection) -> tuple[str | None, str]:
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
        before = _current(connection)
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
        after = _current(connection)
        assert after is not None
        return before, after

    async with engine.begin() as conn:
        return await conn.run_sync(_upgrade)
