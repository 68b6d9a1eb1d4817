"""The account event history: a million synthetic events for the price of a few numbers.

Event ids run 1..``last_event_id`` without gaps.  An id is either a *real* event, appended
by something that happened in the simulator (a login, a backup, a GDPR call) and kept as
data, or a *synthetic* one, generated from its id on demand whenever a page is served.
Synthetic ids come in segments: the initial history (``synthetic_events``, spread over
the past before the simulator started) and each :meth:`EventLog.add_synthetic` call (at
the time of the call).  Generating a page of 1000 therefore costs the same whether the
history holds a thousand events or ten million.

For tests of a consumer, :meth:`EventLog.inject_malformed` replaces the event served at
one position by a broken one that keeps its place in the page:

``missing_event_id``  the event without its ``event_id``
``bad_created_at``    ``created_at`` that no date parser understands
``not_object``        a bare JSON string instead of an object

Synthetic events never use the ``gdpr.*`` keys, so a consumer matching GDPR events to
its requests only ever sees the real ones.
"""

from __future__ import annotations

import bisect
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

DATE_FORMATS = ("rfc1123", "iso", "mixed")
MALFORMED_KINDS = ("missing_event_id", "bad_created_at", "not_object")

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MASK64 = (1 << 64) - 1

# The initial synthetic history has one event every this many seconds, ending just
# before the simulator started; events added at run time are this close together.
INITIAL_STEP_S = 37.0
ADDED_STEP_S = 0.001

# (key, source, whether it concerns a service) with weights.
_KINDS: tuple[tuple[str, str, bool], ...] = (
    ("backup.completed", "SYSTEM", True),
    ("backup.completed", "SYSTEM", True),
    ("backup.completed", "SYSTEM", True),
    ("backup.started", "SYSTEM", True),
    ("backup.started", "SYSTEM", True),
    ("user.login", "UI", False),
    ("user.login", "API", False),
    ("user.logout", "UI", False),
    ("export.started", "UI", True),
    ("restore.started", "UI", True),
    ("service.settings_changed", "UI", True),
    ("seed.completed", "SYSTEM", True),
)
_USERS = (
    ("dpo@example.com", 51),
    ("admin@example.com", 52),
    ("backup.operator@example.com", 53),
    ("sf.architect@example.com", 54),
    ("auditor@example.com", 55),
)
_SYSTEM_USER = ("system@owndata.com", 1)
_SETTINGS = ("retention_days", "backup_hour", "notifications", "compare_threshold")


@functools.lru_cache(maxsize=4096)
def _day_prefixes(day: int) -> tuple[str, str]:
    """(``Wed, 12 Dec 2018 ``, ``2018-12-12T``) of a day counted from the epoch."""
    tm = time.gmtime(day * 86_400)
    rfc = f"{_DAYS[tm.tm_wday]}, {tm.tm_mday:02d} {_MONTHS[tm.tm_mon - 1]} {tm.tm_year} "
    return rfc, f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}T"


