"""Plain-text tables and values for people, and JSON/CSV for scripts.

Every text shown passes :func:`gdpr_daemon.safetext.escape_controls`: a comment, a name or
an API message holding an escape sequence, a NUL or a bidirectional override is shown as
``\\x1b...``, never sent raw to a terminal.  JSON escapes the same characters as ``\\uXXXX``
(valid JSON, the same string once parsed).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from gdpr_daemon.safetext import escape_controls, json_text


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    if isinstance(value, bool):
        return "yes" if value else "no"
    return escape_controls(str(value))


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], *, max_width: int = 60) -> str:
    """``columns`` is a list of (key, heading); long cells are cut with an ellipsis."""
    cells = [[fmt(r.get(k)) for k, _ in columns] for r in rows]
    cells = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in row] for row in cells]
    heads = [h for _, h in columns]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(heads)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value)


def to_json(data: Any) -> str:
    return json_text(json.dumps(data, default=_json_default, indent=2, ensure_ascii=False))


def csv_safe(value: Any) -> str:
    """A cell a spreadsheet will not run as a formula."""
    text = "" if value is None else (_json_default(value) if isinstance(value, datetime) else str(value))
    text = escape_controls(text)  # one line per record, nothing a terminal would act on
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([csv_safe(r.get(c)) for c in columns])
    return buf.getvalue()
