"""`gdpr-daemon audit verify` (tamper evidence) and `gdpr-daemon purge` (retention)."""

from __future__ import annotations

import argparse
import sys

from gdpr_daemon.commands.common import ACTOR, actor, settings_from_args, setup_logging

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

VERIFY_EPILOG = """\
Each line ends with the chain's head as CHAIN:SEQ:HASH. Keep it somewhere the database's
administrators cannot change (a ticket, the audit report): `audit verify --anchor` with it
later proves the history up to that row was not rewritten since, which the chain alone
cannot prove against someone who may rewrite every row.

An anchor whose row the retention purge has removed since can no longer be compared: the
line says ANCHOR NOT CHECKED with the date of that purge, and the exit status is 1. Record
the head this run prints as the new anchor. (An anchor that is exactly the last row a
purge removed is still compared, against the hash the purge's checkpoint kept.)
Account events are checked as the view audit_events_masked shows them: record ids,
values and comments as sha256: digests, which is what their hash covers.
"""


async def cmd_verify(args: argparse.Namespace) -> int:
    from gdpr_daemon.db.engine import make_engine
    from gdpr_daemon.db.integrity import CHAINS, Anchor, verify_chains

    settings = settings_from_args(args)
    setup_logging(settings, quiet=True)
    try:
        anchors = [Anchor.parse(a) for a in args.anchor or ()]
    except ValueError as exc:
        print(f"gdpr-daemon: {exc}", file=sys.stderr)
        return EXIT_USAGE
    engine = make_engine(settings.require_database(), pool_size=1)
    try:
        reports = await verify_chains(engine, args.chain or CHAINS, anchors=anchors)
    finally:
        await engine.dispose()
    for r in reports:
        print(r.summary())
    return EXIT_OK if all(r.ok for r in reports) else EXIT_FAILURE


async def cmd_purge(args: argparse.Namespace) -> int:
    from gdpr_daemon.db.engine import make_engine
    from gdpr_daemon.db.integrity import purge

    settings = settings_from_args(args)
    setup_logging(settings, quiet=True)
    days = settings.retention_days if args.days is None else args.days
    history_days = settings.retention_history_days if args.history_days is None else args.history_days
    engine = make_engine(settings.require_database(), pool_size=1)
    try:
        result = await purge(
            engine, retention_days=days, history_days=history_days, actor=actor(args), dry_run=args.dry_run
        )
    finally:
        await engine.dispose()
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
    s = sub.add_parser("audit", help="check the tamper evidence of the history and the account events")
    acts = s.add_subparsers(dest="action", metavar="ACTION", required=True)
    v = acts.add_parser(
        "verify",
        help="walk the hash chains of gdpr_request_log and audit_events",
        description="Check every row of gdpr_request_log and audit_events against the hash chain the "
        "database keeps. Prints OK with the row count and the head of each chain, or names the first "
        "broken row and exits 1. Reads only; needs no more than the gdpr_auditor role.",
        epilog=VERIFY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    v.add_argument("--chain", action="append", choices=("gdpr_request_log", "audit_events"),
                   help="only this chain (repeatable; default both)")  # fmt: skip
    v.add_argument("--anchor", action="append", metavar="CHAIN:SEQ:HASH",
                   help="a head an earlier run printed: that row must still hold that hash (repeatable)")  # fmt: skip
    v.set_defaults(func=cmd_verify)

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
    p.set_defaults(func=cmd_purge)
