"""`gdpr-daemon demo`: everything on an embedded Postgres and the simulator (see gdpr_daemon.demo)."""

from __future__ import annotations

import argparse


async def cmd_demo(args: argparse.Namespace) -> int:
    from gdpr_daemon.demo import run_demo

    return await run_demo(requests=args.requests, keep=args.keep)


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser("demo", help="run everything on an embedded Postgres and the simulator",
                       description="Starts an embedded Postgres and the OwnBackup simulator, enqueues a "
                       "realistic batch of requests, runs the daemon until the queue is drained, prints "
                       "what happened and cleans up. Needs no set-up.")  # fmt: skip
    s.add_argument("--requests", type=int, default=24, metavar="N", help="size of the batch (default 24)")
    s.add_argument("--keep", action="store_true", help="leave the embedded database running and print its URL")
    s.set_defaults(func=cmd_demo)
