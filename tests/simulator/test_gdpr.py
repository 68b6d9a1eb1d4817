"""GDPR forget and rectify calls: answers, validation, recorded calls and their events."""

from __future__ import annotations

import hashlib
import json
import logging

import pytest
import structlog
from structlog.testing import capture_logs

from .conftest import StartApi
from .support import PASSWORD, Api

VALUE = "PII-VALUE-sim-anna.novak@example.org"


def forget(record_id: str = "0031t00000AbCdE", **extra: str) -> dict[str, str]:
    return {"record_id": record_id, "table_name": "Contact", "comment": "case 17", **extra}


def rectify(**extra: str) -> dict[str, str]:
    return {**forget(), "field": "Email", "value": VALUE, **extra}


async def test_ids_increase_across_services_and_events_match(api: Api) -> None:
    """Each accepted call answers {"id": N}, N rising account-wide, and appends its event."""
    ids = []
    for service_id, kind, body in [
        (1001, "forget", forget("A1")),
        (1002, "rectify", rectify(record_id="B2")),
        (1001, "forget", forget("C3")),
    ]:
        status, answer = await api.post(f"/api/v1/services/{service_id}/gdpr/{kind}", data=body)
        assert status == 200 and set(answer) == {"id"}
        ids.append(answer["id"])
    assert ids == sorted(ids) and len(set(ids)) == 3
    _, events = await api.get("/api/v1/events")
    gdpr_events = [e for e in events if e["key"].startswith("gdpr.")]
    assert [e["key"] for e in gdpr_events] == ["gdpr.forget", "gdpr.rectify", "gdpr.forget"]
    assert [e["service_id"] for e in gdpr_events] == [1001, 1002, 1001]
    for event, request_id, record in zip(gdpr_events, ids, ["A1", "B2", "C3"], strict=True):
        assert event["parameters"]["request_id"] == request_id
        assert event["parameters"]["record_id"] == record
        assert event["parameters"]["table_name"] == "Contact"


async def test_rectify_value_is_kept_only_as_digest(api: Api) -> None:
    """The rectify value is in no event and no recorded call; only its sha256 is kept."""
    status, _ = await api.post("/api/v1/services/1001/gdpr/rectify", json=rectify())
    assert status == 200
    (call,) = api.sim.state.gdpr_calls
    assert call.kind == "rectify" and call.field == "Email" and call.comment == "case 17"
    assert call.value_sha256 == hashlib.sha256(VALUE.encode()).hexdigest()
    assert not hasattr(call, "value")
    _, events = await api.get("/api/v1/events")
    _, calls = await api.get("/_simulator/calls", auth=False)
    assert VALUE not in json.dumps(events) and VALUE not in json.dumps(calls)


@pytest.mark.parametrize(
    ("kind", "missing"),
    [
        ("forget", "record_id"),
        ("forget", "table_name"),
        ("rectify", "record_id"),
        ("rectify", "table_name"),
        ("rectify", "field"),
        ("rectify", "value"),
    ],
)
async def test_missing_required_field_answers_400(api: Api, kind: str, missing: str) -> None:
    """Leaving out a required field answers 400 naming it, and records nothing."""
    body = rectify() if kind == "rectify" else forget()
    del body[missing]
    status, answer = await api.post(f"/api/v1/services/1001/gdpr/{kind}", data=body)
    assert status == 400 and answer["error"] == "Bad Request"
    assert missing in answer["message"]
    assert api.sim.state.gdpr_calls == []


async def test_blank_or_invalid_fields_answer_400(api: Api) -> None:
    """A blank record_id or a table_name that is no API name answers 400."""
    status, answer = await api.post("/api/v1/services/1001/gdpr/forget", data=forget("   "))
    assert status == 400 and "record_id" in answer["message"]
    status, answer = await api.post(
        "/api/v1/services/1001/gdpr/forget", data=forget(table_name="Drop Table")
    )
    assert status == 400 and "table_name" in answer["message"]


async def test_unknown_service_answers_404_in_vendor_shape(api: Api) -> None:
    """A GDPR call to a service the account lacks answers the vendor's 404."""
    status, answer = await api.post("/api/v1/services/12415/gdpr/forget", data=forget())
    assert status == 404
    assert answer == {"error": "Not Found", "message": "service_id 12415 not found"}


async def test_disabled_and_archived_services_accept_requests(api: Api) -> None:
    """Disabled and archived services still hold data, so GDPR calls to them succeed."""
    for service_id in (1005, 1006):
        status, _ = await api.post(f"/api/v1/services/{service_id}/gdpr/forget", data=forget())
        assert status == 200
    assert [c.service_id for c in api.sim.state.gdpr_calls] == [1005, 1006]


async def test_answer_key_can_be_job_id(start_api: StartApi) -> None:
    """gdpr_answer_key="job_id" answers {"job_id": N} instead of {"id": N}."""
    api = await start_api(gdpr_answer_key="job_id")
    status, answer = await api.post("/api/v1/services/1001/gdpr/forget", data=forget())
    assert status == 200 and set(answer) == {"job_id"}
    assert answer["job_id"] == api.sim.state.gdpr_calls[0].id


async def test_no_secret_or_value_in_logs(api: Api) -> None:
    """Debug logs of login and GDPR calls hold no password, session id or rectify value."""
    wrapper = structlog.get_config()["wrapper_class"]
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with capture_logs() as logs:
            await api.login()
            await api.post("/api/v1/services/1001/gdpr/rectify", data=rectify())
    finally:
        structlog.configure(wrapper_class=wrapper)
    assert logs and all(entry["log_level"] == "debug" for entry in logs)
    text = json.dumps(logs, default=str)
    assert api.session_id is not None
    assert PASSWORD not in text and VALUE not in text and api.session_id not in text
