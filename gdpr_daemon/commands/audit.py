"""`gdpr-daemon audit verify`: the tamper evidence of the history and the account events."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from gdpr_daemon.commands.common import Needs

if TYPE_CHECKING:
    from gdpr_daemon.runtime import Runtime

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


async def cmd_verify(args: argparse.Namespace, rt: Runtime) -> int:
    from gdpr_daemon.db.integrity import CHAINS, Anchor, verify_chains

    try:
        anchors = [Anchor.parse(a) for a in args.anchor or ()]
    except ValueError as exc:
        print(f"gdpr-daemon: {exc}", file=sys.stderr)
        return EXIT_USAGE
    reports = await verify_chains(rt.engine, args.chain or CHAINS, anchors=anchors)
    for r in reports:
        print(r.summary())
    return EXIT_OK if all(r.ok for r in reports) else EXIT_FAILURE


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
    v.set_defaults(func=cmd_verify, needs=Needs())
