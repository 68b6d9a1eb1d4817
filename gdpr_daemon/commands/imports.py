"""`gdpr-daemon import FILE.csv`: many requests from a CSV file, all or nothing."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gdpr_daemon.commands.common import ACTOR, Needs, actor, sync_intake_settings

if TYPE_CHECKING:
    from gdpr_daemon.runtime import Runtime

EXIT_OK, EXIT_FAILURE = 0, 1


class Progress:
    """Progress on stderr: a carriage-return counter on a terminal, else a line every 10 %."""

    def __init__(self, path: Path, stream: Any, enabled: bool) -> None:
        self.path, self.stream, self.enabled = path, stream, enabled
        self.tty = sys.stderr.isatty()
        self.size = path.stat().st_size if path.is_file() else 0
        self._shown = 0.0
        self._tenth = 0
        self._open_line = False

    def __call__(self, records: int) -> None:
        if not self.enabled:
            return
        fraction = self.stream.tell() / self.size if self.size and not self.stream.closed else None
        pct = f"{min(int((fraction or 0) * 100), 100)}% " if fraction is not None else ""
        text = f"reading {self.path.name}: {pct}({records:,} lines)"
        if self.tty:
            if time.monotonic() - self._shown >= 0.2:
                self._shown = time.monotonic()
                sys.stderr.write(f"\r{text}\033[K")
                self._open_line = True
        elif fraction is not None and int(fraction * 10) > self._tenth:
            self._tenth = int(fraction * 10)
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def phase(self, text: str) -> None:
        if self.enabled:
            sys.stderr.write(("\r" if self._open_line else "") + text + ("\033[K\n" if self.tty else "\n"))
            self._open_line = False
            sys.stderr.flush()


async def cmd_import(args: argparse.Namespace, rt: Runtime) -> int:
    from gdpr_daemon.dpo.imports import HeaderError, import_csv

    path = Path(args.file)
    try:
        stream = path.open("rb")  # noqa: ASYNC230 - a command's own file, read as it streams by
    except OSError as exc:
        print(f"gdpr-daemon: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILURE

    async def service_ids() -> list[int]:  # only for `service_id` all
        return [s.id for s in await (await rt.open_api()).list_services()]

    progress = Progress(path, stream, enabled=args.progress or sys.stderr.isatty())
    started = time.monotonic()
    try:
        if not args.check:
            await sync_intake_settings(rt)
        outcome = await import_csv(
            rt.engine, stream, actor=actor(args), service_ids=service_ids, check_only=args.check,
            progress=progress, phase=progress.phase,
        )  # fmt: skip
    except HeaderError as exc:
        print(f"gdpr-daemon: {exc}. Nothing was imported.", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        stream.close()
    took = time.monotonic() - started
    if outcome.problems:
        for p in outcome.problems:
            print(p, file=sys.stderr)
        total = len(outcome.problems) + outcome.more_problems
        if outcome.more_problems:
            print(f"(and {outcome.more_problems} more problems on later lines, not shown: fix these first)",
                  file=sys.stderr)  # fmt: skip
        print(f"import refused: {outcome.bad_lines} of {outcome.records} lines have problems "
              f"({total} in all); nothing was imported.", file=sys.stderr)  # fmt: skip
        return EXIT_FAILURE
    if args.check:
        print(f"{path.name}: {outcome.records} lines, {outcome.requests} requests, no problems found; "
              "nothing was imported (--check).")  # fmt: skip
        return EXIT_OK
    done = outcome.inserted
    assert done is not None
    ids = f" (ids {done.first_id} to {done.last_id})" if done.inserted else ""
    print(f"imported {done.inserted} requests from {outcome.records} lines of {path.name}{ids} in {took:.1f} s.")
    if done.awaiting_approval:
        print(f"{done.awaiting_approval} await approval by a second person (four eyes): "
              f"gdpr-daemon requests approve {done.first_id}-{done.last_id}")  # fmt: skip
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser(
        "import", help="enqueue many requests from a CSV file, all or nothing",
        description="Read a CSV file (UTF-8, header line first; see docs/dpo-guide.md) and enqueue its "
        "requests in one transaction. Every bad line is reported with its number and reason, and then "
        "nothing is imported. Header: request_type,service_id,table_name,record_id,field,value,comment,"
        "external_ref,received_at,requested_by (the first four required; service_id may be `all`).",
    )  # fmt: skip
    s.add_argument("file", metavar="FILE.csv")
    s.add_argument("--check", action="store_true", help="check the file only; import nothing")
    s.add_argument("--progress", action="store_true",
                   help="show progress on standard error (the default when it is a terminal)")  # fmt: skip
    s.add_argument("--actor", metavar="NAME", type=ACTOR,
                   help="who enters the requests, where the file has no requested_by "
                   "(default: your user name)")  # fmt: skip
    s.set_defaults(func=cmd_import, needs=Needs())

