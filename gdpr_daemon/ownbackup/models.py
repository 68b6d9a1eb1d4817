"""Typed answers of the OwnBackup API: frozen dataclasses and their strict parsers.

The fields are those of the vendor's published API reference (and, for ``secondary_name``,
of the public clients); ``openapi.yaml`` describes the same shapes.  Parsers check what the
daemon relies on (an integer ``id``, the container types, the types of the fields present)
and raise :class:`BadAnswer` otherwise, so a malformed answer is a clear error at the
boundary, not a ``KeyError`` deep in the queue.  Every field but the id is optional, and a
field the API adds later is ignored (it stays in ``raw``, the JSON the object was parsed
from, left out of ``repr`` and comparisons).  A timestamp that is present but unreadable
becomes None rather than failing the answer: ``raw`` still has it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import Any

from .errors import BadAnswer

#: Ids and counts are stored as Postgres ``bigint``: a number outside it is a bad answer
#: here, not a failed write (of a whole batch of outcomes) later.
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1

__all__ = [
    "Backup",
    "BackupObject",
    "GdprSubmission",
    "Job",
    "Seed",
    "SeedTemplate",
    "Service",
    "parse_timestamp",
]


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


def _raw_field() -> Any:
    return field(default_factory=_empty, repr=False, compare=False)


def parse_timestamp(value: object) -> datetime | None:
    """An aware UTC datetime from ISO 8601 (``...T07:57:51.000Z``) or RFC 1123
    (``Wed, 12 Dec 2018 07:57:51 GMT``); None when absent or unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    parsed: datetime | None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


class _Reader:
    """Reads typed fields out of one JSON object, raising BadAnswer naming the call."""

    def __init__(self, obj: object, endpoint: str, what: str) -> None:
        if not isinstance(obj, dict):
            raise BadAnswer(
                f"OwnBackup answered {endpoint} with {_describe(obj)} where {what} "
                f"(a JSON object) was expected",
                endpoint=endpoint,
            )
        self.obj: dict[str, Any] = obj
        self.endpoint = endpoint
        self.what = what

    def _bad(self, key: str, expected: str) -> BadAnswer:
        return BadAnswer(
            f"OwnBackup answered {self.endpoint} with {self.what} whose {key!r} is "
            f"{_describe(self.obj.get(key))}, not {expected}",
            endpoint=self.endpoint,
        )

    def int(self, key: str, *, required: bool = False) -> int | None:
        value = self.obj.get(key)
        if value is None:
            if required:
                raise BadAnswer(
                    f"OwnBackup answered {self.endpoint} with {self.what} "
                    f"without an integer {key!r}",
                    endpoint=self.endpoint,
                )
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(key, "an integer")
        if not BIGINT_MIN <= value <= BIGINT_MAX:
            raise self._bad(key, "an integer within the 64-bit range")
        return value

    def number(self, key: str) -> float | None:
        value = self.obj.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._bad(key, "a number")
        return value

    def flag(self, key: str) -> bool | None:
        """The vendor sends flags as 0/1 integers; booleans are accepted too."""
        value = self.obj.get(key)
        if value is None:
            return None
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise self._bad(key, "0 or 1")

    def strings(self, key: str) -> list[str]:
        """A list of strings (absent or null: empty)."""
        value = self.obj.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self._bad(key, "a list of strings")
        return value

    def time(self, key: str) -> datetime | None:
        value = self.obj.get(key)
        if value is not None and not isinstance(value, str):
            raise self._bad(key, "a timestamp string")
        return parse_timestamp(value)

    def raw(self) -> Mapping[str, Any]:
        return MappingProxyType(self.obj)

    # Last of the methods: its name hides the builtin ``str`` in the class body below it.
    def str(self, key: str) -> str | None:
        value = self.obj.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._bad(key, "a string")
        return value


def _describe(value: object) -> str:
    """What kind of JSON value this is, without its content (which may be personal data)."""
    match value:
        case None:
            return "null"
        case bool():
            return "a boolean"
        case int() | float():
            return "a number"
        case str():
            return "a string"
        case list():
            return "a list"
        case dict():
            return "an object"
    return "an unexpected value"


def parse_list(obj: object, endpoint: str, what: str) -> list[Any]:
    """The answer as a list, or BadAnswer."""
    if not isinstance(obj, list):
        raise BadAnswer(
            f"OwnBackup answered {endpoint} with {_describe(obj)} where a list of {what} "
            f"was expected",
            endpoint=endpoint,
        )
    return obj


