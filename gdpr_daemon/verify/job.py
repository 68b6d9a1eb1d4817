"""The daemon's optional verification job (``verify_after_hours``, off by default).

Each round, one replica at a time (an advisory lock), it verifies submitted requests that
were submitted at least ``verify_after_hours`` ago and are not verified yet, never-checked
ones first, and records each outcome in the request's history as ``requests verify``
does.  A request found "still present in backup N" is looked at again in a later round,
but its CSV is read again only once a newer backup than N exists.  A round downloads at
most ``max_downloads`` CSVs; backups and object sections are asked for once per service
and backup in a round.  It never raises: failures are logged (request ids and sentences,
never a record id or value) and the next round tries again.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from gdpr_daemon.db.requests import record_verification
from gdpr_daemon.db.verification import due_requests, targets, verify_lock
from gdpr_daemon.logs import get_logger
from gdpr_daemon.ownbackup.errors import OwnBackupError
from gdpr_daemon.ownbackup.models import Backup, BackupObject
from gdpr_daemon.verify.verifier import BackupApi, VerifyError, verify_request

__all__ = ["RoundResult", "VerifyJob", "interval_seconds"]

log = get_logger(__name__)

MAX_DOWNLOADS = 20
BATCH = 500
_STILL_IN = re.compile(r"^still present in backup (\d+) ")


def interval_seconds(after_hours: float) -> float:
    """How often the job runs: half the waiting time, between 5 seconds and an hour."""
    return min(3600.0, max(5.0, after_hours * 3600.0 / 2))


@dataclass(frozen=True, slots=True)
class RoundResult:
    skipped_locked: bool = False
    verified: int = 0
    still_present: int = 0
    not_yet: int = 0
    failed: int = 0


class _RoundCache:
    """The API for one round: each service's backups and each backup's sections asked once."""

    def __init__(self, api: BackupApi) -> None:
        self._api = api
        self._backups: dict[int, list[Backup]] = {}
        self._sections: dict[tuple[int, int | str], list[BackupObject]] = {}

    async def list_backups(self, service_id: int) -> list[Backup]:
        if service_id not in self._backups:
            self._backups[service_id] = await self._api.list_backups(service_id)
        return self._backups[service_id]

    async def backup_objects(self, service_id: int, backup_id: int | str = "last") -> list[BackupObject]:
        key = (service_id, backup_id)
        if key not in self._sections:
            self._sections[key] = await self._api.backup_objects(service_id, backup_id)
        return self._sections[key]

    def stream_download(self, link: str) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        return self._api.stream_download(link)


class VerifyJob:
    """One scheduler job; ``lock_engine`` holds the advisory lock (a direct connection)."""

    def __init__(
        self,
        engine: AsyncEngine,
        api: BackupApi,
        *,
        after_hours: float,
        actor: str,
        lock_engine: AsyncEngine | None = None,
        max_downloads: int = MAX_DOWNLOADS,
        stop: asyncio.Event | None = None,
    ) -> None:
        self.engine = engine
        self.lock_engine = lock_engine or engine
        self.api = api
        self.after_hours = after_hours
        self.actor = actor
        self.max_downloads = max_downloads
        self.stop = stop

    async def run(self) -> RoundResult | None:
        """One round; None when the database failed (logged)."""
        from gdpr_daemon.errors import db_errors

        try:
            async with verify_lock(self.lock_engine) as locked:
                if not locked:
                    return RoundResult(skipped_locked=True)
                return await self._round()
        except db_errors() as exc:
            log.warning("verify_round_failed", error=type(exc).__name__, hint="the next round tries again")
            return None

    async def _round(self) -> RoundResult:
        due = await due_requests(self.engine, after_hours=self.after_hours, limit=BATCH)
        if not due:
            return RoundResult()
        found = await targets(self.engine, [d.id for d in due])
        api = _RoundCache(self.api)
        counts = {"verified": 0, "still_present": 0, "not_yet": 0, "failed": 0}
        downloads = 0
        for item in due:
            if downloads >= self.max_downloads or (self.stop is not None and self.stop.is_set()):
                break
            req = found.get(item.id)
            if req is None:
                continue
            m = _STILL_IN.match(item.last_detail or "")
            try:
                v = await verify_request(api, req, skip_backup_id=int(m.group(1)) if m else None)
            except (VerifyError, OwnBackupError) as exc:
                counts["failed"] += 1
                log.warning("verify_failed", request_id=item.id, error=str(exc))
                continue
            if v.rows or v.recorded:
                downloads += 1
            if v.recorded:
                await record_verification(self.engine, item.id, detail=v.sentence, actor=self.actor)
                counts[v.outcome] += 1
                log.info("request_verified" if v.verified else "request_still_present", request_id=item.id,
                         backup_id=v.backup_id, records_read=v.rows)  # fmt: skip
            else:
                counts["not_yet"] += 1
        result = RoundResult(verified=counts["verified"], still_present=counts["still_present"],
                             not_yet=counts["not_yet"], failed=counts["failed"])  # fmt: skip
        log.info("verify_round", **counts, downloads=downloads)
        return result
