"""Bar charts as inline SVG, drawn by hand: no script, no library, nothing fetched.

Each bar carries its numbers in ``data-`` attributes and a ``<title>`` (the tooltip on
screen), and each chart is followed in the report by the same numbers as a table, so the
figures can be read by people, printers, screen readers and tests alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

__all__ = ["days_chart", "nice_ticks", "weekly_chart"]

HEIGHT = 240
TOP, BOTTOM, LEFT, RIGHT = 24, 46, 44, 12
WEEK_LABELS = 70  # room under the weekly chart for its slanted dates


def nice_ticks(top: int, count: int = 5) -> list[int]:
    """Round tick values from 0 to at least ``top`` (whole numbers)."""
    if top <= 0:
        return [0, 1]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = max(next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw), 1)
    return list(range(0, math.ceil(top / step) * step + 1, step))


def _frame(
    width: int, ticks: list[int], label: str, *, bottom: int = BOTTOM, right: int = RIGHT
) -> tuple[list[str], float]:
    """The axes and grid; returns the SVG parts and the pixels per unit."""
    base = HEIGHT - bottom
    scale = (base - TOP) / ticks[-1]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {HEIGHT}" width="{width}" '
        f'height="{HEIGHT}" role="img" aria-label="{escape(label)}">'
    ]
    for t in ticks:
        y = base - t * scale
        parts.append(f'<line class="gridline" x1="{LEFT}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{t}</text>')
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{base}"/>')
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{width - right}" y1="{base}" y2="{base}"/>')
    return parts, scale


def weekly_chart(weeks: Sequence[tuple[str, int, int]]) -> str:
    """Grouped bars: requests received and submitted per week (week = ISO week, Monday start)."""
    if not weeks:
        return '<p class="empty">No requests in this period.</p>'
    slot = max(10, min(36, 900 // len(weeks)))
    right = 56  # the last slanted date reaches past its bar
    width = max(LEFT + right + slot * len(weeks), 220)
    ticks = nice_ticks(max(max(r, s) for _, r, s in weeks))
    label = "Requests received and submitted per week"
    parts, scale = _frame(width, ticks, label, bottom=WEEK_LABELS, right=right)
    bar = max((slot - 4) / 2, 2)
    label_every = max(1, math.ceil(18 / slot))  # slanted labels need about 18 px apart
    base = HEIGHT - WEEK_LABELS
    for i, (week, received, submitted) in enumerate(weeks):
        x = LEFT + i * slot + 2
        for n, dx, what in ((received, 0, "received"), (submitted, bar, "submitted")):
            h = n * scale
            parts.append(
                f'<rect class="bar-{what}" x="{x + dx:.1f}" y="{base - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" data-week="{escape(week)}" data-{what}="{n}">'
                f"<title>week of {escape(week)}: {n} {what}</title></rect>"
            )
        if i % label_every == 0:
            lx = x + slot / 2 - 2
            parts.append(f'<text x="{lx:.1f}" y="{base + 12}" '
                         f'transform="rotate(40 {lx:.1f} {base + 12})">{escape(week)}</text>')  # fmt: skip
    legend_y = 12
    parts.append(f'<rect class="bar-received" x="{LEFT}" y="{legend_y - 9}" width="10" height="10"/>'
                 f'<text x="{LEFT + 14}" y="{legend_y}">received</text>'
                 f'<rect class="bar-submitted" x="{LEFT + 80}" y="{legend_y - 9}" width="10" height="10"/>'
                 f'<text x="{LEFT + 94}" y="{legend_y}">submitted</text>')  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)


def days_chart(buckets: Sequence[tuple[int, int]], deadline_days: int = 30) -> str:
    """Histogram of whole days from receipt to submission; the last bucket is "or more"."""
    if not buckets or not any(n for _, n in buckets):
        return '<p class="empty">No request of this period has been submitted yet.</p>'
    slot = 22
    width = LEFT + RIGHT + slot * len(buckets)
    ticks = nice_ticks(max(n for _, n in buckets))
    parts, scale = _frame(width, ticks, "Requests by days from receipt to submission")
    base = HEIGHT - BOTTOM
    last = buckets[-1][0]
    for i, (days, n) in enumerate(buckets):
        x = LEFT + i * slot + 2
        h = n * scale
        label = f"{days}+" if days == last else str(days)
        parts.append(
            f'<rect class="bar-days" x="{x}" y="{base - h:.1f}" width="{slot - 4}" height="{h:.1f}" '
            f'data-days="{escape(label)}" data-count="{n}">'
            f"<title>{escape(label)} days: {n} requests</title></rect>"
        )
        if (days % 5 == 0 and days < last - 1) or days == last:
            mid = x + (slot - 4) / 2
            parts.append(f'<text x="{mid:.1f}" y="{base + 14}" text-anchor="middle">{escape(label)}</text>')
    if deadline_days <= last:
        x = LEFT + deadline_days * slot
        parts.append(f'<line class="deadline" x1="{x}" x2="{x}" y1="{TOP - 6}" y2="{base}"/>'
                     f'<text x="{x - 4}" y="{TOP - 10}" text-anchor="end">'
                     "≈ one month (the legal deadline)</text>")  # fmt: skip
    parts.append(f'<text x="{width / 2:.0f}" y="{HEIGHT - 8}" text-anchor="middle">'
                 "days from receipt to submission</text>")  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)
