"""The CSV files a backup's download links point at: full, added, removed and changed data.

Rows are generated deterministically from (service, backup, object, kind, seed), so a link
fetched twice answers the same bytes.  Record ids look like Salesforce ids (object key
prefix, 18 characters) and are stable across backups of a service: record number ``n`` of
``Contact`` in service 1001 is always the same id, which lets tests pick real-looking ids
for GDPR requests.
"""

from __future__ import annotations

import csv
import io
import random

from gdpr_daemon.simulator.account import OBJECTS, Backup
from gdpr_daemon.simulator.events import format_iso

CSV_KINDS = ("full", "added", "removed", "changed")

_FIRST = ("Anna", "Ben", "Chiara", "David", "Elif", "Femi", "Greta", "Hugo", "Ines", "Jonas")
_LAST = ("Novak", "Okafor", "Rossi", "Schmidt", "Dubois", "Larsen", "Silva", "Kowalski")
_COMPANIES = ("Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Acme")
_CITIES = ("Berlin", "Lyon", "Porto", "Gdansk", "Aarhus", "Leeds", "Milan", "Ghent")
_INDUSTRY = ("Manufacturing", "Retail", "Finance", "Healthcare", "Energy", "Education")


def record_id(object_name: str, service_id: int, number: int) -> str:
    """The Salesforce-style id of record ``number`` of ``object_name`` in a service."""
    prefix = OBJECTS[object_name][0]
    return f"{prefix}{service_id % 1000:03d}000{number:06d}AAA"


def _rows_for(backup: Backup, object_name: str, kind: str) -> list[int]:
    counts = backup.objects[object_name]
    total = counts["total_items"]
    if kind == "full":
        return list(range(1, total + 1))
    if kind == "added":
        return list(range(total - counts["added_items"] + 1, total + 1))
    if kind == "removed":
        return list(range(total + 1, total + counts["removed_items"] + 1))
    rng = random.Random(backup.id * 131 + len(object_name))  # noqa: S311 - simulated data, not secrets
    return sorted(rng.sample(range(1, total + 1), min(counts["changed_items"], total)))


def _value(column: str, object_name: str, service_id: int, n: int, when: str) -> str:
    first, last = _FIRST[n % len(_FIRST)], _LAST[(n // 3) % len(_LAST)]
    company = _COMPANIES[(n // 2) % len(_COMPANIES)]
    values = {
        "Name": f"{company} {object_name} {n}" if object_name != "Account" else f"{company} {n}",
        "FirstName": first,
        "LastName": last,
        "Email": f"{first.lower()}.{last.lower()}{n}@example.org",
        "Username": f"{first.lower()}.{last.lower()}{n}@acme.example",
        "Phone": f"+49 30 {n % 10_000:04d} {(n * 37) % 1000:03d}",
        "Company": company,
        "Industry": _INDUSTRY[n % len(_INDUSTRY)],
        "BillingCity": _CITIES[n % len(_CITIES)],
        "Status": ("Open", "Working", "Closed")[n % 3],
        "StageName": ("Prospecting", "Qualification", "Closed Won")[n % 3],
        "Amount": f"{(n * 977) % 100_000}.00",
        "Subject": f"Request {n}",
        "Priority": ("Low", "Medium", "High")[n % 3],
        "Type": ("Webinar", "Email", "Event")[n % 3],
        "ActivityDate": when[:10],
        "StartDate": when[:10],
        "AccountId": record_id("Account", service_id, n % 50 + 1),
        "ContactId": record_id("Contact", service_id, n % 50 + 1),
        "WhoId": record_id("Contact", service_id, n % 50 + 1),
        "LastModifiedDate": when,
    }
    return values[column]


def backup_csv(service_id: int, backup: Backup, object_name: str, kind: str) -> str:
    """The CSV text of one download link (header line, then one line per record)."""
    if kind not in CSV_KINDS:
        raise ValueError(f"kind must be one of {', '.join(CSV_KINDS)}")
    columns = OBJECTS[object_name][1]
    when = format_iso(backup.started_at)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for n in _rows_for(backup, object_name, kind):
        writer.writerow(
            [
                record_id(object_name, service_id, n)
                if column == "Id"
                else _value(column, object_name, service_id, n, when)
                for column in columns
            ]
        )
    return out.getvalue()
