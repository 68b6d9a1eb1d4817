"""The account event history: paging with ``from``, synthetic millions, malformed events."""

from __future__ import annotations

import email.utils
from datetime import datetime

import pytest

from gdpr_daemon.simulator.events import EventLog

from .conftest import StartApi
from .support import START, Api, FakeClock

EVENT_FIELDS = {"event_id", "created_at", "key", "source", "user_email", "user_id",
                "ip_address", "parameters"}  # fmt: skip


async def drain(api: Api, start: int | None = None) -> tuple[list[int], list[int]]:
    """Follow the ``from`` cursor to the end; (all event ids, size of each page)."""
    ids: list[int] = []
    sizes: list[int] = []
    cursor = start
    while True:
        path = "/api/v1/events" if cursor is None else f"/api/v1/events?from={cursor}"
        status, page = await api.get(path)
        assert status == 200
        sizes.append(len(page))
        if not page:
            return ids, sizes
        ids.extend(e["event_id"] for e in page)
        cursor = page[-1]["event_id"]


@pytest.mark.parametrize(
    ("count", "sizes"),
    [(0, [0]), (999, [999, 0]), (1000, [1000, 0]), (1001, [1000, 1, 0])],
)
async def test_paging_edge_sizes(start_api: StartApi, count: int, sizes: list[int]) -> None:
    """Histories of 0, 999, 1000 and 1001 events page at 1000, ascending, with no gap or repeat."""
    api = await start_api(synthetic_events=count)
    ids, page_sizes = await drain(api)
    assert ids == list(range(1, count + 1))
    assert page_sizes == sizes


async def test_from_excludes_the_given_event(start_api: StartApi) -> None:
    """from=N starts at N+1; from at or past the end answers an empty page."""
    api = await start_api(synthetic_events=50)
    _, page = await api.get("/api/v1/events?from=10")
    assert [e["event_id"] for e in page] == list(range(11, 51))
    assert (await api.get("/api/v1/events?from=50"))[1] == []
    assert (await api.get("/api/v1/events?from=5000"))[1] == []
    _, page = await api.get("/api/v1/events?from=0")
    assert page[0]["event_id"] == 1


async def test_invalid_from_answers_400(api: Api) -> None:
    """A from that is no non-negative integer answers 400 in the error shape."""
    for bad in ("abc", "-1", "1.5"):
        status, body = await api.get(f"/api/v1/events?from={bad}")
        assert status == 400 and body["error"] == "Bad Request"


async def test_million_synthetic_events_first_and_last_pages(start_api: StartApi) -> None:
    """1,000,000 synthetic events: the first and last pages are complete, well formed, ordered."""
    api = await start_api(synthetic_events=1_000_000)
    _, first = await api.get("/api/v1/events")
    assert [e["event_id"] for e in first] == list(range(1, 1001))
    _, last = await api.get("/api/v1/events?from=999000")
    assert [e["event_id"] for e in last] == list(range(999_001, 1_000_001))
    for event in first + last:
        assert EVENT_FIELDS <= set(event) <= EVENT_FIELDS | {"service_id"}
        assert not event["key"].startswith("gdpr.")
    times = [email.utils.parsedate_to_datetime(e["created_at"]) for e in first + last]
    assert times == sorted(times)
    assert times[-1].timestamp() < START
    assert (await api.get("/api/v1/events?from=1000000"))[1] == []


async def test_synthetic_events_are_deterministic(start_api: StartApi) -> None:
    """The same page of synthetic events answers identically on every read."""
    api = await start_api(synthetic_events=5000)
    assert (await api.get("/api/v1/events?from=2500"))[1] == (
        await api.get("/api/v1/events?from=2500")
    )[1]


async def test_real_events_follow_synthetic_and_history_grows(
    start_api: StartApi, clock: FakeClock
) -> None:
    """Real events take the ids after the synthetic ones; add_events grows the history further."""
    api = await start_api(synthetic_events=1000)
    await api.post(
        "/api/v1/services/1001/gdpr/forget", data={"record_id": "r", "table_name": "Lead"}
    )
    _, page = await api.get("/api/v1/events?from=1000")
    assert [(e["event_id"], e["key"]) for e in page] == [(1001, "gdpr.forget")]
    clock.advance(5)
    assert api.sim.state.add_events(2500) == 3501
    ids, _ = await drain(api, 1000)
    assert ids == list(range(1001, 3502))
    _, tail = await api.get("/api/v1/events?from=3499")
    assert [e["event_id"] for e in tail] == [3500, 3501]


async def test_malformed_events_keep_their_place(start_api: StartApi) -> None:
    """Injected broken events (no event_id, bad created_at, a bare string) sit in order."""
    api = await start_api(synthetic_events=10)
    state = api.sim.state
    state.inject_malformed_event(3, "missing_event_id")
    state.inject_malformed_event(5, "bad_created_at")
    state.inject_malformed_event(7, "not_object")
    _, page = await api.get("/api/v1/events")
    assert len(page) == 10
    assert "event_id" not in page[2] and page[2]["key"]
    assert page[4]["event_id"] == 5
    with pytest.raises((TypeError, ValueError)):
        email.utils.parsedate_to_datetime(page[4]["created_at"])
    with pytest.raises(ValueError):
        datetime.fromisoformat(page[4]["created_at"])
    assert isinstance(page[6], str)
    assert [e["event_id"] for e in page if isinstance(e, dict) and "event_id" in e] == [
        1, 2, 4, 5, 6, 8, 9, 10,
    ]  # fmt: skip


@pytest.mark.parametrize("date_format", ["rfc1123", "iso", "mixed"])
async def test_created_at_formats(start_api: StartApi, date_format: str) -> None:
    """created_at is RFC 1123, ISO 8601 with milliseconds and Z, or alternates (mixed)."""
    api = await start_api(synthetic_events=4, date_format=date_format)
    _, page = await api.get("/api/v1/events")
    kinds = []
    for event in page:
        text = event["created_at"]
        if text.endswith("GMT"):
            email.utils.parsedate_to_datetime(text)
            kinds.append("rfc1123")
        else:
            assert text.endswith("Z") and len(text) == len("2018-12-12T07:57:51.000Z")
            datetime.fromisoformat(text.replace("Z", "+00:00"))
            kinds.append("iso")
    expected = {"rfc1123": {"rfc1123"}, "iso": {"iso"}, "mixed": {"rfc1123", "iso"}}
    assert set(kinds) == expected[date_format]


def test_event_log_page_bounds_without_http() -> None:
    """EventLog.page answers ids after the cursor, capped by the limit and the end."""
    log = EventLog(synthetic=25, start_time=START, service_ids=[1001])
    assert [e["event_id"] for e in log.page(20, 10)] == [21, 22, 23, 24, 25]
    assert log.page(25, 10) == []
    assert log.append(START, key="x", source="API", parameters={}) == 26
    assert log.page(25, 10)[0]["key"] == "x"
