"""Run ``gdpr-daemon`` with the audit commands wired in, as a real process.

``python -m tests.audit.run_command events pull`` behaves as ``gdpr-daemon events pull``
(the main parser, its settings and exit codes) whether or not the main command line
already registers these commands.
"""

from __future__ import annotations

import argparse
import sys

from gdpr_daemon import cli
from gdpr_daemon.commands import events, report

_build = cli.build_parser


def build_parser() -> argparse.ArgumentParser:
    parser = _build()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "events" not in sub.choices:
        events.add_parsers(sub)
    if "report" not in sub.choices:
        report.add_parsers(sub)
    return parser


cli.build_parser = build_parser

if __name__ == "__main__":
    sys.exit(cli.main())
