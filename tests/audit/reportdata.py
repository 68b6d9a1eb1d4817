"""Known data for the report tests, and a small HTML reader for checking rendered reports."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser

import asyncpg

from tests.helpers import pii

SINCE = datetime(2026, 2, 1, tzinfo=UTC)
UNTIL = datetime(2026, 4, 1, tzinfo=UTC)
AS_OF = datetime(2026, 5, 1, tzinfo=UTC)
FORMULA_REF = '=HYPERLINK("http://evil.example","x")'

# (ref, type, service, received, submitted, confirmed, ownbackup id, attempts, status)
REQUESTS = [
    ("CASE-1", "forget", 1001, "2026-03-02 09:00", "2026-03-03 09:00", "2026-03-03 10:00", 101, 1, "submitted"),
    ("CASE-2", "forget", 1001, "2026-03-04 12:00", "2026-03-09 00:00", None, 102, 2, "submitted"),
    ("CASE-3", "rectify", 1002, "2026-03-10 00:00", None, None, None, 0, "pending"),
    ("CASE-4", "forget", 1002, "2026-03-16 08:00", None, None, None, 8, "failed"),
    ("CASE-5", "forget", 1003, "2026-03-17 12:00", None, None, None, 0, "cancelled"),
    (FORMULA_REF, "rectify", 1001, "2026-02-02 10:00", "2026-03-20 10:00", None, 106, 3, "submitted"),
    ("OLD-1", "forget", 1001, "2025-12-01 10:00", "2025-12-02 10:00", None, 107, 1, "submitted"),  # outside
]  # fmt: skip

EXPECTED_SUMMARY = {
    "requests": 6, "submitted": 3, "confirmed": 1, "overdue": 3, "failed": 1, "overdue_or_failed": 3,
    "median_days_to_submit": 4.5, "p95_days_to_submit": 41.85,
    "by_type": {"forget": 4, "rectify": 2},
    "by_status": {"cancelled": 1, "failed": 1, "pending": 1, "submitted": 3},
    "by_service": {"1001": 3, "1002": 2, "1003": 1},
}  # fmt: skip
EXPECTED_WEEKS = [("2026-02-02", 1, 0), ("2026-02-09", 0, 0), ("2026-02-16", 0, 0), ("2026-02-23", 0, 0),
                  ("2026-03-02", 2, 1), ("2026-03-09", 1, 1), ("2026-03-16", 2, 1)]  # fmt: skip
EXPECTED_DAYS = {1: 1, 4: 1, 31: 1}  # whole days to submit -> requests (31 = "31+")
EXPECTED_ATTENTION = {"CASE-3", "CASE-4", FORMULA_REF}


async def insert_known_requests(pg: asyncpg.Connection) -> dict[str, int]:
    """The requests above (plus a rectify value that must never show); ref -> id."""
    ids = {}
    for ref, kind, service, received, submitted, confirmed, ob_id, attempts, status in REQUESTS:
        value = pii(ref[:6]) if kind == "rectify" else None
        ids[ref] = await pg.fetchval(
            "INSERT INTO gdpr_requests (request_type, service_id, table_name, record_id, field, value, "
            "external_ref, received_at) VALUES ($1, $2, 'Contact', '003' || $3, $4, $5, $3, $6::text::timestamptz) "
            "RETURNING id", kind, service, ref, "Email" if kind == "rectify" else None, value, received + "+00",
        )  # fmt: skip
        await pg.execute(
            "UPDATE gdpr_requests SET status = $2, attempts = $3, ownbackup_request_id = $4, "
            "submitted_at = $5::text::timestamptz, confirmed_at = $6::text::timestamptz WHERE id = $1",
            ids[ref], status, attempts, ob_id, submitted and submitted + "+00", confirmed and confirmed + "+00",
        )  # fmt: skip
    return ids


@dataclass
class Page(HTMLParser):
    """Collects what the report tests check: ids, data-figures, table rows, SVG bars, links."""

    ids: set[str] = field(default_factory=set)
    figures: dict[str, str] = field(default_factory=dict)
    tables: dict[str, list[list[str]]] = field(default_factory=lambda: defaultdict(list))
    bars: list[dict[str, str]] = field(default_factory=list)
    tags: set[str] = field(default_factory=set)
    urls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._table: list[str] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._figure: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.add(tag)
        self.ids.add(a.get("id", ""))
        self.urls += [v for k, v in a.items() if k in ("href", "src", "xlink:href", "action")]
        if tag == "table":
            self._table.append(a.get("id", ""))
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
            self._figure = a.get("data-figure")
        elif tag == "rect" and any(k.startswith("data-") for k in a):
            self.bars.append(a)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            text = "".join(self._cell).strip()
            self._row.append(text)
            if self._figure:
                self.figures[self._figure] = text
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table:
            self.tables[self._table[-1]].append(self._row)
            self._row = None
        elif tag == "table" and self._table:
            self._table.pop()

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def read_html(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page
