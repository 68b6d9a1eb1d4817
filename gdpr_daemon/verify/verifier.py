"""Proving an erasure in the backups themselves: one submitted request against one backup.

For a submitted forget or rectify, :func:`verify_request` finds the newest backup of its
service completed after the submission (``completed_at`` later than ``submitted_at``,
status OK) whose object sections include the request's ``table_name``, streams the CSV
behind that section's ``download_link`` and looks for the record (:mod:`.scan`).  The
outcome is a :class:`Verification` whose ``sentence`` is what the request's history
records:

- ``verified: record absent from backup N (completed T)`` (forget),
- ``verified: new value of F in backup N (completed T)`` (rectify),
- ``still present in backup N (completed T)`` (forget; for a rectify the sentence adds
  that the field does not hold the new value),

and, recorded nowhere, ``not yet verifiable: ...`` when no such backup exists yet, or
``not verifiable: ...`` when the backup cannot tell (a rectified record missing from it,
a section without a link).  :data:`VERIFIED_PREFIX` and :data:`STILL_PRESENT_PREFIX`
begin the recorded sentences; ``status`` and the reports count requests by them.

The API is a Protocol (what the client offers), so this logic knows no HTTP and no SQL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from gdpr_daemon.ownbackup.errors import TransientError
from gdpr_daemon.ownbackup.models import Backup, BackupObject
from gdpr_daemon.verify.scan import CsvProblem, ScanResult, Target, scan_csv

__all__ = [
    "OK_STATUSES",
    "STILL_PRESENT_PREFIX",
    "VERIFIED_PREFIX",
    "BackupApi",
    "Verification",
    "VerifyError",
    "VerifyTarget",
    "verify_request",
]

VERIFIED_PREFIX = "verified: "
STILL_PRESENT_PREFIX = "still present in backup "
#: Backup statuses whose data is complete.  The API answers "OK"; older simulators and
#: some clients say "COMPLETED".
OK_STATUSES = frozenset({"OK", "COMPLETED"})
SCAN_ATTEMPTS = 3  # a download broken off is read again from the start, this many times in all

# Outcomes.
VERIFIED = "verified"
STILL_PRESENT = "still_present"
NOT_YET = "not_yet"
INCONCLUSIVE = "inconclusive"


class VerifyError(Exception):
    """This request cannot be verified (not submitted, unknown...); the message says why."""


class BackupApi(Protocol):
    """What verification needs of the OwnBackup client."""

    async def list_backups(self, service_id: int) -> list[Backup]: ...

    async def backup_objects(self, service_id: int, backup_id: int | str = "last") -> list[BackupObject]: ...

    def stream_download(self, link: str) -> AbstractAsyncContextManager[AsyncIterator[bytes]]: ...


@dataclass(frozen=True, slots=True)
class VerifyTarget:
    """A request as verification sees it (from the database; no value, only digests)."""

    id: int
    request_type: str
    service_id: int
    table_name: str
    status: str
    submitted_at: datetime | None
    record_id: str | None  # None once retention purged it
    record_id_sha256: str | None
    field: str | None
    value_sha256: str | None

    def __repr__(self) -> str:  # never the record id
        return f"VerifyTarget(id={self.id}, type={self.request_type}, service_id={self.service_id})"

    def target(self) -> Target:
        if self.request_type == "rectify":
            if not self.field or not self.value_sha256:
                raise VerifyError(f"request {self.id} is a rectify without a field or the new value's digest")
            return Target(self.record_id, self.record_id_sha256, self.field, self.value_sha256)
        return Target(self.record_id, self.record_id_sha256)


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome for one request; ``recorded``: whether ``sentence`` belongs in its history."""

    request_id: int
    outcome: str  # verified | still_present | not_yet | inconclusive
    sentence: str
    backup_id: int | None = None
    completed_at: datetime | None = None
    rows: int = 0
    seconds: float = 0.0

    @property
    def recorded(self) -> bool:
        return self.outcome in (VERIFIED, STILL_PRESENT)

    @property
    def verified(self) -> bool:
        return self.outcome == VERIFIED


