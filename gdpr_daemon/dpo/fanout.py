"""One person, many services: a request for every backup service of the account.

A data subject's record lives in production and in every sandbox copied from it, and a
disabled or archived service still holds backups with the data, so ``--all-services``
(and ``service_id`` ``all`` in an import) means every service the account lists.  The
requests are linked by their external_ref: ``CASE`` becomes ``CASE/1001``, ``CASE/1002``...
which ``gdpr-daemon requests list --ref CASE`` lists together.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gdpr_daemon.db.requests import NewRequest
from gdpr_daemon.rules import MAX_ID_LENGTH

if TYPE_CHECKING:
    pass

__all__ = ["expand", "group_ref", "new_group_prefix"]


def new_group_prefix(kind: str = "ALL") -> str:
    """A fresh ref prefix for a group entered without an external_ref."""
    return f"{kind}-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"


def group_ref(base: str, service_id: int) -> str:
    return f"{base}/{service_id}"


def expand(request: NewRequest, service_ids: Sequence[int], base_ref: str) -> list[NewRequest]:
    """``request`` once per service, each with its own ref under ``base_ref``."""
    return [replace(request, service_id=sid, external_ref=group_ref(base_ref, sid)) for sid in sorted(service_ids)]


def ref_too_long(base_ref: str, service_ids: Sequence[int]) -> bool:
    longest = max((len(group_ref(base_ref, sid)) for sid in service_ids), default=0)
    return longest > MAX_ID_LENGTH
