"""Configuration, refusals and records of the simulated account, with the checks of input.

:class:`SimulatorConfig` describes the account to build; :class:`ApiError` is how any part
of the simulator refuses a call (HTTP status and a sentence, rendered in the vendor's
error shape); :class:`GdprCall` is the record of one accepted GDPR call, kept without the
rectify value (only its sha256 digest).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gdpr_daemon.simulator.events import DATE_FORMATS

FIRST_SERVICE_ID = 1001
EXPORT_FORMATS = ("csv", "sql")
SQL_DIALECTS = ("mysql", "oracle", "postgresql", "mssql")
SEEDING_METHODS = ("clean_and_insert", "incremental", "upsert")
GDPR_ANSWER_KEYS = ("id", "job_id")
API_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def as_id(value: Any) -> int | None:
    """A non-negative integer id from text (ASCII digits only, spaces around allowed)."""
    text = str(value).strip()
    return int(text) if text.isascii() and text.isdigit() else None


class ApiError(Exception):
    """The API refuses a call: HTTP ``status`` and a ``message`` for the error shape."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """How the simulated account looks; durations are in seconds of the simulator clock.

    ``email``/``password``: the login; ``api_tokens``: accepted at the token path (the
    vendor's, ``/oauth2/.../v1/token``) as refresh tokens, giving access tokens valid
    ``token_ttl_seconds``; ``services``: how many services (ids from 1001; the first six are
    production, full sandbox, two partial sandboxes, a disabled and an archived org);
    ``synthetic_events``: events 1..N that exist without being stored; ``date_format``:
    event ``created_at`` as ``rfc1123``, ``iso`` or ``mixed``; ``seed``: makes the account
    and the faults reproducible; ``gdpr_answer_key``: ``id`` or ``job_id``;
    ``login_events``: whether each login appends a ``user.login`` event;
    ``session_ttl_seconds``: session lifetime (None: until logout);
    ``backup_seconds``/``job_seconds``/``seed_seconds``: how long a backup, an export job
    and a seed take (0: done at once); ``events_page_size``: 1000; ``validate_requests``:
    refuse requests that break the shipped OpenAPI document (400);
    ``erase_old_backups_after_seconds``: a forget or rectify changes the CSVs of backups
    started after it at once, and those of backups started before it this long after it
    (None: never); ``backup_now_rows``: records in every object section of a backup taken with
    back-up-now (None: a few dozen to a few hundred).
    Neither password nor tokens appear in ``repr``.
    """

    email: str = "dpo@example.com"
    password: str = field(default="simulator", repr=False)
    services: int = 6
    synthetic_events: int = 0
    date_format: str = "rfc1123"
    token_ttl_seconds: float = 3600.0
    api_tokens: tuple[str, ...] = field(default=("simulator-api-token",), repr=False)
    seed: int = 1
    gdpr_answer_key: str = "id"
    login_events: bool = True
    session_ttl_seconds: float | None = None
    backup_seconds: float = 2.0
    job_seconds: float = 2.0
    seed_seconds: float = 3.0
    events_page_size: int = 1000
    validate_requests: bool = True
    erase_old_backups_after_seconds: float | None = None
    backup_now_rows: int | None = None

    def __post_init__(self) -> None:
        if self.erase_old_backups_after_seconds is not None and self.erase_old_backups_after_seconds < 0:
            raise ValueError("erase_old_backups_after_seconds must not be negative")
        if self.backup_now_rows is not None and self.backup_now_rows < 0:
            raise ValueError("backup_now_rows must not be negative")
        if self.services < 1:
            raise ValueError("services must be at least 1")
        if self.synthetic_events < 0:
            raise ValueError("synthetic_events must not be negative")
        if self.date_format not in DATE_FORMATS:
            raise ValueError(f"date_format must be one of {', '.join(DATE_FORMATS)}")
        if self.gdpr_answer_key not in GDPR_ANSWER_KEYS:
            raise ValueError(f"gdpr_answer_key must be one of {', '.join(GDPR_ANSWER_KEYS)}")
        if self.token_ttl_seconds <= 0 or self.events_page_size < 1:
            raise ValueError("token_ttl_seconds and events_page_size must be positive")
        tokens = self.api_tokens
        object.__setattr__(
            self, "api_tokens", (tokens,) if isinstance(tokens, str) else tuple(tokens)
        )


@dataclass(frozen=True, slots=True)
class GdprCall:
    """One accepted GDPR call, without the rectify value (only its sha256 digest)."""

    id: int
    service_id: int
    kind: str
    record_id: str
    table_name: str
    field: str | None
    comment: str | None
    at: datetime
    value_sha256: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "service_id": self.service_id,
            "kind": self.kind,
            "record_id": self.record_id,
            "table_name": self.table_name,
            "field": self.field,
            "comment": self.comment,
            "at": self.at.isoformat(),
            "value_sha256": self.value_sha256,
        }


def checked_text(value: str | None, name: str, *, required: bool = True) -> str | None:
    if value is None:
        if required:
            raise ApiError(400, f"{name} is required")
        return None
    if not value.strip() and required:
        raise ApiError(400, f"{name} must not be empty")
    return value


def checked_api_name(value: str | None, name: str) -> str:
    text = checked_text(value, name)
    assert text is not None
    if not API_NAME_RE.match(text.strip()):
        raise ApiError(400, f"{name} {text!r} is not a valid Salesforce API name")
    return text.strip()


def checked_enum(value: str | None, name: str, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    if value is None or not value.strip():
        raise ApiError(400, f"{name} is required: one of {', '.join(allowed)}")
    if value not in allowed:
        raise ApiError(400, f"invalid {name} {value!r}: expected one of {', '.join(allowed)}")
    return value
