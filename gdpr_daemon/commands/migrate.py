"""`gdpr-daemon migrate`: create or upgrade the schema, as its owner."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from gdpr_daemon.commands.common import Needs

if TYPE_CHECKING:
    from gdpr_daemon.runtime import Runtime

EXIT_OK = 0


async def cmd_migrate(args: argparse.Namespace, rt: Runtime) -> int:
    from gdpr_daemon.db import migrate
    from gdpr_daemon.db.engine import safe_url
    from gdpr_daemon.db.intake_settings import write_retention_floors

    settings = rt.settings
    before, after = await migrate.upgrade(rt.engine)
    # As the owner: the only login that may shorten the database's retention floors.
    floors = await write_retention_floors(
        rt.engine, retention_days=settings.retention_days, history_days=settings.retention_history_days
    )
    where = safe_url(rt.database_url)
    if before == after:
        print(f"schema of {where} is current (revision {after})")
    else:
        print(f"schema of {where} upgraded from {before or 'empty'} to revision {after}")
    if floors.kept:
        configured = {"retention_days": settings.retention_days,
                      "retention_history_days": settings.retention_history_days}  # fmt: skip
        print("gdpr-daemon: this login is not the schema owner, so the database keeps its retention floors: "
              + floors.describe_kept(configured), file=sys.stderr)  # fmt: skip
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser("migrate", help="upgrade the database schema to the newest migration",
                       description="Create or upgrade the tables in database_url. Safe to run again, "
                       "and from several processes at once.")  # fmt: skip
    s.set_defaults(func=cmd_migrate, needs=Needs(migrate_login=True))
