"""The HTML page around a report: one self-contained file, readable on screen and printed.

No script, no font, no image or style sheet fetched from anywhere: the styles are inline
and the charts are inline SVG (:mod:`.charts`), so the file works offline and keeps as
evidence.  Printed, tables repeat their header on every page and rows do not break.
Every figure a reader (or a test) may check carries an ``id`` or ``data-figure``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any, TextIO

from gdpr_daemon import __version__
from gdpr_daemon.safetext import escape_controls

__all__ = ["cell", "close_page", "figures_table", "open_page", "table_end", "table_head", "table_row"]

STYLE = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; color: #1b1f24;
       margin: 2em auto; max-width: 1200px; padding: 0 1.5em; }
h1 { font-size: 1.6em; margin: 0 0 .2em; } h2 { font-size: 1.2em; margin: 1.6em 0 .5em; }
p.meta { color: #4a5560; margin: 0 0 1em; }
table { border-collapse: collapse; margin: .3em 0 1em; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #c9d1d9; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #eef2f6; font-weight: 600; }
td.num, th.num { text-align: right; }
table.rows { width: 100%; font-size: .9em; } table.rows td { word-break: break-word; }
tr.alert td { background: #fff1f0; }
.grid { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
figure { margin: .5em 0 1em; } figcaption { color: #4a5560; font-size: .9em; }
svg { max-width: 100%; height: auto; } svg text { font: 11px system-ui, Arial, sans-serif; fill: #1b1f24; }
.bar-received { fill: #1f4e79; } .bar-submitted { fill: #e8a33d; } .bar-days { fill: #2f7d5b; }
.deadline { stroke: #b3261e; stroke-dasharray: 4 3; } .axis { stroke: #57606a; } .gridline { stroke: #e5e9ee; }
.empty { color: #4a5560; font-style: italic; }
@page { size: A4 landscape; margin: 12mm; }
@media print {
  body { margin: 0; max-width: none; font-size: 9pt; padding: 0; }
  thead { display: table-header-group; } tr, figure, svg { break-inside: avoid; page-break-inside: avoid; }
  h2 { break-after: avoid; page-break-after: avoid; }
  th { background: #eee !important; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  .bar-received, .bar-submitted, .bar-days, tr.alert td {
    -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


def open_page(out: TextIO, title: str, meta: str) -> None:
    out.write(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<meta name=\"generator\" content=\"gdpr-daemon {escape(__version__)}\">\n"
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<header>\n<h1>{escape(title)}</h1>\n<p class=\"meta\">{meta}</p>\n</header>\n"
    )


def close_page(out: TextIO) -> None:
    out.write(f"<footer><p class=\"meta\">Made by gdpr-daemon {escape(__version__)}. "
              "All times are UTC.</p></footer>\n</body>\n</html>\n")  # fmt: skip


def cell(value: Any, *, num: bool = False) -> str:
    text = "" if value is None else escape(escape_controls(value if isinstance(value, str) else _plain(value)))
    return f'<td class="num">{text}</td>' if num else f"<td>{text}</td>"


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def table_head(out: TextIO, table_id: str, columns: Sequence[tuple[str, str]], *, numeric: Iterable[str] = ()) -> None:
    """Open a ``<table class="rows">`` with its header; ``columns`` are (key, heading)."""
    nums = set(numeric)
    num = ' class="num"'
    heads = "".join(
        f'<th scope="col" data-column="{escape(k)}"{num if k in nums else ""}>{escape(h)}</th>' for k, h in columns
    )
    out.write(f'<table class="rows" id="{escape(table_id)}">\n<thead><tr>{heads}</tr></thead>\n<tbody>\n')


def table_row(out: TextIO, values: Sequence[Any], columns: Sequence[tuple[str, str]], *,
              numeric: Iterable[str] = (), alert: bool = False) -> None:  # fmt: skip
    nums = set(numeric)
    cells = "".join(cell(v, num=k in nums) for (k, _), v in zip(columns, values, strict=True))
    out.write(f'<tr class="alert">{cells}</tr>\n' if alert else f"<tr>{cells}</tr>\n")


def table_end(out: TextIO, *, empty: str | None = None, rows: int = 0, width: int = 1) -> None:
    if rows == 0 and empty:
        out.write(f'<tr><td colspan="{width}" class="empty">{escape(empty)}</td></tr>\n')
    out.write("</tbody>\n</table>\n")


def figures_table(out: TextIO, table_id: str, figures: Sequence[tuple[str, str, Any]], *, caption: str = "") -> None:
    """A two-column table of (figure name, heading, value); each value cell has ``data-figure``."""
    out.write(f'<table id="{escape(table_id)}">\n')
    if caption:
        out.write(f"<caption>{escape(caption)}</caption>\n")
    for name, heading, value in figures:
        shown = "-" if value is None else escape(_plain(value))
        out.write(f'<tr><th scope="row">{escape(heading)}</th>'
                  f'<td class="num" data-figure="{escape(name)}">{shown}</td></tr>\n')  # fmt: skip
    out.write("</table>\n")
