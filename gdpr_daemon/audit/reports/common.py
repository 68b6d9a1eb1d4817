"""What every report format shares: cells, JSON values, redaction, the output file.

CSV cells pass :func:`gdpr_daemon.render.csv_safe`, so a text cell starting with ``=``,
``+``, ``-`` or ``@`` cannot run as a formula; numbers are written as numbers.  Event
parameters pass :func:`redact_parameters`: a key that may hold a rectify value is shown
as ``[redacted]`` (OwnBackup's own GDPR events carry no value, but a report must never
show one even if they did).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from gdpr_daemon.render import csv_safe
from gdpr_daemon.safetext import json_text

__all__ = [
    "FORMATS",
    "REDACTED",
    "Progress",
    "ReportResult",
    "csv_cell",
    "iso",
    "json_scalar",
    "open_output",
    "redact_parameters",
]

FORMATS = ("csv", "json", "html")
REDACTED = "[redacted]"
#: Keys of event parameters never shown in a report (compared in lower case).
VALUE_KEYS = frozenset({"value", "values", "new_value", "old_value", "previous_value", "field_value",
                        "rectify_value", "rectified_value"})  # fmt: skip

Progress = Callable[[int], None]  # called with the rows written so far, every few thousand


@dataclass(frozen=True, slots=True)
class ReportResult:
    """What a report wrote: its rows and the figures for the one-line summary."""

    kind: str
    format: str
    rows: int
    figures: dict[str, Any]

    def summary(self) -> str:
        extra = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in self.figures.items())
        noun = "events" if self.kind == "audit" else "requests"
        return f"report {self.kind}: {self.rows} {noun}" + (f" ({extra})" if extra else "")


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``, as the report rows have it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    return csv_safe(value)


def json_scalar(value: Any) -> str:
    """A JSON value from a database scalar (Decimal as a number)."""
    if isinstance(value, Decimal):
        return str(value)
    return json_text(json.dumps(value, ensure_ascii=False))


def _redact(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: REDACTED if str(k).lower() in VALUE_KEYS else _redact(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_redact(v) for v in obj]
    return obj


def redact_parameters(parameters: str | None) -> str | None:
    """Event parameters (JSON text) with any value-holding key replaced by ``[redacted]``."""
    if parameters is None or "value" not in parameters.lower():
        return parameters
    return json_text(json.dumps(_redact(json.loads(parameters)), ensure_ascii=False))


@contextlib.contextmanager
def open_output(path: str | os.PathLike[str]) -> Iterator[TextIO]:
    """``-``: standard output.  A regular file (or a new name): written beside it and
    renamed into place at the end, so a report that fails half way never leaves half a
    file under the name; through a symbolic link, the file it points to.  Anything else
    (a FIFO, ``/dev/null``, a terminal) is written in place, as a shell redirection
    would: renaming over it would replace a device with a regular file."""
    if str(path) == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    target = Path(os.path.realpath(path))
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        with target.open("w", encoding="utf-8", newline="") as fh:
            yield fh
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            yield fh
        os.chmod(tmp, 0o640)  # reports name people: not world-readable
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
