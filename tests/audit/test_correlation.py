"""GDPR events confirm the requests the daemon submitted."""

from __future__ import annotations

import json

from gdpr_daemon.db.requests import list_requests
from gdpr_daemon.ownbackup import ClientConfig, OwnBackupClient, SessionAuth
from tests.helpers import SIM_EMAIL, SIM_PASSWORD, insert_forget, insert_rectify, pii

from .conftest import RecordingSource, puller_for


async def pull(engine, sim_url):
    config = ClientConfig(base_url=sim_url, auth=SessionAuth(SIM_EMAIL, SIM_PASSWORD), timeout=10)
    async with OwnBackupClient(config) as client:
        return await puller_for(engine, RecordingSource(client), sim_url).pull()


async def submitted_request(pg, ownbackup_id: int, *, service_id: int = 1001, kind: str = "forget") -> int:
    """A request the queue has submitted with the given OwnBackup id (arranged in SQL)."""
    rid = (await insert_forget(pg, service_id))[0] if kind == "forget" else await insert_rectify(pg, service_id, pii("x"))
    await pg.execute(
        "UPDATE gdpr_requests SET status = 'submitted', submitted_at = now(), ownbackup_request_id = $2, "
        "value = NULL, value_sha256 = CASE WHEN request_type = 'rectify' THEN 'digest' END WHERE id = $1",
        rid, ownbackup_id,
    )  # fmt: skip
    return rid


async def test_gdpr_events_confirm_submitted_requests(daemon_for, sim, sim_url, settings_for, engine, pg):
    """`run --once` submits, then its pull sets confirmed_at from each request's GDPR event and writes the history row."""
    ids = await insert_forget(pg, 1001, 3) + [await insert_rectify(pg, 1002, pii(1))]
    report = await (await daemon_for(settings_for())).run_once()
    assert report.submitted == 4
    assert report.events["confirmed"] == 4
    assert await list_requests(engine, unconfirmed_hours=0) == []
    assert (await pull(engine, sim_url)).confirmed == 0, "a second pull confirms nothing twice"
    for rid in ids:
        row = await pg.fetchrow("SELECT * FROM gdpr_requests WHERE id = $1", rid)
        event = await pg.fetchrow(
            "SELECT event_id, created_at, key FROM audit_events WHERE key LIKE 'gdpr.%' "
            "AND (parameters->>'request_id')::bigint = $1", row["ownbackup_request_id"],
        )  # fmt: skip
        assert event["key"] == f"gdpr.{row['request_type']}"
        assert row["status"] == "submitted" and row["confirmed_at"] == event["created_at"]
        log = await pg.fetch("SELECT from_status, to_status, detail, actor FROM gdpr_request_log "
                             "WHERE request_id = $1 ORDER BY id", rid)  # fmt: skip
        assert (log[-1]["from_status"], log[-1]["to_status"]) == ("submitted", "submitted")
        assert log[-1]["detail"] == f"confirmed by OwnBackup event {event['event_id']}"
        assert log[-1]["actor"] == "test-daemon"

    again = await pull(engine, sim_url)
    assert again.confirmed == 0
    assert await pg.fetchval("SELECT count(*) FROM gdpr_request_log WHERE detail LIKE 'confirmed by%'") == 4


async def test_event_stored_before_the_answer_was_recorded(sim, sim_url, engine, pg):
    """An event pulled before the queue recorded the request id confirms the request at a later pull."""
    call = sim.state.gdpr("forget", 1003, record_id="003X", table_name="Contact")
    first = await pull(engine, sim_url)
    assert first.stored >= 1 and first.confirmed == 0
    rid = await submitted_request(pg, call.id, service_id=1003)
    second = await pull(engine, sim_url)
    assert second.confirmed == 1
    assert await pg.fetchval("SELECT confirmed_at IS NOT NULL FROM gdpr_requests WHERE id = $1", rid)


async def test_only_a_matching_type_and_service_confirm(sim, sim_url, engine, pg):
    """An event about another service or request type, or naming an id the daemon never got, confirms nothing."""
    forget = await submitted_request(pg, 501, service_id=1001)
    rectify = await submitted_request(pg, 502, service_id=1002, kind="rectify")
    base = {"source": "API", "user_email": SIM_EMAIL, "user_id": 51, "ip_address": "127.0.0.1"}
    sim.state.events.append(1.7e9, key="gdpr.rectify", service_id=1001, parameters={"request_id": 501}, **base)
    sim.state.events.append(1.7e9, key="gdpr.forget", service_id=1003, parameters={"request_id": 502}, **base)
    sim.state.events.append(1.7e9, key="gdpr.forget", service_id=1001, parameters={"request_id": 999}, **base)
    result = await pull(engine, sim_url)
    assert result.confirmed == 0
    assert await pg.fetchval("SELECT count(*) FROM gdpr_requests WHERE confirmed_at IS NOT NULL") == 0
    sim.state.events.append(1.7e9, key="gdpr.rectify", service_id=1002, parameters={"request_id": "502"}, **base)
    sim.state.events.append(1.7e9, key="gdpr.forget", parameters={"request_id": 501}, **base)  # no service_id
    result = await pull(engine, sim_url)
    assert result.confirmed == 2
    confirmed = {r[0] for r in await pg.fetch("SELECT id FROM gdpr_requests WHERE confirmed_at IS NOT NULL")}
    assert confirmed == {forget, rectify}


async def test_events_never_hold_the_rectify_value(daemon_for, sim, sim_url, settings_for, engine, pg):
    """The rectify value reaches neither audit_events nor the quarantine (OwnBackup's event carries only the field)."""
    value = pii("event")
    await insert_rectify(pg, 1001, value)
    await (await daemon_for(settings_for())).run_once()
    await pull(engine, sim_url)
    raws = [r[0] for r in await pg.fetch("SELECT raw::text FROM audit_events UNION ALL SELECT raw::text FROM audit_quarantine")]
    assert raws and not any(value in r for r in raws)
    rectify = [json.loads(r) for r in raws if '"gdpr.rectify"' in r]
    assert rectify and rectify[0]["parameters"]["field"] == "Email"
