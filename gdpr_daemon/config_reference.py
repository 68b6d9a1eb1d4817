"""The README's configuration reference, generated from :class:`gdpr_daemon.config.Settings`.

The settings model is the single source of truth; this renders it as a Markdown table
(key, environment variable, default, meaning).  The README holds the same table between
``<!-- config-reference:start -->`` and ``<!-- config-reference:end -->``, and a test
fails when the two disagree.  To refresh the README after changing a setting::

    python -m gdpr_daemon.config_reference --write README.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from gdpr_daemon.config import Settings, env_name

__all__ = ["END", "START", "extract", "render", "replace"]

START = "<!-- config-reference:start -->"
END = "<!-- config-reference:end -->"

# Defaults computed when the process starts: say what they are rather than show this
# machine's values.
COMPUTED_DEFAULTS = {"instance_name": "host name and process id, e.g. `web-1:4711`"}


def _is_secret(info: FieldInfo) -> bool:
    return "SecretStr" in repr(info.annotation) or info.annotation is SecretStr


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{}" if not value else ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _default(key: str, info: FieldInfo) -> str:
    if _is_secret(info):
        return ""
    if key in COMPUTED_DEFAULTS:
        return COMPUTED_DEFAULTS[key]
    if info.default_factory is not None:
        if info.default_factory in (dict, list):
            value: Any = info.default_factory()  # type: ignore[call-arg,unused-ignore]  # pydantic's stubs differ by version
        else:
            return "computed at start-up"
    elif info.default is PydanticUndefined:
        return "(required)"
    else:
        value = info.default
    if value is None:
        return ""
    return f"`{_literal(value)}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render() -> str:
    """The configuration reference as a Markdown table, one row per setting."""
    lines = [
        "| key | environment variable | default | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for key, info in Settings.model_fields.items():
        lines.append(
            f"| `{key}` | `{env_name(key)}` | {_cell(_default(key, info))} | {_cell(info.description or '')} |"
        )
    return "\n".join(lines) + "\n"


def extract(document: str) -> str | None:
    """The text between the markers (without them), or None when they are missing."""
    lines = document.splitlines()
    try:
        start = lines.index(START)
        end = lines.index(END, start + 1)
    except ValueError:
        return None
    return "\n".join(lines[start + 1 : end]).strip("\n") + "\n"


def replace(document: str) -> str:
    """``document`` with the table between the markers replaced by :func:`render`."""
    if extract(document) is None:
        raise ValueError(f"the markers {START} and {END} are missing, each on a line of its own")
    lines = document.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.rstrip("\r\n") == START)
    end = next(i for i, line in enumerate(lines) if i > start and line.rstrip("\r\n") == END)
    return "".join(lines[: start + 1]) + "\n" + render() + "\n" + "".join(lines[end:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gdpr_daemon.config_reference",
        description="Print the configuration reference table, or write it into a README between "
        f"the lines {START} and {END}.",
    )
    parser.add_argument("--write", metavar="README", type=Path, help="replace the table in this file")
    args = parser.parse_args(argv)
    if args.write is None:
        sys.stdout.write(render())
        return 0
    try:
        args.write.write_text(replace(args.write.read_text(encoding="utf-8")), encoding="utf-8")
    except (OSError, ValueError) as exc:
        print(f"config_reference: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
