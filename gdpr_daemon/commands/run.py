"""`gdpr-daemon run`: the daemon until SIGTERM or SIGINT; `--once`; `--once --dry-run`."""

from __future__ import annotations

import argparse
import gc
import sys
from typing import TYPE_CHECKING

from gdpr_daemon.commands.common import Needs, UsageError, setup_logging, stop_on_signals

if TYPE_CHECKING:
    from gdpr_daemon.daemon import Daemon
    from gdpr_daemon.runtime import Runtime

EXIT_OK, EXIT_FAILURE = 0, 1

#: Allocations (net of frees) that start a collection of the youngest generation; Python's default is 700.
GC_YOUNG_THRESHOLD = 10_000


def tune_gc() -> None:
    """Fewer garbage collections while the daemon works.

    Every claim in progress keeps a hundred or so objects alive (its task, futures, the
    HTTP request and answer), so with Python's default threshold the collector ran
    several hundred times in a drain of 10,000 requests, each time walking every young
    object, and the older generations' collections walked the whole heap: about 9% of the
    process's CPU in bench/drain.py.  The objects made at start-up (modules, the
    configuration, the pools) are moved out of the collector's sight (``gc.freeze``) and
    the young generation is collected after 10,000 net allocations instead of 700.
    Reference counting still frees almost everything at once; only reference cycles
    wait for a collection, and at most 10,000 new objects' worth of them.
    """
    gc.collect()
    gc.freeze()
    _young, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def check_usage(args: argparse.Namespace) -> None:
    if args.dry_run and not args.once:
        raise UsageError("--dry-run goes with --once: gdpr-daemon run --once --dry-run")


async def cmd_run(args: argparse.Namespace, rt: Runtime) -> int:
    if args.dry_run:
        return await dry_run(rt)
    from gdpr_daemon.daemon import Daemon

    daemon = Daemon(rt)
    tune_gc()
    if args.once:
        return await once(daemon)
    return await daemon.run(stop_on_signals())


async def dry_run(rt: Runtime) -> int:
    """`run --once --dry-run`: print the report; exit status 0 (a rejection is the system working)."""
    from gdpr_daemon.submit.dryrun import dry_run, render_report

    setup_logging(rt.settings, quiet=True)
    await rt.check_schema()
    report = await dry_run(rt.engine, rt.client.list_services)
    print(render_report(report))
    return EXIT_OK


async def once(daemon: Daemon) -> int:
    """`run --once`: submit what is due, pull events once, print both summaries."""
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


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
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
    s.set_defaults(func=cmd_run, needs=Needs(api=True, quiet=False, service=True), check_usage=check_usage)