def format_rfc1123(epoch: float) -> str:
    """``Wed, 12 Dec 2018 07:57:51 GMT``."""
    seconds = int(epoch // 1)
    day, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    return f"{_day_prefixes(day)[0]}{hours:02d}:{rest // 60:02d}:{rest % 60:02d} GMT"


def format_iso(epoch: float) -> str:
    """``2018-12-12T07:57:51.000Z``: ISO 8601, milliseconds, UTC."""
    millis_total = int(epoch * 1000 // 1)
    seconds, millis = divmod(millis_total, 1000)
    day, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    return f"{_day_prefixes(day)[1]}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}.{millis:03d}Z"


def format_event_time(epoch: float, date_format: str, event_id: int) -> str:
    """Render ``created_at`` in the configured format (``mixed`` alternates by id)."""
    if date_format == "iso" or (date_format == "mixed" and event_id % 2):
        return format_iso(epoch)
    return format_rfc1123(epoch)


def _mix(x: int) -> int:
    """splitmix64: a cheap, well-spread hash of an integer."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


@dataclass(frozen=True, slots=True)
class _Segment:
    first_id: int
    base_time: float
    step_s: float


class EventLog:
    """Ids 1..last_event_id; real events kept, synthetic ones generated per page."""

    def __init__(
        self,
        *,
        synthetic: int,
        start_time: float,
        service_ids: Sequence[int],
        date_format: str = "rfc1123",
        seed: int = 1,
    ) -> None:
        if date_format not in DATE_FORMATS:
            raise ValueError(f"date_format must be one of {', '.join(DATE_FORMATS)}")
        if synthetic < 0:
            raise ValueError("synthetic event count must not be negative")
        self.date_format = date_format
        self._seed = seed
        self._service_ids = tuple(service_ids) or (1001,)
        self._last_id = synthetic
        self._segments: list[_Segment] = []
        self._segment_starts: list[int] = []
        if synthetic:
            self._add_segment(1, start_time - synthetic * INITIAL_STEP_S, INITIAL_STEP_S)
        self._real: dict[int, tuple[float, dict[str, Any]]] = {}
        self._malformed: dict[int, str] = {}

    @property
    def last_event_id(self) -> int:
        return self._last_id

    def __len__(self) -> int:
        return self._last_id

    def _add_segment(self, first_id: int, base_time: float, step_s: float) -> None:
        self._segments.append(_Segment(first_id, base_time, step_s))
        self._segment_starts.append(first_id)

    def add_synthetic(self, count: int, now: float) -> int:
        """Make ``count`` more synthetic events exist, dated from ``now``; the new last id."""
        if count < 0:
            raise ValueError("count must not be negative")
        if count:
            self._add_segment(self._last_id + 1, now, ADDED_STEP_S)
            self._last_id += count
        return self._last_id

    def append(self, now: float, **fields: Any) -> int:
        """Append one real event (fields without ``event_id``/``created_at``); its id."""
        self._last_id += 1
        self._real[self._last_id] = (now, fields)
        return self._last_id

    def inject_malformed(self, event_id: int, kind: str) -> None:
        """Serve a broken event of ``kind`` at position ``event_id`` from now on."""
        if kind not in MALFORMED_KINDS:
            raise ValueError(f"kind must be one of {', '.join(MALFORMED_KINDS)}, not {kind!r}")
        if event_id < 1:
            raise ValueError("event_id must be positive")
        self._malformed[event_id] = kind

    def real_events(self) -> list[dict[str, Any]]:
        """The real (non-synthetic) events in id order, rendered."""
        return [self.get(i) for i in sorted(self._real)]

    def page(self, after: int, limit: int) -> list[Any]:
        """The events with ids after ``after``, ascending, at most ``limit`` of them."""
        first = max(after, 0) + 1
        last = min(after + limit, self._last_id)
        return [self.get(i) for i in range(first, last + 1)]

    def get(self, event_id: int) -> Any:
        """The event served at ``event_id`` (which must be in 1..last_event_id)."""
        real = self._real.get(event_id)
        event = self._render_real(event_id, *real) if real else self._synthetic(event_id)
        kind = self._malformed.get(event_id)
        if kind is None:
            return event
        if kind == "missing_event_id":
            del event["event_id"]
            return event
        if kind == "bad_created_at":
            event["created_at"] = "sometime last Tuesday, 25:61"
            return event
        return f"event {event_id} could not be rendered"

    def _render_real(self, event_id: int, at: float, fields: dict[str, Any]) -> dict[str, Any]:
        event: dict[str, Any] = {
            "event_id": event_id,
            "created_at": format_event_time(at, self.date_format, event_id),
        }
        for name, value in fields.items():
            event[name] = dict(value) if isinstance(value, dict) else value
        return event

    def _time_of(self, event_id: int) -> float:
        index = bisect.bisect_right(self._segment_starts, event_id) - 1
        segment = self._segments[index]
        return segment.base_time + (event_id - segment.first_id) * segment.step_s

    def _synthetic(self, event_id: int) -> dict[str, Any]:
        h = _mix(event_id ^ (self._seed << 40))
        key, source, about_service = _KINDS[h % len(_KINDS)]
        email, user_id = _SYSTEM_USER if source == "SYSTEM" else _USERS[(h >> 8) % len(_USERS)]
        event: dict[str, Any] = {
            "event_id": event_id,
            "created_at": format_event_time(self._time_of(event_id), self.date_format, event_id),
            "key": key,
            "source": source,
            "user_email": email,
            "user_id": user_id,
            "ip_address": f"10.{(h >> 16) & 0xFF}.{(h >> 24) & 0xFF}.{(h >> 32) & 0xFF}",
            "parameters": self._parameters(key, h),
        }
        if about_service:
            event["service_id"] = self._service_ids[(h >> 40) % len(self._service_ids)]
        return event

    @staticmethod
    def _parameters(key: str, h: int) -> dict[str, Any]:
        if key.startswith("backup."):
            params: dict[str, Any] = {"backup_id": 100_000 + (h >> 12) % 900_000}
            if key == "backup.completed":
                params["num_items"] = (h >> 20) % 2_000_000
                params["return_code"] = 0
            return params
        if key == "user.login":
            return {"method": "password" if (h >> 44) & 1 else "sso"}
        if key == "user.logout":
            return {}
        if key == "export.started":
            return {"job_id": (h >> 12) % 100_000, "export_format": "csv" if h & 1 else "sql"}
        if key == "restore.started":
            return {"job_id": (h >> 12) % 100_000, "objects": (h >> 30) % 40 + 1}
        if key == "seed.completed":
            return {"seed_id": (h >> 12) % 10_000, "records": (h >> 24) % 50_000}
        return {"setting": _SETTINGS[(h >> 12) % len(_SETTINGS)]}
