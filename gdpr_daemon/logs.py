"""Structured logging, configured once at start-up.

Every log line passes :func:`redact` before it is rendered, so a secret or a piece of
personal data handed to a logger by mistake is replaced by ``[redacted]`` by key, at any
depth.  The keys are those that can hold a password, a session or token, a rectify value
or the contents of a record.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from typing import Any

import orjson
import structlog

REDACTED = "[redacted]"

SENSITIVE_KEYS = frozenset(
    {
        "password",
        "ownbackup_password",
        "session_id",
        "x-session-id",
        "authorization",
        "access_token",
        "refresh_token",
        "api_token",
        "token",
        "value",
        "values",
        "record",
        "records",
        "record_contents",
        "body",
        "form",
        "data",
    }
)


def _scrub(obj: Any, depth: int = 0) -> Any:
    if depth > 8:
        return obj
    if isinstance(obj, Mapping):
        return {
            k: (REDACTED if str(k).lower() in SENSITIVE_KEYS else _scrub(v, depth + 1))
            for k, v in obj.items()
        }
    if isinstance(obj, list | tuple):
        return [_scrub(v, depth + 1) for v in obj]
    return obj


# Values that cannot hold a nested secret: checked by exact type first, because an
# isinstance() against the Mapping ABC costs more than the rest of a log line's redaction.
_SCALARS = frozenset({str, int, float, bool, type(None)})


def redact(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: replace sensitive values by key, at any depth."""
    for key, value in list(event_dict.items()):
        if key.lower() in SENSITIVE_KEYS:
            event_dict[key] = REDACTED
        elif type(value) not in _SCALARS and isinstance(value, Mapping | list | tuple):
            event_dict[key] = _scrub(value)
    return event_dict


def _dumps(obj: Any, **_kw: Any) -> str:
    """JSON of a log line: orjson (about half the cost of the standard library's), and
    the standard library for what orjson refuses (an integer beyond 64 bits, say)."""
    try:
        return orjson.dumps(obj, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(obj, default=str)


def configure(log_format: str = "console", level: str = "info", stream: Any = None) -> None:
    """Configure structlog and the standard library logging it sits beside.

    ``log_format`` is ``json`` (one JSON object a line, for production) or ``console``
    (aligned, readable output for people).
    """
    stream = stream if stream is not None else sys.stderr
    numeric = logging.getLevelNamesMapping()[level.upper()]
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    if log_format == "json":
        renderer: Any = structlog.processors.JSONRenderer(serializer=_dumps)
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty() if hasattr(stream, "isatty") else False)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    # Libraries that log through the standard library (asyncpg, aiohttp, apscheduler)
    # go to the same stream, at WARNING and above, so their noise stays out.
    root = logging.getLogger()
    root.handlers[:] = [logging.StreamHandler(stream)]
    root.setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