@dataclass(frozen=True)
class Service:
    """A backup service: one Salesforce org backed up by the account."""

    id: int
    displayed_name: str | None = None
    secondary_name: str | None = None
    provider: str | None = None
    org_id: str | None = None
    status: str | None = None
    enabled: bool | None = None
    archived: bool | None = None
    last_backup: datetime | None = None
    num_items: int | None = None
    total_size: int | None = None
    return_code: int | None = None
    return_message: str | None = None
    raw: Mapping[str, Any] = _raw_field()

    @classmethod
    def from_json(cls, obj: object, endpoint: str = "get_service") -> Service:
        r = _Reader(obj, endpoint, "a service")
        return cls(
            id=r.int("id", required=True),  # type: ignore[arg-type]
            displayed_name=r.str("displayed_name"),
            secondary_name=r.str("secondary_name"),
            provider=r.str("provider"),
            org_id=r.str("org_id"),
            status=r.str("status"),
            enabled=r.flag("enabled"),
            archived=r.flag("archived"),
            last_backup=r.time("last_backup"),
            num_items=r.int("num_items"),
            total_size=r.int("total_size"),
            return_code=r.int("return_code"),
            return_message=r.str("return_message"),
            raw=r.raw(),
        )


@dataclass(frozen=True)
class Backup:
    """One backup of a service: when it completed and what its sections hold.

    ``status`` is ``"OK"`` for a complete backup (the simulator also shows a running one,
    ``"IN_PROGRESS"`` with no ``completed_at``); ``trigger_type`` is ``"scheduled"`` or
    ``"manual"``.
    """

    id: int
    status: str | None = None
    trigger_type: str | None = None
    completed_at: datetime | None = None
    num_sections: int | None = None
    num_sections_ok: int | None = None
    num_sections_info: int | None = None
    num_sections_warning: int | None = None
    num_sections_error: int | None = None
    num_api_calls: int | None = None
    num_bulk_api_batches: int | None = None
    num_inserted_items: int | None = None
    num_updated_items: int | None = None
    num_deleted_items: int | None = None
    raw: Mapping[str, Any] = _raw_field()

    @classmethod
    def from_json(cls, obj: object, endpoint: str = "get_backup") -> Backup:
        r = _Reader(obj, endpoint, "a backup")
        return cls(
            id=r.int("id", required=True),  # type: ignore[arg-type]
            status=r.str("status"),
            trigger_type=r.str("trigger_type"),
            completed_at=r.time("completed_at"),
            **{name: r.int(name) for name in _BACKUP_COUNTERS},
            raw=r.raw(),
        )


_BACKUP_COUNTERS = (
    "num_sections",
    "num_sections_ok",
    "num_sections_info",
    "num_sections_warning",
    "num_sections_error",
    "num_api_calls",
    "num_bulk_api_batches",
    "num_inserted_items",
    "num_updated_items",
    "num_deleted_items",
)


#: The kinds of a section's CSV data and the field holding each one's link.
LINK_FIELDS = {
    "full": "download_link",
    "added": "download_added_link",
    "changed": "download_changed_link",
    "removed": "download_removed_link",
}


@dataclass(frozen=True)
class BackupObject:
    """One section of a backup (a Salesforce object such as ``Contact``, or ``summary``)
    with the links to its CSV data, in the API's flat published shape."""

    name: str
    id: int | None = None
    status: str | None = None
    message: str | None = None
    num_items: int | None = None
    num_inserted_items: int | None = None
    num_updated_items: int | None = None
    num_deleted_items: int | None = None
    num_api_calls: int | None = None
    num_bulk_api_batches: int | None = None
    download_link: str | None = None
    download_added_link: str | None = None
    download_changed_link: str | None = None
    download_removed_link: str | None = None
    raw: Mapping[str, Any] = _raw_field()

    @property
    def links(self) -> Mapping[str, str]:
        """The links present, by kind: ``full``, ``added``, ``changed``, ``removed``."""
        found = {kind: getattr(self, key) for kind, key in LINK_FIELDS.items()}
        return MappingProxyType({kind: url for kind, url in found.items() if url})

    @classmethod
    def from_json(cls, obj: object, endpoint: str = "backup_objects") -> BackupObject:
        r = _Reader(obj, endpoint, "a backup object section")
        name = r.str("name")
        if not name:
            raise BadAnswer(
                f"OwnBackup answered {endpoint} with a backup object section without a name",
                endpoint=endpoint,
            )
        return cls(
            name=name,
            id=r.int("id"),
            status=r.str("status"),
            message=r.str("message"),
            num_items=r.int("num_items"),
            num_inserted_items=r.int("num_inserted_items"),
            num_updated_items=r.int("num_updated_items"),
            num_deleted_items=r.int("num_deleted_items"),
            num_api_calls=r.int("num_api_calls"),
            num_bulk_api_batches=r.int("num_bulk_api_batches"),
            download_link=r.str("download_link"),
            download_added_link=r.str("download_added_link"),
            download_changed_link=r.str("download_changed_link"),
            download_removed_link=r.str("download_removed_link"),
            raw=r.raw(),
        )


@dataclass(frozen=True)
class Job:
    """An asynchronous job of the account: an export or an anonymization."""

    id: int
    title: str | None = None
    status: str | None = None
    progress: float | None = None
    results: tuple[str, ...] = field(default=(), compare=False)
    raw: Mapping[str, Any] = _raw_field()

    @classmethod
    def from_json(cls, obj: object, endpoint: str = "get_job") -> Job:
        r = _Reader(obj, endpoint, "a job")
        return cls(
            id=r.int("id", required=True),  # type: ignore[arg-type]
            title=r.str("title"),
            status=r.str("status"),
            progress=r.number("progress"),
            results=tuple(r.strings("results")),
            raw=r.raw(),
        )


