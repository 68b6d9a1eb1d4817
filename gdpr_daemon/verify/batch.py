"""Verify requests by id and record the outcomes: what `requests verify` and the demo run.

One result per id, in the order given (duplicates once): a dictionary for the command's
table and JSON output.  An id that is unknown, a request that is not submitted and an
error of the API or of the file are results (``outcome`` ``error``), not exceptions, so
one bad id does not hide the answers for the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from gdpr_daemon.db.requests import record_verification
from gdpr_daemon.db.verification import targets
from gdpr_daemon.ownbackup.errors import OwnBackupError
from gdpr_daemon.verify.verifier import BackupApi, VerifyError, verify_request

__all__ = ["describe", "verify_ids"]


async def verify_ids(engine: AsyncEngine, api: BackupApi, ids: Sequence[int], *, actor: str) -> list[dict[str, Any]]:
    """Verify each request and write the recorded outcomes into its history, as ``actor``."""
    ids = list(dict.fromkeys(ids))
    found = await targets(engine, ids)
    results: list[dict[str, Any]] = []
    for rid in ids:
        result: dict[str, Any] = {"request_id": rid, "verified": False, "recorded": False}
        results.append(result)
        req = found.get(rid)
        if req is None:
            result.update(outcome="error", sentence=f"there is no request {rid}")
            continue
        try:
            v = await verify_request(api, req)
        except (VerifyError, OwnBackupError) as exc:
            result.update(outcome="error", sentence=f"not verified: {exc}")
            continue
        result.update(outcome=v.outcome, sentence=v.sentence, verified=v.verified, backup_id=v.backup_id,
                      backup_completed_at=v.completed_at, records_read=v.rows, seconds=round(v.seconds, 2))  # fmt: skip
        if v.recorded:
            result["recorded"] = await record_verification(engine, rid, detail=v.sentence, actor=actor)
    return results


def describe(result: dict[str, Any]) -> str:
    """One line for a person: the request, the sentence, how much was read."""
    line = f"request {result['request_id']}: {result['sentence']}"
    if result.get("records_read"):
        line += f" ({result['records_read']:,} records read in {result['seconds']:.1f} s)"
    if result["outcome"] in ("verified", "still_present") and not result["recorded"]:
        line += "; not recorded: the request is no longer submitted"
    return line
