"""The CSV files a backup's download links point at: full, added, removed and changed data.

Rows are generated deterministically from (service, backup, object, kind, seed), so a link
fetched twice answers the same bytes.  Record ids look like Salesforce ids (object key
prefix, 18 characters) and are stable across backups of a service: record number ``n`` of
``Contact`` in service 1001 is always the same id, which lets tests pick real-looking ids
for GDPR requests.

The files are generated while they are sent (:func:`csv_chunks`), a block of rows at a
time, so a section of a million records costs the simulator no more memory than one of
ten.

GDPR calls change them as they change the vendor's backups (:class:`Erasures`): a
forgotten record is missing from every backup started after the forget, and a rectified
field carries the new value there.  Backups started before the call (those completed
before it, and one under way when it came) keep the old data until
``erase_old_backups_after_seconds`` (a :class:`SimulatorConfig` field) has passed since
the call, when the change reaches them too; ``None`` means never.  So a backup that was
running when a forget was submitted completes after the submission and still holds the
record, as a snapshot taken before the erasure would: what ``requests verify`` must
report as "still present".
"""

from __future__ import annotations

import csv
import dataclasses
import io
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from gdpr_daemon.simulator.account import OBJECTS, Backup
from gdpr_daemon.simulator.events import format_iso

__all__ = ["CSV_KINDS", "Changes", "Erasures", "backup_csv", "csv_chunks", "record_id", "record_number"]

CSV_KINDS = ("full", "added", "removed", "changed")
CHUNK_ROWS = 2_000  # rows rendered per chunk sent (about 200 kB)

_FIRST = ("Anna", "Ben", "Chiara", "David", "Elif", "Femi", "Greta", "Hugo", "Ines", "Jonas")
_LAST = ("Novak", "Okafor", "Rossi", "Schmidt", "Dubois", "Larsen", "Silva", "Kowalski")
_COMPANIES = ("Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Acme")
_CITIES = ("Berlin", "Lyon", "Porto", "Gdansk", "Aarhus", "Leeds", "Milan", "Ghent")
_INDUSTRY = ("Manufacturing", "Retail", "Finance", "Healthcare", "Energy", "Education")


def record_id(object_name: str, service_id: int, number: int) -> str:
    """The Salesforce-style id of record ``number`` of ``object_name`` in a service."""
    prefix = OBJECTS[object_name][0]
    return f"{prefix}{service_id % 1000:03d}000{number:06d}AAA"


def record_number(object_name: str, service_id: int, rid: str) -> int | None:
    """The ``number`` whose :func:`record_id` is ``rid``, or None if no record has that id."""
    if object_name not in OBJECTS or len(rid) != 18 or not rid.endswith("AAA"):
        return None
    digits = rid[9:15]
    if not digits.isascii() or not digits.isdigit():
        return None
    number = int(digits)
    return number if record_id(object_name, service_id, number) == rid else None


# ---- what GDPR calls changed ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Change:
    at: float  # epoch seconds the API accepted the call
    record_id: str
    field: str | None  # rectify: the field; forget: None
    value: str | None = dataclasses.field(default=None, repr=False)  # rectify: the new value (personal data)


@dataclass(frozen=True, slots=True)
class Changes:
    """What one CSV must show differently: records left out, fields carrying new values."""

    removed: frozenset[str] = frozenset()
    rectified: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)

    def __bool__(self) -> bool:
        return bool(self.removed or self.rectified)


class Erasures:
    """The accepted forget and rectify calls, by service and object, as the backups see them.

    Rectify values are held here (the backups must carry them) and nowhere else: never
    logged, never in ``repr``, never answered by the control endpoints.
    """

    def __init__(self, old_backups_after_s: float | None = None) -> None:
        self.old_backups_after_s = old_backups_after_s
        self._changes: dict[tuple[int, str], list[_Change]] = {}

    def __repr__(self) -> str:
        return f"Erasures({sum(len(v) for v in self._changes.values())} calls)"

    def add(
        self,
        at: float,
        service_id: int,
        table_name: str,
        rid: str,
        field_name: str | None = None,
        value: str | None = None,
    ) -> None:
        """Record a forget (no field) or a rectify of ``field_name`` to ``value`` at ``at``."""
        self._changes.setdefault((service_id, table_name), []).append(_Change(at, rid, field_name, value))

    def for_csv(self, backup: Backup, object_name: str, now: float) -> Changes:
        """What the calls so far change in ``object_name`` of ``backup``, seen at ``now``."""
        calls = self._changes.get((backup.service_id, object_name))
        if not calls:
            return Changes()
        removed: set[str] = set()
        rectified: dict[str, dict[str, str]] = {}
        for change in sorted(calls, key=lambda c: c.at):
            reached = backup.started_at > change.at or (
                self.old_backups_after_s is not None and now >= change.at + self.old_backups_after_s
            )
            if not reached:
                continue
            if change.field is None:
                removed.add(change.record_id)
                rectified.pop(change.record_id, None)
            elif change.record_id not in removed and change.value is not None:
                rectified.setdefault(change.record_id, {})[change.field] = change.value
        return Changes(frozenset(removed), rectified)


