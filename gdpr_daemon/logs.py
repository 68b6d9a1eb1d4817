"""Structured logging, configured once at start-up.

Every log line passes :func:`redact` before it is rendered, so a secret or a piece of
personal data handed to a logger by mistake is replaced by ``[redacted]`` by key, at any
depth.  The keys are those that can hold a password, a session or token, a rectify value
or the contents of a record.

The libraries log through the standard library (asyncpg, aiohttp, APScheduler, asyncio):
their records, WARNING and above, go through the same processors and renderer to the
same stream (one JSON object a line in production, tracebacks inside it), by way of
structlog's ``ProcessorFormatter``.  Their ``extra`` fields are left out, and their text
(message and traceback) has what follows a sensitive name (``password=...``,
``Authorization: ...``), a URL's password and the statement parameters SQLAlchemy and
asyncpg show in an error replaced by ``[redacted]`` (:func:`redact_text`): a library's
message is prose, and a secret could only sit in it that way.  Whatever is bound with
``structlog.contextvars.bound_contextvars`` (the worker binds a request's ids while it
works on it) is added to both kinds of line logged in that context.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Mapping, MutableMapping
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


def redact(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
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


_second: tuple[int, str] = (0, "")


def timestamp(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: ``timestamp`` in ISO 8601, UTC, to the microsecond
    (``2026-11-30T17:05:09.012345Z``).

    The date and time of the current second are formatted once a second; structlog's
    ``TimeStamper`` builds a datetime for every line, a quarter of a line's cost.
    """
    global _second
    now = time.time()
    sec = int(now)
    if sec != _second[0]:
        _second = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
    event_dict["timestamp"] = f"{_second[1]}.{int((now - sec) * 1_000_000):06d}Z"
    return event_dict


def configure(log_format: str = "console", level: str = "info", stream: Any = None) -> None:
    """Configure structlog and the standard library logging it sits beside.

    ``log_format`` is ``json`` (one JSON object a line, for production) or ``console``
    (aligned, readable output for people).
    """
    stream = stream if stream is not None else sys.stderr
    numeric = logging.getLevelNamesMapping()[level.upper()]
    context: list[Any] = [  # what every line gets, the libraries' too
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        timestamp,
    ]
    shared: list[Any] = [*context, redact]
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
    root.handlers[:] = [_library_handler(context, renderer, stream)]
    root.setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def _library_handler(context: list[Any], renderer: Any, stream: Any) -> logging.Handler:
    """The handler of the standard library's records: structlog's processors, then the renderer."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            *context,
            structlog.stdlib.add_logger_name,
            # A traceback becomes the line's "exception" text before redaction (redact()
            # would turn the exc_info tuple into a list), also for the console, so that
            # the text can be redacted like the message.
            structlog.processors.format_exc_info,
            redact,
            redact_text,
        ],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = _PrintHandler(stream)
    handler.setFormatter(formatter)
    return handler


class _PrintHandler(logging.Handler):
    """Writes a formatted record as structlog's own lines are written: one ``write`` of the
    line under the stream's structlog lock, then a flush (so the two kinds never interleave)."""

    def __init__(self, stream: Any) -> None:
        super().__init__()
        self._printer = structlog.PrintLogger(stream)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._printer.msg(self.format(record))
        except Exception:
            self.handleError(record)


