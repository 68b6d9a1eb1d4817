"""`gdpr-daemon purge`: apply the retention periods now."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from gdpr_daemon.commands.common import ACTOR, Needs, actor

if TYPE_CHECKING:
    from gdpr_daemon.runtime import Runtime

EXIT_OK = 0


async def cmd_purge(args: argparse.Namespace, rt: Runtime) -> int:
    from gdpr_daemon.db.integrity import purge

    settings = rt.settings
    days = settings.retention_days if args.days is None else args.days
    history_days = settings.retention_history_days if args.history_days is None else args.history_days
    result = await purge(
        rt.engine, retention_days=days, history_days=history_days, actor=actor(args), dry_run=args.dry_run
    )
    print(result.summary())
    off = [name for name, d in (("retention_days", days), ("retention_history_days", history_days)) if d == 0]
    if off:
        print(f"({' and '.join(off)} is 0: that part of the purge is off)")
    return EXIT_OK


def _days(text: str) -> int:
    n = int(text)
    if n < 0:
        raise argparse.ArgumentTypeError("must be 0 (off) or a number of days")
    return n


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "purge",
        help="apply the retention periods now",
        description="Finished requests older than retention_days lose their personal fields (record_id, "
        "value, comment; SHA-256 digests stay). History rows and account events older than "
        "retention_history_days are deleted, oldest first, and each chain records where it now starts. "
        "The daemon does this by itself every retention_purge_interval_hours.",
    )
    p.add_argument("--dry-run", action="store_true", help="count what would be purged, change nothing")
    p.add_argument("--days", type=_days, metavar="N", help="override retention_days for this run")
    p.add_argument("--history-days", type=_days, metavar="N", help="override retention_history_days for this run")
    p.add_argument("--actor", metavar="NAME", type=ACTOR, help="who purges, for the history (default: your user name)")
    p.set_defaults(func=cmd_purge, needs=Needs())