# ---- rows --------------------------------------------------------------------------------


def _rows_for(backup: Backup, object_name: str, kind: str) -> range | list[int]:
    counts = backup.objects[object_name]
    total = counts["total_items"]
    if kind == "full":
        return range(1, total + 1)
    if kind == "added":
        return range(total - counts["added_items"] + 1, total + 1)
    if kind == "removed":
        return range(total + 1, total + counts["removed_items"] + 1)
    rng = random.Random(backup.id * 131 + len(object_name))  # noqa: S311 - simulated data, not secrets
    return sorted(rng.sample(range(1, total + 1), min(counts["changed_items"], total)))


def _makers(object_name: str, service_id: int, when: str) -> list[Callable[[int], str]]:
    """One function per CSV column of ``object_name``: record number -> cell."""
    prefix = f"{OBJECTS[object_name][0]}{service_id % 1000:03d}000"
    related = {key: [record_id(key, service_id, m) for m in range(1, 51)] for key in ("Account", "Contact")}
    accounts, contacts = related["Account"], related["Contact"]
    day = when[:10]

    def first(n: int) -> str:
        return _FIRST[n % len(_FIRST)]

    def last(n: int) -> str:
        return _LAST[(n // 3) % len(_LAST)]

    def company(n: int) -> str:
        return _COMPANIES[(n // 2) % len(_COMPANIES)]

    columns: dict[str, Callable[[int], str]] = {
        "Id": lambda n: f"{prefix}{n:06d}AAA",
        "Name": (lambda n: f"{company(n)} {n}") if object_name == "Account"
        else (lambda n: f"{company(n)} {object_name} {n}"),
        "FirstName": first,
        "LastName": last,
        "Email": lambda n: f"{first(n).lower()}.{last(n).lower()}{n}@example.org",
        "Username": lambda n: f"{first(n).lower()}.{last(n).lower()}{n}@acme.example",
        "Phone": lambda n: f"+49 30 {n % 10_000:04d} {(n * 37) % 1000:03d}",
        "Company": company,
        "Industry": lambda n: _INDUSTRY[n % len(_INDUSTRY)],
        "BillingCity": lambda n: _CITIES[n % len(_CITIES)],
        "Status": lambda n: ("Open", "Working", "Closed")[n % 3],
        "StageName": lambda n: ("Prospecting", "Qualification", "Closed Won")[n % 3],
        "Amount": lambda n: f"{(n * 977) % 100_000}.00",
        "Subject": lambda n: f"Request {n}",
        "Priority": lambda n: ("Low", "Medium", "High")[n % 3],
        "Type": lambda n: ("Webinar", "Email", "Event")[n % 3],
        "ActivityDate": lambda n: day,
        "StartDate": lambda n: day,
        "AccountId": lambda n: accounts[n % 50],
        "ContactId": lambda n: contacts[n % 50],
        "WhoId": lambda n: contacts[n % 50],
        "LastModifiedDate": lambda n: when,
    }  # fmt: skip
    return [columns[c] for c in OBJECTS[object_name][1]]


def csv_chunks(
    service_id: int,
    backup: Backup,
    object_name: str,
    kind: str,
    changes: Changes | None = None,
    *,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[bytes]:
    """The UTF-8 CSV of one download link, header first, ``chunk_rows`` records a chunk.

    ``changes`` (from :meth:`Erasures.for_csv`) leaves forgotten records out and puts
    rectified values into their fields.
    """
    if kind not in CSV_KINDS:
        raise ValueError(f"kind must be one of {', '.join(CSV_KINDS)}")
    columns = OBJECTS[object_name][1]
    makers = _makers(object_name, service_id, format_iso(backup.started_at))
    changes = changes or Changes()
    removed, rectified = changes.removed, changes.rectified
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    numbers = _rows_for(backup, object_name, kind)
    for start in range(0, len(numbers), chunk_rows):
        rows = [[make(n) for make in makers] for n in numbers[start : start + chunk_rows]]
        if changes:
            rows = [_changed(row, columns, rectified) for row in rows if row[0] not in removed]
        writer.writerows(rows)
        yield out.getvalue().encode("utf-8")
        out.seek(0)
        out.truncate()
    tail = out.getvalue()
    if tail:  # only the header, for an empty section
        yield tail.encode("utf-8")


def _changed(row: list[str], columns: tuple[str, ...], rectified: dict[str, dict[str, str]]) -> list[str]:
    fields = rectified.get(row[0])
    if not fields:
        return row
    return [fields.get(name, cell) for name, cell in zip(columns, row, strict=True)]


def backup_csv(service_id: int, backup: Backup, object_name: str, kind: str, changes: Changes | None = None) -> str:
    """The whole CSV text of one download link (small sections; tests)."""
    return b"".join(csv_chunks(service_id, backup, object_name, kind, changes)).decode("utf-8")
