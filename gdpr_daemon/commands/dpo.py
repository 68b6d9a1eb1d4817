"""The DPO's account and file commands: `services`, `backups SERVICE_ID`, `import FILE.csv`."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gdpr_daemon.commands.common import ACTOR, actor, settings_from_args, setup_logging

EXIT_OK, EXIT_FAILURE = 0, 1

SERVICE_COLUMNS = [
    ("id", "ID"), ("displayed_name", "NAME"), ("provider", "PROVIDER"), ("status", "STATUS"),
    ("enabled", "ENABLED"), ("archived", "ARCHIVED"), ("last_backup", "LAST BACKUP"),
]  # fmt: skip
# JSON and CSV carry every field of the API's answer; the table only what fits a terminal.
SERVICE_FIELDS = [
    *SERVICE_COLUMNS, ("secondary_name", "SECONDARY NAME"), ("org_id", "ORG ID"), ("num_items", "ITEMS"),
    ("total_size", "SIZE"), ("return_code", "RETURN CODE"), ("return_message", "RETURN MESSAGE"),
]  # fmt: skip
BACKUP_COLUMNS = [
    ("id", "ID"), ("status", "STATUS"), ("trigger_type", "TRIGGER"), ("completed_at", "COMPLETED"),
    ("sections", "SECTIONS OK/INFO/WARN/ERR"), ("num_inserted_items", "INSERTED"),
    ("num_updated_items", "UPDATED"), ("num_deleted_items", "DELETED"),
]  # fmt: skip
BACKUP_FIELDS = [
    ("id", "ID"), ("status", "STATUS"), ("trigger_type", "TRIGGER"), ("completed_at", "COMPLETED"),
    ("num_sections", "SECTIONS"), ("num_sections_ok", "OK"), ("num_sections_info", "INFO"),
    ("num_sections_warning", "WARNING"), ("num_sections_error", "ERROR"),
    ("num_inserted_items", "INSERTED"), ("num_updated_items", "UPDATED"), ("num_deleted_items", "DELETED"),
    ("num_api_calls", "API CALLS"), ("num_bulk_api_batches", "BULK BATCHES"),
]  # fmt: skip


def _as_rows(objs: list[Any], columns: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [{k: getattr(o, k) for k, _ in columns} for o in objs]


def _sections(backup: Any) -> str:
    """``8/0/0/0`` of 8 sections: how many ended ok, with info, a warning or an error."""
    counts = (backup.num_sections_ok, backup.num_sections_info, backup.num_sections_warning,
              backup.num_sections_error)  # fmt: skip
    shown = "/".join("?" if c is None else str(c) for c in counts)
    return shown if backup.num_sections is None else f"{shown} of {backup.num_sections}"


def _backup_rows(backups: list[Any], fmt: str) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    if fmt != "table":
        return _as_rows(backups, BACKUP_FIELDS), BACKUP_FIELDS
    rows = [{k: _sections(b) if k == "sections" else getattr(b, k) for k, _ in BACKUP_COLUMNS} for b in backups]
    for row in rows:
        if row["completed_at"] is None:
            row["completed_at"] = "running"
    return rows, BACKUP_COLUMNS


def _print(rows: list[dict[str, Any]], columns: list[tuple[str, str]], fmt: str, empty: str) -> None:
    from gdpr_daemon import render

    if fmt == "json":
        print(render.to_json(rows))
    elif fmt == "csv":
        sys.stdout.write(render.to_csv(rows, [k for k, _ in columns]))
    elif rows:
        print(render.table(rows, columns, max_width=70))
    else:
        print(empty)


async def cmd_services(args: argparse.Namespace) -> int:
    from gdpr_daemon.dpo.fanout import account_services

    settings = settings_from_args(args)
    setup_logging(settings, quiet=True)
    services = sorted(await account_services(settings), key=lambda s: s.id)
    columns = SERVICE_COLUMNS if args.format == "table" else SERVICE_FIELDS
    _print(_as_rows(services, columns), columns, args.format, "the account has no services")
    if args.format == "table" and any(s.archived or s.enabled is False for s in services):
        print("\nDisabled and archived services still hold backups with personal data: requests to them "
              "are submitted like any other (submit --all-services includes them).")  # fmt: skip
    return EXIT_OK


async def cmd_backups(args: argparse.Namespace) -> int:
    from gdpr_daemon.daemon import client_config
    from gdpr_daemon.ownbackup import OwnBackupClient

    settings = settings_from_args(args)
    setup_logging(settings, quiet=True)
    async with OwnBackupClient(client_config(settings)) as client:
        backups = await client.list_backups(args.service_id)
    # Newest first: a running backup (no completed_at yet), then by completion, then by id.
    backups.sort(key=lambda b: (b.completed_at is None, b.completed_at or datetime.min.replace(tzinfo=UTC), b.id),
                 reverse=True)  # fmt: skip
    rows, columns = _backup_rows(backups, args.format)
    _print(rows, columns, args.format, f"service {args.service_id} has no backups")
    return EXIT_OK


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


async def cmd_import(args: argparse.Namespace) -> int:
    from gdpr_daemon.commands.requests import sync_intake_settings
    from gdpr_daemon.db.engine import make_engine
    from gdpr_daemon.dpo.csvimport import HeaderError
    from gdpr_daemon.dpo.fanout import account_services
    from gdpr_daemon.dpo.importer import import_csv

    settings = settings_from_args(args)
    setup_logging(settings, quiet=True)
    path = Path(args.file)
    try:
        stream = path.open("rb")  # noqa: ASYNC230 - a command's own file, read as it streams by
    except OSError as exc:
        print(f"gdpr-daemon: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILURE

    async def service_ids() -> list[int]:
        return [s.id for s in await account_services(settings)]

    progress = Progress(path, stream, enabled=args.progress or sys.stderr.isatty())
    engine = make_engine(settings.require_database(), pool_size=1)
    started = time.monotonic()
    try:
        if not args.check:
            await sync_intake_settings(engine, settings)
        outcome = await import_csv(
            engine, stream, actor=actor(args), service_ids=service_ids, check_only=args.check,
            progress=progress, phase=progress.phase,
        )  # fmt: skip
    except HeaderError as exc:
        print(f"gdpr-daemon: {exc}. Nothing was imported.", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        stream.close()
        await engine.dispose()
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
    s = sub.add_parser("services", help="list the OwnBackup account's backup services",
                       description="Every backup service of the account (id, name, provider, status, "
                       "enabled, archived, last backup): find the service id for a request here.")  # fmt: skip
    s.add_argument("--format", choices=("table", "json", "csv"), default="table", help="output format")
    s.set_defaults(func=cmd_services)

    s = sub.add_parser("backups", help="list the backups of one service",
                       description="The backups OwnBackup holds of one service, newest first: status, "
                       "trigger, when each completed, its sections (ok/info/warning/error) and the items "
                       "it inserted, updated and deleted. JSON and CSV carry every field of the API.")  # fmt: skip
    s.add_argument("service_id", type=int, metavar="SERVICE_ID")
    s.add_argument("--format", choices=("table", "json", "csv"), default="table", help="output format")
    s.set_defaults(func=cmd_backups)

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
    s.set_defaults(func=cmd_import)

