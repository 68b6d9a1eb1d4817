"""``gdpr-daemon events pull`` and ``gdpr-daemon report audit|requests``.

The main parser calls :func:`add_events_parser` and :func:`add_report_parser` on its
sub-parsers; the handlers follow the command line's conventions (settings from
``--config`` and the environment, exit 0 success, 2 bad usage or configuration, 1 failure
at run time).  Results go to standard output, progress of long work to standard error.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["add_events_parser", "add_report_parser", "cmd_events_pull", "cmd_report", "parse_since", "parse_until"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

DATES_HELP = ("Dates are UTC: 2026-01-31, or a full ISO 8601 time such as 2026-01-31T12:00:00Z "
              "or 2026-01-31T13:00:00+01:00.")  # fmt: skip


# ---- arguments ----------------------------------------------------------------------------


def _moment(text: str, *, end_of_day: bool) -> datetime:
    value = text.strip()
    try:
        if len(value) == 10:  # a date: the day's start, or for --until the next day's start
            day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
            return day + timedelta(days=1) if end_of_day else day
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: write 2026-01-31 or an ISO 8601 time like 2026-01-31T12:00:00Z"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_since(text: str) -> datetime:
    """``--since``: a date means its first moment (UTC); included."""
    return _moment(text, end_of_day=False)


def parse_until(text: str) -> datetime:
    """``--until``: a date means the whole day is included; a time is excluded."""
    return _moment(text, end_of_day=True)


def add_events_parser(subparsers: Any) -> None:
    """``events pull``."""
    s = subparsers.add_parser(
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
    a.set_defaults(func=cmd_events_pull)


def add_report_parser(subparsers: Any) -> None:
    """``report audit`` and ``report requests``."""
    s = subparsers.add_parser(
        "report", help="write an audit or requests report (CSV, JSON or HTML)",
        description="Reports for auditors and the DPO. CSV is UTF-8 with one header line, ISO 8601 "
        "UTC times and formulas neutralised; HTML is one self-contained file (works offline, "
        "prints well). No report ever shows a rectify value. " + DATES_HELP,
    )  # fmt: skip
    kinds = s.add_subparsers(dest="report", metavar="REPORT", required=True)
    audit = kinds.add_parser(
        "audit", help="account events of a period, optionally by key, user or service",
        description="The OwnBackup account events from --since to --until, oldest first. " + DATES_HELP,
    )  # fmt: skip
    requests = kinds.add_parser(
        "requests", help="one line per GDPR request received in a period, with a summary",
        description="One line per request received from --since to --until: received, due, "
        "submitted, confirmed, OwnBackup request id, attempts, status, days to submit, overdue. "
        "JSON and HTML add counts by type, status and service, the median and 95th percentile "
        "days to submit and every overdue or failed request; HTML adds charts. " + DATES_HELP,
    )  # fmt: skip
    for p in (audit, requests):
        p.add_argument("--since", type=parse_since, required=True, metavar="DATE",
                       help="start of the period, included (2026-01-01 or an ISO 8601 time)")  # fmt: skip
        p.add_argument("--until", type=parse_until, required=True, metavar="DATE",
                       help="end of the period: a date is included whole, a time is excluded")  # fmt: skip
        p.add_argument("--format", choices=("csv", "json", "html"),
                       help="output format (default: from the --output suffix, else csv)")  # fmt: skip
        p.add_argument("--output", "-o", default="-", metavar="FILE",
                       help="file to write ('-', the default: standard output); "
                       "written in full or not at all")  # fmt: skip
        p.add_argument("--bom", action="store_true",
                       help="CSV only: start with a UTF-8 byte order mark, for old Excel versions")  # fmt: skip
        p.set_defaults(func=cmd_report)
    audit.add_argument("--key", metavar="PATTERN", help="only events whose key matches, e.g. gdpr.* or user.login")
    audit.add_argument("--user", metavar="EMAIL", help="only events of this user (email, any case)")
    audit.add_argument("--service", type=int, metavar="ID", help="only events of this backup service")


# ---- progress ---------------------------------------------------------------------------------


class _Progress:
    """A line on stderr now and then: redrawn every 2 s on a terminal, every 30 s in a log."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.tty = sys.stderr.isatty()
        self.every = 2.0 if self.tty else 30.0
        self.next = time.monotonic() + self.every
        self.shown = False

    def __call__(self, text: str) -> None:
        now = time.monotonic()
        if now < self.next:
            return
        self.next = now + self.every
        self.shown = True
        sys.stderr.write(f"\r{self.what}: {text}   " if self.tty else f"{self.what}: {text}\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.shown and self.tty:
            sys.stderr.write("\n")


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


# ---- handlers ---------------------------------------------------------------------------------


async def cmd_events_pull(args: argparse.Namespace) -> int:
    from gdpr_daemon.audit import AccountMismatch, EventPuller
    from gdpr_daemon.commands.common import settings_from_args, setup_logging
    from gdpr_daemon.daemon import check_schema, client_config
    from gdpr_daemon.db.engine import make_engine
    from gdpr_daemon.ownbackup import OwnBackupClient

    settings = settings_from_args(args)
    setup_logging(settings, quiet=not getattr(args, "verbose", False))
    config = client_config(settings)
    engine = make_engine(settings.require_database(), pool_size=2)
    progress = _Progress("events pull")
    try:
        await check_schema(engine)
        stop = _stop_on_signals()
        async with OwnBackupClient(config) as client:
            puller = EventPuller(engine, client, account=settings.api_base_url, actor=settings.instance_name,
                                 progress=lambda r: progress(r.summary()))  # fmt: skip
            result = await puller.pull(stop)
    except AccountMismatch as exc:
        print(f"gdpr-daemon: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        progress.done()
        await engine.dispose()
    print(f"events pull: {result.summary()}")
    return EXIT_FAILURE if result.stalled else EXIT_OK


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    suffix = Path(args.output).suffix.lower().lstrip(".") if args.output != "-" else ""
    return {"htm": "html"}.get(suffix, suffix) if suffix in ("csv", "json", "html", "htm") else "csv"


async def cmd_report(args: argparse.Namespace) -> int:
    from gdpr_daemon.audit.reports import AuditFilters, open_output, write_audit_report, write_requests_report
    from gdpr_daemon.commands.common import settings_from_args, setup_logging
    from gdpr_daemon.daemon import check_schema
    from gdpr_daemon.db.engine import make_engine

    fmt = _format(args)
    if args.since >= args.until:
        print("gdpr-daemon: --since must be before --until", file=sys.stderr)
        return EXIT_USAGE
    if args.bom and fmt != "csv":
        print("gdpr-daemon: --bom is for CSV only", file=sys.stderr)
        return EXIT_USAGE
    if args.output != "-" and not Path(args.output).resolve().parent.is_dir():  # noqa: ASYNC240 - once, at start
        print(f"gdpr-daemon: cannot write {args.output}: its directory does not exist", file=sys.stderr)
        return EXIT_USAGE
    if args.output != "-" and Path(args.output).is_dir():  # noqa: ASYNC240 - once, at start
        print(f"gdpr-daemon: cannot write {args.output}: it is a directory; name a file", file=sys.stderr)
        return EXIT_USAGE
    settings = settings_from_args(args)
    setup_logging(settings, quiet=True)
    engine = make_engine(settings.require_database(), pool_size=1)
    progress = _Progress(f"report {args.report}")
    try:
        await check_schema(engine)
        with open_output(args.output) as out:
            if args.bom:
                out.write("\ufeff")
            if args.report == "audit":
                filters = AuditFilters(args.since, args.until, key=args.key, user_email=args.user,
                                       service_id=args.service)  # fmt: skip
                result = await write_audit_report(engine, out, fmt, filters,
                                                  progress=lambda n: progress(f"{n} events written"))  # fmt: skip
            else:
                result = await write_requests_report(engine, out, fmt, since=args.since, until=args.until,
                                                     progress=lambda n: progress(f"{n} requests written"))  # fmt: skip
    finally:
        progress.done()
        await engine.dispose()
    if args.output != "-":
        print(f"{result.summary()} written to {args.output} ({fmt})")
    return EXIT_OK