def when(value: datetime) -> str:
    """A backup's completion time as the history writes it: ISO 8601 UTC to the second."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def candidates(backups: Sequence[Backup], submitted_at: datetime) -> list[Backup]:
    """Backups completed (status OK) after ``submitted_at``, newest first."""
    done = [
        b for b in backups
        if b.completed_at is not None and b.completed_at > submitted_at and (b.status or "").upper() in OK_STATUSES
    ]  # fmt: skip
    return sorted(done, key=lambda b: (b.completed_at, b.id), reverse=True)


def section_named(sections: Sequence[BackupObject], table_name: str) -> BackupObject | None:
    """The section of ``table_name``: its exact name, else the same name in another case
    (Salesforce API names are case-insensitive), else its plural (one public client of the
    API asks for sections named ``Accounts`` and ``Custom_Object__cs``)."""
    for s in sections:
        if s.name == table_name:
            return s
    for names in ({table_name.casefold()}, _plurals(table_name.casefold())):
        found = next((s for s in sections if s.name.casefold() in names), None)
        if found is not None:
            return found
    return None


def _plurals(name: str) -> set[str]:
    forms = {name + "s", name + "es"}
    if name.endswith("y") and not name.endswith("__y"):
        forms.add(name[:-1] + "ies")
    return forms


async def verify_request(
    api: BackupApi,
    req: VerifyTarget,
    *,
    skip_backup_id: int | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Verification:
    """Verify one request against the newest backup completed after its submission.

    ``skip_backup_id``: when that is the newest such backup, answer ``not_yet`` without
    reading it (the daemon's job: its outcome there is already in the history).
    """
    if req.status != "submitted" or req.submitted_at is None:
        raise VerifyError(
            f"request {req.id} is {req.status}, not submitted: there is nothing in the backups to verify yet"
        )
    if req.request_type not in ("forget", "rectify"):
        raise VerifyError(f"request {req.id} has the unknown type {req.request_type!r}")
    target = req.target()
    started = time.perf_counter()
    backups = candidates(await api.list_backups(req.service_id), req.submitted_at)
    for backup in backups:
        assert backup.completed_at is not None
        if backup.id == skip_backup_id:
            return Verification(req.id, NOT_YET, f"not yet verifiable: no backup newer than backup {backup.id}, "
                                "whose outcome is already recorded", backup.id, backup.completed_at)  # fmt: skip
        section = section_named(await api.backup_objects(req.service_id, backup.id), req.table_name)
        if section is None:
            continue  # a backup of some objects only: an older one may hold the table
        done = f"backup {backup.id} (completed {when(backup.completed_at)})"
        if not section.download_link:
            return Verification(req.id, INCONCLUSIVE, f"not verifiable: the {section.name} section of {done} "
                                "has no download_link", backup.id, backup.completed_at)  # fmt: skip
        result = await _scan(api, section.download_link, target, sleep)
        elapsed = time.perf_counter() - started
        outcome, sentence = _judge(req, result, done)
        return Verification(req.id, outcome, sentence, backup.id, backup.completed_at, result.rows, elapsed)
    what = f"no backup of service {req.service_id} completed after submission ({when(req.submitted_at)})"
    if backups:
        what += f" holds {req.table_name}"
    return Verification(req.id, NOT_YET, f"not yet verifiable: {what}", seconds=time.perf_counter() - started)


def _judge(req: VerifyTarget, result: ScanResult, done: str) -> tuple[str, str]:
    if req.request_type == "forget":
        if result.found:
            return STILL_PRESENT, f"{STILL_PRESENT_PREFIX}{done.removeprefix('backup ')}"
        return VERIFIED, f"{VERIFIED_PREFIX}record absent from {done}"
    if not result.found:
        return INCONCLUSIVE, f"not verifiable: the rectified record is not in {done}"
    if result.new_value:
        return VERIFIED, f"{VERIFIED_PREFIX}new value of {req.field} in {done}"
    still = f"{STILL_PRESENT_PREFIX}{done.removeprefix('backup ')}"
    return STILL_PRESENT, f"{still}: {req.field} does not hold the new value"


async def _scan(
    api: BackupApi, link: str, target: Target, sleep: Callable[[float], Awaitable[None]]
) -> ScanResult:
    """Stream and scan the CSV; a download broken off is read again from the start."""
    attempt = 0
    while True:
        attempt += 1
        try:
            async with api.stream_download(link) as chunks:
                return await scan_csv(chunks, target)
        except TransientError:
            if attempt >= SCAN_ATTEMPTS:
                raise
            await sleep(float(2 ** (attempt - 1)))
        except CsvProblem as exc:
            raise VerifyError(f"the backup's CSV could not be read: {exc}") from None