@dataclass(frozen=True)
class SeedTemplate:
    """A seeding template: which data goes from a source service to a destination."""

    id: int
    name: str | None = None
    raw: Mapping[str, Any] = _raw_field()

    @classmethod
    def from_json(cls, obj: object, endpoint: str = "seeding_templates") -> SeedTemplate:
        r = _Reader(obj, endpoint, "a seeding template")
        return cls(
            id=r.int("id", required=True),  # type: ignore[arg-type]
            name=r.str("name") or r.str("title"),
            raw=r.raw(),
        )


@dataclass(frozen=True)
class Seed:
    """One seeding run started from a template.

    ``seed_id`` is what ``seed_info`` takes; ``id`` is the run's number in the account (the
    published example has both, differing).  An answer with only one of them has it in both.
    """

    id: int
    seed_id: int | None = None
    template: int | None = None
    dest_service_id: int | None = None
    seeding_method: str | None = None
    disable_automations: bool | None = None
    status: str | None = None
    progress: float | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    total_insert_records: int | None = None
    insert_success_records: int | None = None
    insert_fail_records: int | None = None
    total_delete_records: int | None = None
    delete_success_records: int | None = None
    delete_fail_records: int | None = None
    duplicated_records: int | None = None
    raw: Mapping[str, Any] = _raw_field()

    @classmethod
    def from_json(cls, obj: object, endpoint: str = "seed_info") -> Seed:
        r = _Reader(obj, endpoint, "a seed")
        run_id, seed_id = r.int("id"), r.int("seed_id")
        if run_id is None and seed_id is None:
            raise BadAnswer(
                f"OwnBackup answered {endpoint} with a seed without an integer 'id' or 'seed_id'",
                endpoint=endpoint,
            )
        return cls(
            id=run_id if run_id is not None else seed_id,  # type: ignore[arg-type]
            seed_id=seed_id if seed_id is not None else run_id,
            template=r.int("template"),
            dest_service_id=r.int("dest_service_id"),
            seeding_method=r.str("seeding_method"),
            disable_automations=r.flag("disable_automations"),
            status=r.str("status"),
            progress=r.number("progress"),
            created_at=r.time("created_at"),
            started_at=r.time("started_at"),
            finished_at=r.time("finished_at"),
            **{name: r.int(name) for name in _SEED_COUNTERS},
            raw=r.raw(),
        )


_SEED_COUNTERS = (
    "total_insert_records",
    "insert_success_records",
    "insert_fail_records",
    "total_delete_records",
    "delete_success_records",
    "delete_fail_records",
    "duplicated_records",
)


@dataclass(frozen=True)
class GdprSubmission:
    """The API's receipt for a forget or rectify call: its request ``id``."""

    id: int
    raw: Mapping[str, Any] = _raw_field()

    @classmethod
    def from_json(cls, obj: object, endpoint: str = "gdpr_forget") -> GdprSubmission:
        """Accepts ``{"id": N}`` (the published API) and ``{"job_id": N}``."""
        submission_id = parse_id(obj, endpoint, ("id", "job_id"))
        return cls(id=submission_id, raw=MappingProxyType(obj))  # type: ignore[arg-type]


def parse_id(obj: object, endpoint: str, keys: tuple[str, ...]) -> int:
    """The first of ``keys`` that holds an integer, or BadAnswer naming them."""
    r = _Reader(obj, endpoint, "an answer")
    for key in keys:
        value = r.obj.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            if not BIGINT_MIN <= value <= BIGINT_MAX:
                raise BadAnswer(
                    f"OwnBackup answered {endpoint} with an {key!r} outside the 64-bit range "
                    "(not a usable id)",
                    endpoint=endpoint,
                )
            return value
    names = " or ".join(repr(k) for k in keys)
    raise BadAnswer(f"OwnBackup answered {endpoint} without an integer {names}", endpoint=endpoint)


def parse_object(obj: object, endpoint: str, what: str = "an answer") -> dict[str, Any]:
    """The answer as a JSON object, or BadAnswer."""
    return _Reader(obj, endpoint, what).obj


#: The automation kinds of the published reference: each must be a list of names.
AUTOMATION_KINDS = ("ApexTrigger", "ValidationRule")


def parse_automations(obj: object, endpoint: str = "automations") -> dict[str, list[str]]:
    """``{"ApexTrigger": ["Account.BeforeInsert"], "ValidationRule": [...]}``: lists of
    ``Object.Name`` strings by kind.  A kind added later is kept when it is such a list too;
    any other field the API adds is ignored."""
    r = _Reader(obj, endpoint, "the active automations")
    out = {kind: r.strings(kind) for kind in AUTOMATION_KINDS if kind in r.obj}
    for key, value in r.obj.items():
        if key not in out and isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[key] = value
    return out
