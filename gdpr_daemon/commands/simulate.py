"""`gdpr-daemon simulate`: the OwnBackup API simulator (see gdpr_daemon.simulator)."""

from __future__ import annotations

import argparse


def cmd_simulate(args: argparse.Namespace) -> int:
    from gdpr_daemon.simulator.cli import run

    return run(args)


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from gdpr_daemon.simulator.cli import add_arguments

    s = sub.add_parser("simulate", help="run the OwnBackup API simulator",
                       description="An OwnBackup API server for tests and staging, with fault injection.")  # fmt: skip
    add_arguments(s)
    s.set_defaults(func=cmd_simulate)
