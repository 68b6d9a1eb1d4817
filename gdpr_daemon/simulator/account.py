"""The objects of a simulated OwnBackup account and how a plausible default one is built.

Services, backups, jobs, seeding templates and seeds are small mutable dataclasses with a
``to_json`` giving exactly the fields the API answers.  Whatever progresses over time
(backups, jobs, seeds) stores when it started and how long it takes; its status and
counters are computed from the clock when asked, so nothing needs a background task.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gdpr_daemon.simulator.events import format_iso

ORG_TYPES = ("production", "full_sandbox", "partial_sandbox", "developer_sandbox")

# Salesforce objects a backup holds, with their key prefix and CSV columns.
OBJECTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "Account": ("001", ("Id", "Name", "Industry", "Phone", "BillingCity", "LastModifiedDate")),
    "Contact": (
        "003",
        ("Id", "AccountId", "FirstName", "LastName", "Email", "Phone", "LastModifiedDate"),
    ),
    "Lead": (
        "00Q",
        ("Id", "FirstName", "LastName", "Company", "Email", "Status", "LastModifiedDate"),
    ),
    "Opportunity": ("006", ("Id", "AccountId", "Name", "StageName", "Amount", "LastModifiedDate")),
    "Case": ("500", ("Id", "ContactId", "Subject", "Status", "Priority", "LastModifiedDate")),
    "Task": ("00T", ("Id", "WhoId", "Subject", "Status", "ActivityDate", "LastModifiedDate")),
    "User": ("005", ("Id", "Username", "FirstName", "LastName", "Email", "LastModifiedDate")),
    "Campaign": ("701", ("Id", "Name", "Type", "Status", "StartDate", "LastModifiedDate")),
}
OBJECT_NAMES = tuple(OBJECTS)
# Section ids are ``backup id * SECTIONS_PER_BACKUP + n``: unique across the account.
SECTIONS_PER_BACKUP = 1_000


def org_id_for(service_id: int, seed: int) -> str:
    """A Salesforce-looking 18 character org id, stable for a service id."""
    rng = random.Random(service_id * 7919 + seed)  # noqa: S311 - simulated data, not secrets
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "00D" + "".join(rng.choice(alphabet) for _ in range(12)) + "EAA"


@dataclass(slots=True)
class Service:
    """A backup service (one Salesforce org); ``org_type`` is known only to the simulator."""

    id: int
    displayed_name: str
    org_type: str
    provider: str = "Salesforce"
    org_id: str = ""
    status: str = "ACTIVE"
    enabled: int = 1
    archived: bool = False
    secondary_name: str | None = None
    last_backup: float | None = None
    num_items: int = 0
    total_size: int = 0
    return_code: int = 0
    return_message: str = "Backup completed successfully"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "displayed_name": self.displayed_name,
            "secondary_name": self.secondary_name,
            "provider": self.provider,
            "org_id": self.org_id,
            "status": self.status,
            "enabled": self.enabled,
            "archived": self.archived,
            "last_backup": format_iso(self.last_backup) if self.last_backup is not None else None,
            "num_items": self.num_items,
            "total_size": self.total_size,
            "return_code": self.return_code,
            "return_message": self.return_message,
        }


@dataclass(slots=True)
class Backup:
    """One backup of a service; ``objects`` maps object name to its item counts."""

    id: int
    service_id: int
    started_at: float
    duration_s: float
    trigger_type: str
    objects: dict[str, dict[str, int]]

    def completed(self, now: float) -> bool:
        return now >= self.started_at + self.duration_s

    def totals(self) -> dict[str, int]:
        keys = ("total_items", "added_items", "removed_items", "changed_items")
        return {k: sum(o[k] for o in self.objects.values()) for k in keys}

    def total_size(self) -> int:
        return self.totals()["total_items"] * 1_137

    def section_id(self, index: int) -> int:
        """The id of the ``index``-th object section (stable, unique across backups)."""
        return self.id * SECTIONS_PER_BACKUP + index + 1

    def sections_json(self, link: Callable[[str, str], str]) -> list[dict[str, Any]]:
        """The object sections as ``GET .../objects`` answers them (the published flat shape).

        ``link(object_name, kind)`` gives the absolute URL of one CSV (kind ``full``,
        ``added``, ``changed`` or ``removed``).
        """
        out = []
        for index, (name, counts) in enumerate(self.objects.items()):
            usage = _api_usage(counts["total_items"])
            out.append(
                {
                    "id": self.section_id(index),
                    "name": name,
                    "status": "ok",
                    "message": "",
                    "num_items": counts["total_items"],
                    "num_inserted_items": counts["added_items"],
                    "num_updated_items": counts["changed_items"],
                    "num_deleted_items": counts["removed_items"],
                    "num_api_calls": usage[0],
                    "num_bulk_api_batches": usage[1],
                    "download_link": link(name, "full"),
                    "download_added_link": link(name, "added"),
                    "download_changed_link": link(name, "changed"),
                    "download_removed_link": link(name, "removed"),
                }
            )
        return out

    def to_json(self, now: float) -> dict[str, Any]:
        """The published shape; a running backup has status ``IN_PROGRESS`` and no completed_at."""
        done = self.completed(now)
        totals = self.totals()
        usage = [_api_usage(o["total_items"]) for o in self.objects.values()]
        sections = len(self.objects)
        return {
            "id": self.id,
            "status": "OK" if done else "IN_PROGRESS",
            "trigger_type": self.trigger_type,
            "completed_at": format_iso(self.started_at + self.duration_s) if done else None,
            "num_sections": sections,
            "num_sections_ok": sections if done else 0,
            "num_sections_info": 0,
            "num_sections_warning": 0,
            "num_sections_error": 0,
            "num_api_calls": sum(u[0] for u in usage),
            "num_bulk_api_batches": sum(u[1] for u in usage),
            "num_inserted_items": totals["added_items"],
            "num_updated_items": totals["changed_items"],
            "num_deleted_items": totals["removed_items"],
        }


def _api_usage(items: int) -> tuple[int, int]:
    """Plausible Salesforce API calls and Bulk API batches spent backing up ``items`` records."""
    return 2 + items // 200, items // 10_000


def _progress(now: float, started_at: float, duration_s: float) -> float:
    if duration_s <= 0:
        return 1.0
    return min(max((now - started_at) / duration_s, 0.0), 1.0)


@dataclass(slots=True)
class Job:
    """An export or anonymization job; progress moves from 0 to 100 over ``duration_s``.

    ``results`` (sentences or file names) are answered once the job has completed.
    """

    id: int
    title: str
    started_at: float
    duration_s: float
    results: list[str]
    kind: str = "export"

    def to_json(self, now: float) -> dict[str, Any]:
        fraction = _progress(now, self.started_at, self.duration_s)
        done = fraction >= 1.0
        return {
            "id": self.id,
            "title": self.title,
            "status": "COMPLETED" if done else ("PENDING" if fraction == 0 else "IN_PROGRESS"),
            "progress": int(fraction * 100),
            "results": list(self.results) if done else [],
        }


@dataclass(slots=True)
class SeedingTemplate:
    id: int
    name: str
    source_service_id: int
    objects: tuple[str, ...]
    records: int
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "source_service_id": self.source_service_id,
            "objects": list(self.objects),
            "num_records": self.records,
            "created_at": format_iso(self.created_at),
        }


#: A seed's ``seed_id`` is this plus its ``id`` (the published example has both, differing).
SEED_ID_BASE = 731_000_000


@dataclass(slots=True)
class Seed:
    """A seed run: ``STARTED``, ``IN_PROGRESS`` with counters moving, then ``COMPLETED``."""

    id: int
    template_id: int
    source_service_id: int
    destination: int
    seeding_method: str
    disable_automations: bool
    automations_to_disable: tuple[str, ...]
    records_total: int
    started_at: float
    duration_s: float
    records_deleted: int = 0

    @property
    def seed_id(self) -> int:
        return SEED_ID_BASE + self.id

    def to_json(self, now: float) -> dict[str, Any]:
        """The published shape of a seed (``GET seeding/seed/{seed_id}``)."""
        fraction = _progress(now, self.started_at, self.duration_s)
        if fraction >= 1.0:
            status = "COMPLETED"
        elif fraction < 0.1:
            status = "STARTED"
        else:
            status = "IN_PROGRESS"
        finished = format_iso(self.started_at + self.duration_s) if status == "COMPLETED" else None
        return {
            "id": self.id,
            "seed_id": self.seed_id,
            "template": self.template_id,
            "dest_service_id": self.destination,
            "seeding_method": self.seeding_method,
            "disable_automations": self.disable_automations,
            "status": status,
            "progress": int(fraction * 100),
            "created_at": format_iso(self.started_at),
            "started_at": format_iso(self.started_at),
            "finished_at": finished,
            "total_insert_records": self.records_total,
            "insert_success_records": int(self.records_total * fraction),
            "insert_fail_records": 0,
            "total_delete_records": self.records_deleted,
            "delete_success_records": int(self.records_deleted * fraction),
            "delete_fail_records": 0,
            "duplicated_records": 0,
        }


# The canonical six services; a larger account repeats sandboxes after them.
_DEFAULT_SERVICES: tuple[tuple[str, str | None, str, int, bool, int, str], ...] = (
    # displayed_name, secondary_name, org_type, enabled, archived, return_code, return_message
    ("Acme Production", None, "production", 1, False, 0, "Backup completed successfully"),
    ("Acme Full Sandbox (UAT)", "uat", "full_sandbox", 1, False, 0, "Backup completed successfully"),
    ("Acme Partial Sandbox (QA)", "qa", "partial_sandbox", 1, False, 0, "Backup completed successfully"),
    ("Acme Partial Sandbox (Training)", "training", "partial_sandbox", 1, False, 1,
     "Backup completed with warnings: 2 objects skipped"),
    ("Acme Developer Sandbox (legacy)", "legacy", "developer_sandbox", 0, False, 0,
     "Backup completed successfully"),
    ("Acme EU Production (acquired 2017)", None, "production", 0, True, 0,
     "Backup completed successfully"),
)  # fmt: skip


def build_services(count: int, first_id: int, seed: int) -> list[Service]:
    """``count`` services with ids ``first_id``, ``first_id + 1``, ..."""
    services = []
    for index in range(count):
        sid = first_id + index
        secondary: str | None
        if index < len(_DEFAULT_SERVICES):
            name, secondary, org_type, enabled, archived, code, message = _DEFAULT_SERVICES[index]
        else:
            kind = "partial_sandbox" if index % 2 else "developer_sandbox"
            label = "Partial" if kind == "partial_sandbox" else "Developer"
            name, org_type, enabled, archived = f"Acme {label} Sandbox {index + 1}", kind, 1, False
            secondary = f"sandbox{index + 1}"
            code, message = 0, "Backup completed successfully"
        status = "ARCHIVED" if archived else ("ACTIVE" if enabled else "DISABLED")
        services.append(
            Service(
                id=sid,
                displayed_name=name,
                secondary_name=secondary,
                org_type=org_type,
                org_id=org_id_for(sid, seed),
                status=status,
                enabled=enabled,
                archived=archived,
                return_code=code,
                return_message=message,
            )
        )
    return services


def object_counts(
    rng: random.Random, names: tuple[str, ...], scale: int
) -> dict[str, dict[str, int]]:
    """Plausible item counts of the objects ``names`` in one backup."""
    out = {}
    for name in names:
        total = rng.randint(20, 60) * scale
        out[name] = {
            "total_items": total,
            "added_items": rng.randint(0, max(total // 10, 1)),
            "removed_items": rng.randint(0, max(total // 25, 1)),
            "changed_items": rng.randint(0, max(total // 8, 1)),
        }
    return out


_TRIGGER_NAMES = ("BeforeInsert", "AfterUpdate", "BeforeDelete")
_RULE_NAMES = ("CountryValidation", "ReasonRequired", "EmailFormat", "Required_Fields")


def build_automations(service: Service, seed: int) -> dict[str, list[str]]:
    """The active automations of a service, as the API answers them: lists of
    ``Object.Name`` strings by kind."""
    rng = random.Random(service.id * 31 + seed)  # noqa: S311 - simulated data, not secrets
    triggers = []
    rules = []
    for obj in ("Account", "Contact", "Lead", "Opportunity", "Case"):
        if rng.random() < 0.7:
            triggers.append(f"{obj}.{rng.choice(_TRIGGER_NAMES)}")
        if rng.random() < 0.6:
            rules.append(f"{obj}.{rng.choice(_RULE_NAMES)}")
    # Every org has at least one of each, as in the published example.
    return {
        "ApexTrigger": triggers or ["Account.BeforeInsert"],
        "ValidationRule": rules or ["Account.CountryValidation"],
    }


def template_specs(services: list[Service]) -> list[tuple[str, int, tuple[str, ...], int]]:
    """(name, source service id, objects, records) of the default seeding templates."""
    production = [s for s in services if s.org_type == "production" and not s.archived]
    source = (production or services)[0].id
    return [
        ("Sales pipeline sample", source, ("Account", "Contact", "Opportunity"), 1_200),
        ("Service cloud cases", source, ("Account", "Contact", "Case"), 800),
        ("Marketing leads (masked)", source, ("Lead", "Campaign"), 2_500),
    ]


def default_export_title(backup: Backup, service: Service, export_format: str) -> str:
    return f"Export of backup {backup.id} of {service.displayed_name} to {export_format.upper()}"
