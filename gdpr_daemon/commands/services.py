"""`gdpr-daemon services` and `gdpr-daemon backups SERVICE_ID`: what the OwnBackup account holds."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gdpr_daemon.commands.common import Needs

if TYPE_CHECKING:
    from gdpr_daemon.runtime import Runtime

EXIT_OK = 0

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


async def cmd_services(args: argparse.Namespace, rt: Runtime) -> int:
    services = sorted(await rt.client.list_services(), key=lambda s: s.id)
    columns = SERVICE_COLUMNS if args.format == "table" else SERVICE_FIELDS
    _print(_as_rows(services, columns), columns, args.format, "the account has no services")
    if args.format == "table" and any(s.archived or s.enabled is False for s in services):
        print("\nDisabled and archived services still hold backups with personal data: requests to them "
              "are submitted like any other (submit --all-services includes them).")  # fmt: skip
    return EXIT_OK


async def cmd_backups(args: argparse.Namespace, rt: Runtime) -> int:
    backups = await rt.client.list_backups(args.service_id)
    # Newest first: a running backup (no completed_at yet), then by completion, then by id.
    backups.sort(key=lambda b: (b.completed_at is None, b.completed_at or datetime.min.replace(tzinfo=UTC), b.id),
                 reverse=True)  # fmt: skip
    rows, columns = _backup_rows(backups, args.format)
    _print(rows, columns, args.format, f"service {args.service_id} has no backups")
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser("services", help="list the OwnBackup account's backup services",
                       description="Every backup service of the account (id, name, provider, status, "
                       "enabled, archived, last backup): find the service id for a request here.")  # fmt: skip
    s.add_argument("--format", choices=("table", "json", "csv"), default="table", help="output format")
    s.set_defaults(func=cmd_services, needs=Needs(api=True))

    s = sub.add_parser("backups", help="list the backups of one service",
                       description="The backups OwnBackup holds of one service, newest first: status, "
                       "trigger, when each completed, its sections (ok/info/warning/error) and the items "
                       "it inserted, updated and deleted. JSON and CSV carry every field of the API.")  # fmt: skip
    s.add_argument("service_id", type=int, metavar="SERVICE_ID")
    s.add_argument("--format", choices=("table", "json", "csv"), default="table", help="output format")
    s.set_defaults(func=cmd_backups, needs=Needs(api=True))
