"""Checks of call arguments, made before anything is sent.

A wrong argument is a bug or bad input of the caller, not an API failure: it raises
ValueError with a sentence naming the argument.  Record ids and rectify values are
personal data, so the sentences never echo them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

__all__ = [
    "EXPORT_FORMATS",
    "SEEDING_METHODS",
    "SQL_DIALECTS",
    "automations",
    "backup_ref",
    "choice",
    "destination",
    "export_options",
    "names",
    "text",
    "whole",
]

EXPORT_FORMATS = ("csv", "sql")
SQL_DIALECTS = ("mysql", "oracle", "postgresql", "mssql")
SEEDING_METHODS = ("clean_and_insert", "incremental", "upsert")


def whole(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number, not {type(value).__name__} {value!r}.")
    return value


def backup_ref(value: object) -> int | str:
    if value == "last":
        return "last"
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f'backup_id must be a whole number or "last", not {value!r}.')
    return value


def text(value: object, name: str, *, allow_empty: bool = False) -> str:
    # The value itself is never echoed: record ids and rectify values are personal data.
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, not {type(value).__name__}.")
    if not allow_empty and not value.strip():
        raise ValueError(f"{name} must not be empty or only whitespace.")
    return value


def choice(value: object, name: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}.")
    return str(value)


def names(value: Sequence[str] | None, name: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(
            f"{name} must be a list of non-empty names, such as ['Account', 'Contact']."
        )
    return list(value)


def destination(value: object) -> int | str:
    """The destination of a seed: a service id (or the org the API knows it by)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("destination must be the service id of the sandbox to seed.")
    if isinstance(value, str) and not value.strip():
        raise ValueError("destination must not be empty.")
    if isinstance(value, int) and value < 0:
        raise ValueError("destination must be a whole number of at least 0.")
    return value


def export_options(export_format: object, sql_dialect: object) -> tuple[str, str | None]:
    """The checked export format and SQL dialect (only with ``sql``)."""
    fmt = choice(export_format, "export_format", EXPORT_FORMATS)
    if sql_dialect is None:
        return fmt, None
    dialect = choice(sql_dialect, "sql_dialect", SQL_DIALECTS)
    if fmt != "sql":
        raise ValueError('sql_dialect applies only to export_format="sql".')
    return fmt, dialect


def automations(
    value: Mapping[str, Sequence[str]] | Sequence[str] | None, name: str
) -> str | list[str] | None:
    """Automations to disable, as a form carries them: by kind (``{"ApexTrigger":
    ["Account.BeforeInsert"]}``, sent as JSON text) or a plain list of names."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        checked: dict[str, list[str] | None] = {}
        for kind, items in value.items():
            if not isinstance(kind, str) or not kind.strip() or items is None:
                raise ValueError(
                    f"{name} must map each automation kind to a list of names, such as "
                    '{"ApexTrigger": ["Account.BeforeInsert"]}.'
                )
            checked[kind] = names(items, name)
        return json.dumps(checked, separators=(",", ":"))
    return names(value, name)