# Names after which a library's text could show a secret or a value: those of the keys,
# any name ending in one of _NAME_ENDINGS (db_password, csrf_token), and a few prose uses.
_NAME_ENDINGS = r"[\w-]*?(?:password|passwd|pwd|secret|token|session[_-]?id|api[_-]?key)"
_TEXT_NAMES = "|".join(re.escape(n) for n in sorted(SENSITIVE_KEYS, key=len, reverse=True))
_NAMED_SECRET = re.compile(
    rf"""(?P<name>(?<![\w-])(?:{_NAME_ENDINGS}|{_TEXT_NAMES})(?![\w-])['"]?\s*[=:]\s*)"""
    r"""(?P<value>"[^"]*"|'[^']*'|\[[^\]]*\]|\{[^}]*\}|\([^)]*\)|(?:Bearer|Basic|Token)\s+[^\s,;]+"""
    r"""|[^\s,;&)}\]'"]+)""",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@", re.IGNORECASE)
_SQL_PARAMETERS = re.compile(r"\[parameters: .*?\](?=\n|$)", re.DOTALL)
# asyncpg's DataError shows the argument it could not encode: "query argument $1: 'x' (why)".
_QUERY_ARGUMENT = re.compile(r"(?P<head>query argument \$\d+: )(?:.*(?= \()|.*)")
_TEXT_KEYS = ("event", "exception", "stack_info")


def redact_text(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor for the libraries' records: secrets out of their text.

    What follows a sensitive name and ``=`` or ``:`` (``password=...``, ``'token': '...'``,
    ``Authorization: Bearer ...``), the password of a URL (``postgresql://u:...@h``) and
    the values SQLAlchemy and asyncpg show in an error (``[parameters: ...]``, ``query
    argument $1: ...``) become ``[redacted]``.
    """
    for key in _TEXT_KEYS:
        text = event_dict.get(key)
        if type(text) is str and text:
            event_dict[key] = _redact_in(text)
    return event_dict


def _redact_in(text: str) -> str:
    text = _NAMED_SECRET.sub(lambda m: m.group("name") + REDACTED, text)
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED + "@", text)
    text = _QUERY_ARGUMENT.sub(lambda m: m.group("head") + REDACTED, text)
    return _SQL_PARAMETERS.sub(f"[parameters: {REDACTED}]", text)


def postgres_message(_connection: Any, message: Any) -> None:
    """asyncpg log listener (``connection.add_log_listener``): a NOTICE or WARNING that
    Postgres sent on a connection, logged by the standard library's ``asyncpg`` logger
    and so through the pipeline above (WARNING shows, NOTICE is below the threshold).

    asyncpg drops these messages unless a listener is added on the connection.  They
    arrive in the connection's callback, not in the task whose query raised them, so
    they carry no request id.
    """
    severity = (getattr(message, "severity_en", None) or getattr(message, "severity", None) or "NOTICE").upper()
    level = _PG_SEVERITY.get(severity, logging.INFO)
    pg_log = logging.getLogger("asyncpg")
    if pg_log.isEnabledFor(level):
        code = getattr(message, "sqlstate", None)
        pg_log.log(level, "postgres %s (%s): %s", severity.lower(), code, getattr(message, "message", message))


_PG_SEVERITY = {
    "DEBUG": logging.DEBUG,
    "LOG": logging.INFO,
    "INFO": logging.INFO,
    "NOTICE": logging.INFO,
    "WARNING": logging.WARNING,
}


class Logger:
    """A module's logger: structlog's, assembled once and used until the configuration changes.

    ``structlog.get_logger`` returns a proxy that assembles a new logger (wrapper, print
    logger, context) for every line, or for every filtered-out debug call, which cost
    more than the line itself on the submission path.  Caching the assembled logger the
    structlog way (``cache_logger_on_first_use``) would keep it past a later
    ``structlog.configure`` (a test's level or stream); this one is assembled again
    whenever the configured wrapper class, logger factory or processor list is another
    object than the one it was built with.
    """

    __slots__ = ("_built", "_log", "_name")

    def __init__(self, name: str | None) -> None:
        self._name = name
        self._built: tuple[Any, Any, Any] | None = None
        self._log: Any = None

    def _get(self) -> Any:
        config, built = _structlog_config, self._built
        if (
            built is None
            or built[0] is not config.default_wrapper_class
            or built[1] is not config.logger_factory
            or built[2] is not config.default_processors
        ):
            self._log = structlog.get_logger(self._name).bind()
            self._built = (config.default_wrapper_class, config.logger_factory, config.default_processors)
        return self._log

    def debug(self, event: str, *args: Any, **kw: Any) -> Any:
        return self._get().debug(event, *args, **kw)

    def info(self, event: str, *args: Any, **kw: Any) -> Any:
        return self._get().info(event, *args, **kw)

    def warning(self, event: str, *args: Any, **kw: Any) -> Any:
        return self._get().warning(event, *args, **kw)

    def error(self, event: str, *args: Any, **kw: Any) -> Any:
        return self._get().error(event, *args, **kw)

    def exception(self, event: str, *args: Any, **kw: Any) -> Any:
        return self._get().exception(event, *args, **kw)

    def __getattr__(self, name: str) -> Any:  # bind, critical, ...: structlog's own
        return getattr(self._get(), name)


# structlog's global configuration object: its attributes are what structlog.configure sets.
_structlog_config = structlog._config._CONFIG


def get_logger(name: str | None = None) -> Logger:
    return Logger(name)
