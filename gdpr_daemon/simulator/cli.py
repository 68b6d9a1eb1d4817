"""``gdpr-daemon simulate``: run the OwnBackup API simulator until SIGINT or SIGTERM.

The main command line calls :func:`add_arguments` on its ``simulate`` sub-parser and
:func:`run` with the parsed arguments.  Credentials default to the daemon's own
``GDPR_DAEMON_OWNBACKUP_EMAIL`` / ``GDPR_DAEMON_OWNBACKUP_PASSWORD``, so a daemon and a
simulator started from the same environment fit together.  The password is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Mapping

from gdpr_daemon.simulator.config import GDPR_ANSWER_KEYS, SimulatorConfig
from gdpr_daemon.simulator.events import DATE_FORMATS
from gdpr_daemon.simulator.faults import ALL_MALFORMED_MODES, FaultConfig
from gdpr_daemon.simulator.server import Simulator

DEFAULT_EMAIL = "dpo@example.com"
DEFAULT_PASSWORD = "simulator"  # noqa: S105 - the documented password of a local simulator
DEFAULT_PORT = 8089


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``simulate`` options to ``parser``, one argument group per subject."""
    _add_server_arguments(parser)
    _add_auth_arguments(parser)
    _add_account_arguments(parser)
    _add_dialect_arguments(parser)
    _add_latency_and_rate_limit_arguments(parser)
    _add_error_arguments(parser)
    _add_spoiled_answer_arguments(parser)


def _add_server_arguments(parser: argparse.ArgumentParser) -> None:
    server = parser.add_argument_group("server")
    server.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)",
    )
    server.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"TCP port to listen on, 0 for any free one (default {DEFAULT_PORT})",
    )


def _add_auth_arguments(parser: argparse.ArgumentParser) -> None:
    auth = parser.add_argument_group("authentication")
    auth.add_argument(
        "--email",
        default=None,
        help="login email (default $GDPR_DAEMON_OWNBACKUP_EMAIL, else dpo@example.com)",
    )
    auth.add_argument(
        "--password",
        default=None,
        help="login password (default $GDPR_DAEMON_OWNBACKUP_PASSWORD, else 'simulator')",
    )
    auth.add_argument(
        "--api-token",
        action="append",
        default=None,
        metavar="TOKEN",
        help="API token accepted at the OAuth token path as refresh_token (repeatable; "
        "default 'simulator-api-token')",
    )
    auth.add_argument(
        "--token-ttl",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="lifetime of OAuth access tokens in seconds (default 3600)",
    )


def _add_account_arguments(parser: argparse.ArgumentParser) -> None:
    account = parser.add_argument_group("account data")
    account.add_argument(
        "--services",
        type=int,
        default=6,
        metavar="N",
        help="number of backup services in the account (default 6)",
    )
    account.add_argument(
        "--events",
        type=int,
        default=0,
        metavar="N",
        help="synthetic events already in the account history (default 0; millions cost nothing)",
    )
    account.add_argument(
        "--erase-old-backups-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="a forget or rectify reaches the CSVs of backups started before it after this long "
        "(default: never; backups started after it never hold the old data)",
    )
    account.add_argument(
        "--backup-rows",
        type=int,
        default=None,
        metavar="N",
        help="records in every object section of a backup taken with back-up-now (default: a few "
        "dozen to a few hundred); for large-download tests",
    )
    account.add_argument(
        "--seed",
        type=int,
        default=1,
        help="seed for the generated account and the fault generator (default 1)",
    )


def _add_dialect_arguments(parser: argparse.ArgumentParser) -> None:
    dialect = parser.add_argument_group("answer formats and request validation")
    dialect.add_argument(
        "--date-format",
        choices=DATE_FORMATS,
        default="rfc1123",
        help="format of event created_at: rfc1123 (vendor example), iso, or mixed (alternating)",
    )
    dialect.add_argument(
        "--gdpr-answer-key",
        choices=GDPR_ANSWER_KEYS,
        default="id",
        help="key of the GDPR calls' answer: id (published API) or job_id",
    )
    dialect.add_argument(
        "--no-validate",
        dest="validate_requests",
        action="store_false",
        help="do not check requests against the OpenAPI document (by default a request "
        "that breaks it answers 400)",
    )


def _add_latency_and_rate_limit_arguments(parser: argparse.ArgumentParser) -> None:
    faults = parser.add_argument_group(
        "faults: latency and rate limits",
        "Faults apply to /api/... calls only, never to /_simulator/ nor the OAuth token path.",
    )
    faults.add_argument(
        "--latency-ms", type=int, default=0, help="milliseconds added to every API call"
    )
    faults.add_argument(
        "--latency-jitter-ms",
        type=int,
        default=0,
        help="up to this many more milliseconds, at random",
    )
    faults.add_argument(
        "--burst-429",
        type=int,
        default=0,
        metavar="N",
        help="the first N API calls answer 429 Too Many Requests",
    )
    faults.add_argument(
        "--rate-429",
        type=float,
        default=0.0,
        metavar="P",
        help="probability (0..1) that any call answers 429",
    )
    faults.add_argument(
        "--retry-after",
        type=int,
        default=1,
        metavar="S",
        help="Retry-After seconds sent with each 429 (integer, default 1)",
    )


