"""`gdpr-daemon report audit|requests`: reports for auditors and the DPO (CSV, JSON, HTML).

Results go to standard output or ``--output``, progress of long work to standard error.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from gdpr_daemon.commands.common import Needs, Progress, UsageError

if TYPE_CHECKING:
    from gdpr_daemon.runtime import Runtime

__all__ = ["add_parsers", "check_usage", "cmd_report", "parse_since", "parse_until"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

DATES_HELP = ("Dates are UTC: 2026-01-31, or a full ISO 8601 time such as 2026-01-31T12:00:00Z "
              "or 2026-01-31T13:00:00+01:00.")  # fmt: skip


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


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser(
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
        p.set_defaults(func=cmd_report, needs=Needs(), check_usage=check_usage)
    audit.add_argument("--key", metavar="PATTERN", help="only events whose key matches, e.g. gdpr.* or user.login")
    audit.add_argument("--user", metavar="EMAIL", help="only events of this user (email, any case)")
    audit.add_argument("--service", type=int, metavar="ID", help="only events of this backup service")


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    suffix = Path(args.output).suffix.lower().lstrip(".") if args.output != "-" else ""
    return {"htm": "html"}.get(suffix, suffix) if suffix in ("csv", "json", "html", "htm") else "csv"


def check_usage(args: argparse.Namespace) -> None:
    """Usage errors argparse cannot see, before anything is opened: exit 2, nothing written."""
    if args.since >= args.until:
        raise UsageError("--since must be before --until")
    if args.bom and _format(args) != "csv":
        raise UsageError("--bom is for CSV only")
    if args.output != "-" and not Path(args.output).resolve().parent.is_dir():
        raise UsageError(f"cannot write {args.output}: its directory does not exist")
    if args.output != "-" and Path(args.output).is_dir():
        raise UsageError(f"cannot write {args.output}: it is a directory; name a file")


async def cmd_report(args: argparse.Namespace, rt: Runtime) -> int:
    from gdpr_daemon.audit.reports import AuditFilters, open_output, write_audit_report, write_requests_report

    fmt = _format(args)
    engine = rt.engine
    progress = Progress(f"report {args.report}")
    try:
        await rt.check_schema()
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
    if args.output != "-":
        print(f"{result.summary()} written to {args.output} ({fmt})")
    return EXIT_OK
