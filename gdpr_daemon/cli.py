"""The ``gdpr-daemon`` command line.

Exit status: 0 success, 2 bad usage or configuration, 1 failure at run time.  A request
that ends ``failed`` or ``rejected`` is the system working, not a run-time failure.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import signal
import sys
from collections.abc import Coroutine
from typing import Any

from gdpr_daemon import __version__
from gdpr_daemon.config import ConfigError, Settings, load_settings

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

EPILOG = """\
Configuration comes from --config FILE (or GDPR_DAEMON_CONFIG) and GDPR_DAEMON_* environment
variables, which win. The least you need: GDPR_DAEMON_DATABASE_URL, GDPR_DAEMON_OWNBACKUP_REGION
(or _URL), GDPR_DAEMON_OWNBACKUP_EMAIL and GDPR_DAEMON_OWNBACKUP_PASSWORD (or _PASSWORD_FILE).
Try it all without any set-up: gdpr-daemon demo
"""


class UsageError(Exception):
    """Bad arguments; exit 2."""


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "log_format", None):
        overrides["log_format"] = args.log_format
    return load_settings(args.config, **overrides)


def _setup_logging(settings: Settings, *, quiet: bool = False) -> None:
    from gdpr_daemon import logging as glog

    glog.configure(settings.log_format, "warning" if quiet else settings.log_level)


def _actor(args: argparse.Namespace) -> str:
    return getattr(args, "actor", None) or getpass.getuser()


# ---- commands -----------------------------------------------------------------------


async def cmd_migrate(args: argparse.Namespace) -> int:
    from gdpr_daemon.db import migrate
    from gdpr_daemon.db.engine import make_engine, safe_url

    settings = _settings(args)
    _setup_logging(settings, quiet=True)
    engine = make_engine(settings.require_database(), pool_size=1)
    try:
        before, after = await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    where = safe_url(settings.database_url or "")
    if before == after:
        print(f"schema of {where} is current (revision {after})")
    else:
        print(f"schema of {where} upgraded from {before or 'empty'} to revision {after}")
    return EXIT_OK


async def cmd_run(args: argparse.Namespace) -> int:
    from gdpr_daemon.daemon import Daemon

    settings = _settings(args)
    _setup_logging(settings)
    daemon = Daemon(settings)
    if args.once:
        report = await daemon.run_once()
        print(
            f"run --once: {report.submitted} submitted, {report.retry_later} to retry later, "
            f"{report.failed} failed, {report.rejected} rejected"
        )
        return EXIT_OK
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return await daemon.run(stop)


async def cmd_submit(args: argparse.Namespace) -> int:
    from gdpr_daemon.db.engine import make_engine
    from gdpr_daemon.db.requests import NewRequest, insert_requests

    settings = _settings(args)
    _setup_logging(settings, quiet=True)
    value = args.value if args.kind == "rectify" else None
    if args.kind == "rectify" and value == "-":
        value = sys.stdin.readline().rstrip("\n")
    req = NewRequest(
        request_type=args.kind,
        service_id=args.service_id,
        table_name=args.table,
        record_id=args.record_id,
        field=getattr(args, "field", None),
        value=value,
        comment=args.comment,
        external_ref=args.external_ref,
        requested_by=_actor(args),
    )
    engine = make_engine(settings.require_database(), pool_size=1)
    try:
        async with engine.begin() as conn:
            (rid,) = await insert_requests(conn, [req])
    finally:
        await engine.dispose()
    print(f"request {rid} enqueued ({args.kind}, service {args.service_id}); follow it with: gdpr-daemon requests show {rid}")
    return EXIT_OK


REQUEST_COLUMNS = [
    ("id", "ID"), ("request_type", "TYPE"), ("service_id", "SERVICE"), ("status", "STATUS"),
    ("attempts", "TRIES"), ("ownbackup_request_id", "OWNBACKUP ID"), ("received_at", "RECEIVED"),
    ("due_at", "DUE"), ("external_ref", "REF"), ("last_error", "ERROR"),
]  # fmt: skip


async def cmd_requests(args: argparse.Namespace) -> int:
    from gdpr_daemon import render
    from gdpr_daemon.db import requests as rq
    from gdpr_daemon.db.engine import make_engine

    settings = _settings(args)
    _setup_logging(settings, quiet=True)
    engine = make_engine(settings.require_database(), pool_size=1)
    try:
        if args.action == "list":
            rows = await rq.list_requests(
                engine,
                statuses=args.status or (),
                request_type=args.type,
                service_id=args.service_id,
                overdue=args.overdue,
                unconfirmed_hours=settings.events_unconfirmed_after_hours if args.unconfirmed else None,
                limit=args.limit,
            )
            if args.format == "json":
                print(render.to_json(rows))
            elif args.format == "csv":
                sys.stdout.write(render.to_csv(rows, [k for k, _ in REQUEST_COLUMNS]))
            elif rows:
                print(render.table(rows, REQUEST_COLUMNS))
            else:
                print("no requests match")
        elif args.action == "show":
            row, history = await rq.get_request(engine, args.id)
            if args.format == "json":
                print(render.to_json({"request": row, "history": history}))
            else:
                width = max(len(k) for k in row)
                for k, v in row.items():
                    print(f"{k.ljust(width)}  {render.fmt(v)}")
                print("\nhistory:")
                print(render.table(history, [("at", "AT"), ("from_status", "FROM"), ("to_status", "TO"),
                                             ("actor", "BY"), ("detail", "DETAIL")], max_width=120))  # fmt: skip
        elif args.action == "retry":
            await rq.retry_request(engine, args.id, actor=_actor(args))
            print(f"request {args.id} is pending again; the daemon will submit it")
        elif args.action == "cancel":
            await rq.cancel_request(engine, args.id, actor=_actor(args), reason=args.reason)
            print(f"request {args.id} cancelled")
    finally:
        await engine.dispose()
    return EXIT_OK


async def cmd_check(args: argparse.Namespace) -> int:
    from gdpr_daemon.checks import run_checks

    return await run_checks(args.config)


async def cmd_demo(args: argparse.Namespace) -> int:
    from gdpr_daemon.demo import run_demo

    return await run_demo(requests=args.requests, keep=args.keep)


def cmd_simulate(args: argparse.Namespace) -> int:
    from gdpr_daemon.simulator.cli import run

    return run(args)


# ---- parser -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gdpr-daemon",
        description="Submits GDPR forget and rectify requests from Postgres to OwnBackup, "
        "records every step, and keeps the account's event history for auditors.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"gdpr-daemon {__version__}")
    p.add_argument("--config", metavar="PATH", help="TOML configuration file (default: $GDPR_DAEMON_CONFIG)")
    p.add_argument("--log-format", choices=("json", "console"), help="override log_format for this run")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser("migrate", help="upgrade the database schema to the newest migration",
                       description="Create or upgrade the tables in database_url. Safe to run again, "
                       "and from several processes at once.")  # fmt: skip
    s.set_defaults(func=cmd_migrate)

    s = sub.add_parser("run", help="run the daemon until SIGTERM or SIGINT",
                       description="Submit pending requests as they arrive (LISTEN/NOTIFY, with a poll "
                       "as fallback) and pull account events on schedule. On SIGTERM or SIGINT it stops "
                       "claiming, lets calls in progress finish within queue_shutdown_timeout_seconds, "
                       "returns unstarted claims to pending and exits 0.")  # fmt: skip
    s.add_argument("--once", action="store_true",
                   help="submit every request due now and pull new events once, then exit")  # fmt: skip
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("submit", help="enqueue one forget or rectify request",
                       description="Insert one request into gdpr_requests, as a DPO would with SQL.")  # fmt: skip
    kinds = s.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, text_ in (("forget", "erase a record from the backups (GDPR Art. 17)"),
                        ("rectify", "correct one field of a record in the backups (GDPR Art. 16)")):  # fmt: skip
        k = kinds.add_parser(kind, help=text_, description=text_)
        k.add_argument("--service-id", type=int, required=True, metavar="N",
                       help="OwnBackup backup service id (see `gdpr-daemon services`)")  # fmt: skip
        k.add_argument("--table", required=True, metavar="T", help="Salesforce object, e.g. Contact")
        k.add_argument("--record-id", required=True, metavar="R", help="id of the record in that object")
        if kind == "rectify":
            k.add_argument("--field", required=True, metavar="F", help="field to correct, e.g. Email")
            k.add_argument("--value", required=True, metavar="V",
                           help="the corrected value; '-' reads it from standard input (keeps it out of "
                           "shell history)")  # fmt: skip
        k.add_argument("--comment", metavar="C", help="free text passed to the OwnBackup API")
        k.add_argument("--external-ref", metavar="X", help="your case or ticket id (unique)")
        k.add_argument("--actor", metavar="NAME", help="who enters it (default: your user name)")
        k.set_defaults(func=cmd_submit)

    s = sub.add_parser("requests", help="list, show, retry or cancel requests")
    acts = s.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = acts.add_parser("list", help="list requests, newest first")
    a.add_argument("--status", action="append", metavar="S",
                   help="only this status (repeatable): pending, in_flight, submitted, failed, rejected, cancelled, awaiting_approval")  # fmt: skip
    a.add_argument("--type", choices=("forget", "rectify"), help="only this request type")
    a.add_argument("--service-id", type=int, metavar="N", help="only this service")
    a.add_argument("--overdue", action="store_true", help="only open requests past their due date")
    a.add_argument("--unconfirmed", action="store_true",
                   help="only submitted requests no OwnBackup event has confirmed after events_unconfirmed_after_hours")  # fmt: skip
    a.add_argument("--limit", type=int, default=100, metavar="N", help="at most N rows (default 100)")
    a.add_argument("--format", choices=("table", "json", "csv"), default="table", help="output format")
    a.set_defaults(func=cmd_requests)
    a = acts.add_parser("show", help="one request and its whole history")
    a.add_argument("id", type=int)
    a.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    a.set_defaults(func=cmd_requests)
    a = acts.add_parser("retry", help="send a failed or rejected request again")
    a.add_argument("id", type=int)
    a.add_argument("--actor", metavar="NAME", help="who retries it (default: your user name)")
    a.set_defaults(func=cmd_requests)
    a = acts.add_parser("cancel", help="cancel a request not yet submitted")
    a.add_argument("id", type=int)
    a.add_argument("--reason", metavar="TEXT", help="why, for the history")
    a.add_argument("--actor", metavar="NAME", help="who cancels it (default: your user name)")
    a.set_defaults(func=cmd_requests)

    s = sub.add_parser("check", help="check config, database, schema and API login",
                       description="Print each check as OK or a one-line reason; exit 1 if any fails.")  # fmt: skip
    s.set_defaults(func=cmd_check)

    s = sub.add_parser("demo", help="run everything on an embedded Postgres and the simulator",
                       description="Starts an embedded Postgres and the OwnBackup simulator, enqueues a "
                       "realistic batch of requests, runs the daemon until the queue is drained, prints "
                       "what happened and cleans up. Needs no set-up.")  # fmt: skip
    s.add_argument("--requests", type=int, default=24, metavar="N", help="size of the batch (default 24)")
    s.add_argument("--keep", action="store_true", help="leave the embedded database running and print its URL")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("simulate", help="run the OwnBackup API simulator",
                       description="An OwnBackup API server for tests and staging, with fault injection.")  # fmt: skip
    from gdpr_daemon.simulator.cli import add_arguments

    add_arguments(s)
    s.set_defaults(func=cmd_simulate)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from gdpr_daemon.db.requests import RequestError
    from gdpr_daemon.daemon import StartupError

    try:
        result: Any = args.func(args)
        if isinstance(result, Coroutine):
            result = asyncio.run(result)
        return int(result)
    except ConfigError as exc:
        print(f"gdpr-daemon: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"gdpr-daemon: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (RequestError, StartupError) as exc:
        print(f"gdpr-daemon: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - one clear line, not a traceback
        from gdpr_daemon.errors import describe

        print(f"gdpr-daemon: {describe(exc)}", file=sys.stderr)
        return EXIT_FAILURE


