"""`gdpr-daemon events pull`: the OwnBackup account event history into audit_events."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from gdpr_daemon.commands.common import Needs, Progress, stop_on_signals

if TYPE_CHECKING:
    from gdpr_daemon.runtime import Runtime

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


async def cmd_events_pull(args: argparse.Namespace, rt: Runtime) -> int:
    from gdpr_daemon.audit import AccountMismatch, EventPuller

    settings = rt.settings
    progress = Progress("events pull")
    try:
        await rt.check_schema()
        stop = stop_on_signals()
        puller = EventPuller(rt.engine, rt.client, account=settings.api_base_url, actor=settings.instance_name,
                             progress=lambda r: progress(r.summary()))  # fmt: skip
        result = await puller.pull(stop)
    except AccountMismatch as exc:
        print(f"gdpr-daemon: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        progress.done()
    print(f"events pull: {result.summary()}")
    return EXIT_FAILURE if result.stalled else EXIT_OK


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser(
        "events", help="pull the OwnBackup account event history into audit_events",
        description="The account event history (GET /api/v1/events) kept in Postgres for auditors.",
    )  # fmt: skip
    acts = s.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = acts.add_parser(
        "pull", help="pull new account events once",
        description="Fetch every event after the stored cursor, page after page, into audit_events. "
        "Each page and the cursor are stored in one transaction, so an interrupted pull loses "
        "nothing and the next one resumes where it stopped. Malformed events go to "
        "audit_quarantine with the reason. When another process (a running daemon) is pulling "
        "now, this one skips and exits 0. Prints one line of counts; progress goes to stderr.",
    )  # fmt: skip
    a.add_argument("--verbose", action="store_true", help="log at the configured level (default: warnings only)")
    a.set_defaults(func=cmd_events_pull, needs=Needs(api=True, pool_size=2))
