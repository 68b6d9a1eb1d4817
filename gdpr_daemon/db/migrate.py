"""Apply and inspect Alembic migrations in-process.

The migrations live in the repository's top-level ``migrations/`` and are installed as the
package ``gdpr_daemon.migrations``, so ``gdpr-daemon migrate`` works from any directory and
in the container image.  Concurrent upgrades
(two replicas, or a Kubernetes Job racing an init container) serialise on an advisory
lock, so the second one finds the schema current and does nothing.
"""

from __future__ import annotations

import functools
import re
from importlib.resources import files
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATION_LOCK = 0x6764_7072_6D69  # "gdprmi": pg_advisory_xact_lock key for upgrades

# How a migration names itself and its parent (every file in versions/ does, at top level).
_REVISION = re.compile(r"""^(down_revision|revision)\s*=\s*(?:"([^"]*)"|'([^']*)'|None)\s*$""", re.MULTILINE)


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(files("gdpr_daemon.migrations")))
    return cfg


@functools.cache
def _parents() -> dict[str, str | None]:
    """Each migration's revision and its parent, read from the files' ``revision`` and
    ``down_revision`` lines.

    Alembic is not imported for it: with Mako (and Pygments) it adds about 10 MiB that a
    running daemon, which only compares revisions, would keep.  A test checks the answers
    against Alembic's own.
    """
    parents: dict[str, str | None] = {}
    for path in files("gdpr_daemon.migrations").joinpath("versions").iterdir():
        if not path.name.endswith(".py"):
            continue
        found = {m[0]: (m[1] or m[2] or None) for m in _REVISION.findall(path.read_text(encoding="utf-8"))}
        revision = found.get("revision")
        if revision:
            parents[revision] = found.get("down_revision")
    return parents


def head_revision() -> str:
    """The newest migration this version ships."""
    parents = _parents()
    heads = set(parents) - {p for p in parents.values() if p}
    if len(heads) != 1:
        raise RuntimeError(f"the migrations have {len(heads)} heads ({sorted(heads)}); there must be one")
    return next(iter(heads))


def known_revisions() -> frozenset[str]:
    """Every migration this version ships."""
    return frozenset(_parents())


def _current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The database's revision (None for an empty database), read with one query."""
    async with engine.connect() as conn:
        if (await conn.execute(text("SELECT to_regclass('alembic_version')"))).scalar() is None:
            return None
        return (await conn.execute(text("SELECT max(version_num) FROM alembic_version"))).scalar()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> tuple[str | None, str]:
    """Upgrade to ``revision``; returns (revision before, revision after)."""
    from alembic import command

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
