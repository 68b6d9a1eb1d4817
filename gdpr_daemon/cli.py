"""The ``gdpr-daemon`` command line: parse, open the command's runtime, dispatch, map errors to exit codes.

The commands themselves live in :mod:`gdpr_daemon.commands`, one module per noun.

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

from gdpr_daemon import __version__, commands
from gdpr_daemon.commands.common import Needs, UsageError, settings_from_args, setup_logging
from gdpr_daemon.config import ConfigError
from gdpr_daemon.runtime import open_runtime

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

EPILOG = """\
Configuration comes from --config FILE (or GDPR_DAEMON_CONFIG) and GDPR_DAEMON_* environment
variables, which win. The least you need: GDPR_DAEMON_DATABASE_URL, GDPR_DAEMON_OWNBACKUP_REGION
(or _URL), GDPR_DAEMON_OWNBACKUP_EMAIL and GDPR_DAEMON_OWNBACKUP_PASSWORD (or _PASSWORD_FILE).
Try it all without any set-up: gdpr-daemon demo
"""


# ---- dispatch ---------------------------------------------------------------------------


async def run_command(args: argparse.Namespace) -> int:
    """Open the runtime the command needs, once, and hand it over (see gdpr_daemon.runtime)."""
    needs: Needs = args.needs
    settings = settings_from_args(args)
    setup_logging(settings, quiet=needs.quiet and not getattr(args, "verbose", False))
    pool_size, name = needs.pool_size, None
    if needs.service:  # the daemon: its pool, and a name per replica in pg_stat_activity
        pool_size, name = settings.database_pool_size, f"gdpr-daemon {settings.instance_name}"
    async with open_runtime(settings, api=needs.api, migrate_login=needs.migrate_login, pool_size=pool_size,
                            application_name=name) as rt:  # fmt: skip
        return int(await args.func(args, rt))


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
    for module in commands.MODULES:
        module.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # `python -m gdpr_daemon` and the console script catch SIGTERM while starting (see
    # __main__); only `run` keeps that until it installs its drain handler.
    if (args.command != "run" or args.once) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    from gdpr_daemon.db.requests import RequestError
    from gdpr_daemon.runtime import StartupError

    try:
        check_usage = getattr(args, "check_usage", None)
        if check_usage is not None:
            check_usage(args)
        if getattr(args, "needs", None) is not None:
            return asyncio.run(run_command(args))
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