def _add_error_arguments(parser: argparse.ArgumentParser) -> None:
    faults = parser.add_argument_group("faults: errors and expired sessions")
    faults.add_argument(
        "--rate-5xx",
        type=float,
        default=0.0,
        metavar="P",
        help="probability (0..1) that a call answers 500/502/503, HTML or JSON",
    )
    faults.add_argument(
        "--failing-service",
        type=int,
        action="extend",
        nargs="+",
        default=[],
        metavar="ID",
        help="GDPR calls to these service ids always answer 500 (repeatable)",
    )
    faults.add_argument(
        "--rejecting-service",
        type=int,
        action="extend",
        nargs="+",
        default=[],
        metavar="ID",
        help="GDPR calls to these service ids always answer 400 (repeatable)",
    )
    faults.add_argument(
        "--session-expiry-after",
        type=int,
        default=0,
        metavar="N",
        help="a session or token dies after N calls; the next call gets 401 (0: never)",
    )


def _add_spoiled_answer_arguments(parser: argparse.ArgumentParser) -> None:
    faults = parser.add_argument_group("faults: spoiled and held-back answers")
    faults.add_argument(
        "--malformed-rate",
        type=float,
        default=0.0,
        metavar="P",
        help="probability (0..1) that a successful JSON answer is spoiled",
    )
    faults.add_argument(
        "--malformed-mode",
        choices=ALL_MALFORMED_MODES,
        default="truncated_json",
        help="how answers are spoiled (default truncated_json)",
    )
    faults.add_argument(
        "--hang-ms",
        type=int,
        default=0,
        help="hold every answer back this long after doing the work (client timeouts)",
    )
    faults.add_argument(
        "--hang-rate",
        type=float,
        default=1.0,
        metavar="P",
        help="probability (0..1) that a call hangs when --hang-ms is set",
    )


def build(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Simulator:
    """The simulator the parsed ``args`` describe (``ValueError`` for bad values)."""
    env = os.environ if environ is None else environ
    email = args.email or env.get("GDPR_DAEMON_OWNBACKUP_EMAIL") or DEFAULT_EMAIL
    password = args.password
    if password is None:
        password = env.get("GDPR_DAEMON_OWNBACKUP_PASSWORD") or DEFAULT_PASSWORD
    config = SimulatorConfig(
        email=email,
        password=password,
        services=args.services,
        synthetic_events=args.events,
        date_format=args.date_format,
        token_ttl_seconds=args.token_ttl,
        api_tokens=tuple(args.api_token or ("simulator-api-token",)),
        seed=args.seed,
        gdpr_answer_key=args.gdpr_answer_key,
        validate_requests=getattr(args, "validate_requests", True),
        erase_old_backups_after_seconds=getattr(args, "erase_old_backups_after", None),
        backup_now_rows=getattr(args, "backup_rows", None),
    )
    faults = FaultConfig(
        rate_5xx=args.rate_5xx,
        latency_ms=args.latency_ms,
        latency_jitter_ms=args.latency_jitter_ms,
        burst_429=args.burst_429,
        rate_429=args.rate_429,
        retry_after_s=args.retry_after,
        session_expiry_after_calls=args.session_expiry_after,
        failing_services=frozenset(args.failing_service),
        rejecting_services=frozenset(args.rejecting_service),
        malformed_rate=args.malformed_rate,
        malformed_mode=args.malformed_mode,
        hang_ms=args.hang_ms,
        hang_rate=args.hang_rate,
        seed=args.seed,
    )
    return Simulator(config, faults=faults)


async def serve_until_stopped(sim: Simulator, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM; print one line saying where and how to use it."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with sim.serve(host=host, port=port) as url:
            print(
                f"OwnBackup API simulator listening on {url} (login {sim.config.email}); "
                f"point the daemon at it with GDPR_DAEMON_OWNBACKUP_URL={url}; "
                f"control endpoints under {url}/_simulator/; Ctrl-C stops it",
                flush=True,
            )
            await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run(args: argparse.Namespace) -> int:
    """Run the simulator; 0 after SIGINT/SIGTERM, 2 for bad options, 1 if it cannot listen."""
    try:
        sim = build(args)
    except ValueError as exc:
        print(f"gdpr-daemon simulate: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve_until_stopped(sim, args.host, args.port))
    except OSError as exc:
        print(f"gdpr-daemon simulate: cannot listen on {args.host}:{args.port}: {exc.strerror}",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m gdpr_daemon.simulator.cli``)."""
    from gdpr_daemon.logs import configure

    configure("console", "info")
    parser = argparse.ArgumentParser(
        prog="gdpr-daemon simulate", description="Run the OwnBackup API simulator."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
