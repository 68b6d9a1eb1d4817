"""The /_simulator/ control endpoints: faults, reset, calls, events and stats."""

from __future__ import annotations

from .support import Api

FORGET = {"record_id": "0031t00000AbCdE", "table_name": "Contact", "comment": "ticket 9"}


async def test_get_put_patch_faults(api: Api) -> None:
    """PUT replaces the fault config, PATCH changes some fields, GET reads it back."""
    status, faults = await api.get("/_simulator/faults", auth=False)
    assert status == 200 and faults["rate_5xx"] == 0.0
    status, faults = await api.call(
        "PUT", "/_simulator/faults", auth=False, json={"burst_429": 1, "failing_services": [1002]}
    )
    assert status == 200 and faults["burst_429"] == 1 and faults["failing_services"] == [1002]
    assert api.sim.faults.failing_services == frozenset({1002})
    status, faults = await api.call(
        "PATCH", "/_simulator/faults", auth=False, json={"latency_ms": 5}
    )
    assert status == 200 and faults["latency_ms"] == 5 and faults["failing_services"] == [1002]
    status, _ = await api.call("PUT", "/_simulator/faults", auth=False, json={"latency_ms": 0})
    assert api.sim.faults.failing_services == frozenset()
    assert (await api.get("/api/v1/services"))[0] == 200


async def test_invalid_fault_updates_answer_400(api: Api) -> None:
    """Unknown fields, bad values or a non-object body answer 400 and change nothing."""
    for body in ({"rate_5xx": 3}, {"bogus": 1}, [1, 2]):
        status, answer = await api.call("PATCH", "/_simulator/faults", auth=False, json=body)
        assert status == 400 and answer["error"] == "Bad Request" and answer["message"]
    assert api.sim.faults.rate_5xx == 0.0


async def test_calls_lists_accepted_gdpr_calls(api: Api) -> None:
    """GET /_simulator/calls lists accepted GDPR calls with their fields, no value."""
    await api.post("/api/v1/services/1001/gdpr/forget", data=FORGET)
    await api.post(
        "/api/v1/services/1002/gdpr/rectify",
        data={**FORGET, "field": "Phone", "value": "PII-VALUE-1"},
    )
    status, calls = await api.get("/_simulator/calls", auth=False)
    assert status == 200
    assert [(c["service_id"], c["kind"], c["field"]) for c in calls] == [
        (1001, "forget", None),
        (1002, "rectify", "Phone"),
    ]
    assert calls[0]["comment"] == "ticket 9" and calls[1]["value_sha256"]
    assert all("value" not in c for c in calls)


async def test_events_endpoint_grows_history_and_injects_malformed(api: Api) -> None:
    """POST /_simulator/events adds synthetic events and can plant malformed ones."""
    status, answer = await api.post(
        "/_simulator/events",
        auth=False,
        json={"count": 1500, "malformed": [{"event_id": 2, "kind": "not_object"}]},
    )
    assert status == 200 and answer == {"last_event_id": 1500}
    _, page = await api.get("/api/v1/events?from=1000")
    assert len(page) == 500
    _, first = await api.get("/api/v1/events")
    assert isinstance(first[1], str)
    status, _ = await api.post("/_simulator/events", auth=False, json={"count": -1})
    assert status == 400
    status, _ = await api.post(
        "/_simulator/events", auth=False, json={"malformed": [{"event_id": 1, "kind": "odd"}]}
    )
    assert status == 400


async def test_stats_count_calls_logins_and_errors(api: Api) -> None:
    """Stats count calls per endpoint, logins, and the 401s, 429s and 5xx sent."""
    await api.get("/api/v1/services")
    await api.get("/api/v1/services", auth=False)
    await api.call("PATCH", "/_simulator/faults", auth=False, json={"burst_429": 1})
    await api.get("/api/v1/services")
    await api.call("PUT", "/_simulator/faults", auth=False, json={"rate_5xx": 1.0})
    await api.get("/api/v1/jobs")
    status, stats = await api.get("/_simulator/stats", auth=False)
    assert status == 200
    assert stats["calls"]["GET /api/v1/services"] == 3
    assert stats["calls"]["POST /api/auth/v1/login"] == 1
    assert stats["logins"] == 1
    assert (stats["sent_401"], stats["sent_429"], stats["sent_5xx"]) == (1, 1, 1)
    assert not any(key.startswith(("GET /_simulator", "PUT /_simulator")) for key in stats["calls"])


async def test_reset_restores_the_account(api: Api) -> None:
    """Reset clears calls, sessions, stats, grown events and restores the initial faults."""
    await api.post("/api/v1/services/1001/gdpr/forget", data=FORGET)
    await api.post("/api/v1/services/1001/backup_now")
    await api.post("/_simulator/events", auth=False, json={"count": 10})
    await api.call("PATCH", "/_simulator/faults", auth=False, json={"latency_ms": 1})
    status, _ = await api.post("/_simulator/reset", auth=False)
    assert status == 200
    assert api.sim.state.gdpr_calls == [] and api.sim.faults.latency_ms == 0
    assert (await api.get("/_simulator/stats", auth=False))[1]["total_calls"] == 0
    assert (await api.get("/api/v1/services"))[0] == 401
    await api.login()
    _, backups = await api.get("/api/v1/services/1001/backups")
    assert len(backups) == 3
    assert (await api.get("/api/v1/events"))[1] == []
    _, answer = await api.post("/api/v1/services/1001/gdpr/forget", data=FORGET)
    assert answer == {"id": 1}


async def test_patch_keeps_a_429_burst_under_way(api: Api) -> None:
    """PATCH of other fields lets a running 429 burst go on; PUT restarts it."""
    await api.call("PUT", "/_simulator/faults", auth=False, json={"burst_429": 2})
    assert (await api.get("/api/v1/services"))[0] == 429
    await api.call("PATCH", "/_simulator/faults", auth=False, json={"latency_ms": 1})
    assert (await api.get("/api/v1/services"))[0] == 429
    assert (await api.get("/api/v1/services"))[0] == 200
    await api.call("PUT", "/_simulator/faults", auth=False, json={"burst_429": 1})
    assert (await api.get("/api/v1/services"))[0] == 429
    assert (await api.get("/api/v1/services"))[0] == 200
