"""Run ``gdpr-daemon`` with the audit commands wired in, as a real process.

``python -m tests.audit.run_command events pull`` behaves as ``gdpr-daemon events pull``
(the main parser, its settings and exit codes) whether or not the main command line
already registers these commands.
"""

from __future__ import annotations

import argparse
import sys

from gdpr_daemon import cli
from gdpr_daemon.commands.audit import add_events_parser, add_report_parser

_build = cli.build_parser


def build_parser() -> argparse.ArgumentParser:
    parser = _build()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "events" not in sub.choices:
        add_events_parser(sub)
    if "report" not in sub.choices:
        add_report_parser(sub)
    return parser


cli.build_parser = build_parser

if __name__ == "__main__":
    sys.exit(cli.main())
