"""The ``gdpr-daemon`` command line.

Exit status: 0 success, 2 bad usage or configuration, 1 failure at run time.  A request
that ends ``failed`` or ``rejected`` is the system working, not a run-time failure.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
from collections.abc import Coroutine
from typing import Any

from gdpr_daemon import __version__
from gdpr_daemon.commands.common import settings_from_args as _settings
from gdpr_daemon.commands.common import setup_logging as _setup_logging
from gdpr_daemon.config import ConfigError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

EPILOG = """\
Configuration comes from --config FILE (or GDPR_DAEMON_CONFIG) and GDPR_DAEMON_* environment
variables, which win. The least you need: GDPR_DAEMON_DATABASE_URL, GDPR_DAEMON_OWNBACKUP_REGION
(or _URL), GDPR_DAEMON_OWNBACKUP_EMAIL and GDPR_DAEMON_OWNBACKUP_PASSWORD (or _PASSWORD_FILE).
Try it all without any set-up: gdpr-daemon demo
"""


class UsageError(Exception):
    """Bad arguments; exit 2."""



# ---- commands -----------------------------------------------------------------------


async def cmd_migrate(args: argparse.Namespace) -> int:
    from gdpr_daemon.db import migrate
    from gdpr_daemon.db.engine import make_engine, safe_url
    from gdpr_daemon.db.intake_settings import write_retention_floors

    settings = _settings(args)
    _setup_logging(settings, quiet=True)
    url = settings.migrate_database()
    engine = make_engine(url, pool_size=1)
    try:
        before, after = await migrate.upgrade(engine)
        # As the owner: the only login that may shorten the database's retention floors.
        floors = await write_retention_floors(
            engine, retention_days=settings.retention_days, history_days=settings.retention_history_days
        )
    finally:
        await engine.dispose()
    where = safe_url(url)
    if before == after:
        print(f"schema of {where} is current (revision {after})")
    else:
        print(f"schema of {where} upgraded from {before or 'empty'} to revision {after}")
    if floors.kept:
        configured = {"retention_days": settings.retention_days,
                      "retention_history_days": settings.retention_history_days}  # fmt: skip
        print("gdpr-daemon: this login is not the schema owner, so the database keeps its retention floors: "
              + floors.describe_kept(configured), file=sys.stderr)  # fmt: skip
    return EXIT_OK


async def cmd_run(args: argparse.Namespace) -> int:
    if args.dry_run and not args.once:
        raise UsageError("--dry-run goes with --once: gdpr-daemon run --once --dry-run")
    from gdpr_daemon.daemon import Daemon

    settings = _settings(args)
    if args.dry_run:
        from gdpr_daemon.submit.dryrun import run_dry

        _setup_logging(settings, quiet=True)
        return await run_dry(settings)
    _setup_logging(settings)
    daemon = Daemon(settings)
    if args.once:
        report = await daemon.run_once()
        print(
            f"run --once: {report.submitted} submitted, {report.retry_later} to retry later, "
            f"{report.failed} failed, {report.rejected} rejected ({report.submit_seconds:.1f} s)"
        )
        if report.events.get("failed"):
            print("run --once: the event pull failed (see the log); it resumes from the cursor next time",
                  file=sys.stderr)  # fmt: skip
            return EXIT_FAILURE
        ev = report.events
        if ev.get("skipped_locked"):
            print("run --once: events: another process is pulling events now; skipped")
        else:
            print(f"run --once: events: {ev.get('stored', 0)} stored, {ev.get('quarantined', 0)} quarantined, "
                  f"{ev.get('confirmed', 0)} requests confirmed, cursor {ev.get('cursor')} "
                  f"({report.events_seconds:.1f} s)")  # fmt: skip
        return EXIT_OK

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return await daemon.run(stop)


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
    s.add_argument("--dry-run", action="store_true",
                   help="with --once: check every waiting request against the account and print what "
                   "would be submitted, changing nothing")  # fmt: skip
    s.set_defaults(func=cmd_run)

    from gdpr_daemon.commands import dpo as dpo_commands
    from gdpr_daemon.commands import requests as requests_commands

    requests_commands.add_parsers(sub)

    from gdpr_daemon.commands import status as status_commands

    status_commands.add_parsers(sub)

    from gdpr_daemon.commands.audit import add_events_parser, add_report_parser

    add_events_parser(sub)
    add_report_parser(sub)

    from gdpr_daemon.commands import integrity as integrity_commands

    integrity_commands.add_parsers(sub)
    dpo_commands.add_parsers(sub)

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
    # `python -m gdpr_daemon` and the console script catch SIGTERM while starting (see
    # __main__); only `run` keeps that until it installs its drain handler.
    if (args.func is not cmd_run or args.once) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    from gdpr_daemon.daemon import StartupError
    from gdpr_daemon.db.requests import RequestError

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
    except Exception as exc:
        from gdpr_daemon.errors import describe
        from gdpr_daemon.safetext import escape_controls, mask_url

        # An error may quote the database URL (a driver that cannot parse it): no password.
        print(f"gdpr-daemon: {escape_controls(mask_url(describe(exc)))}", file=sys.stderr)
        return EXIT_FAILURE


