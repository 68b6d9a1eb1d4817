"""Each fault of FaultConfig as a client sees it over HTTP."""

from __future__ import annotations

import json

import aiohttp
import pytest

from gdpr_daemon.simulator import FaultConfig

from .conftest import StartApi
from .support import EMAIL, PASSWORD, TOKEN_PATH, Api

FORGET = {"record_id": "0031t00000AbCdE", "table_name": "Contact"}


async def test_burst_429_with_retry_after_then_normal(api: Api) -> None:
    """burst_429=2: two calls answer 429 with an integer Retry-After, the third succeeds."""
    api.sim.faults = FaultConfig(burst_429=2, retry_after_s=3)
    for _ in range(2):
        async with api.http.get(api.url + "/api/v1/services", headers=api.headers) as resp:
            assert resp.status == 429 and resp.headers["Retry-After"] == "3"
            assert (await resp.json())["error"] == "Too Many Requests"
    assert (await api.get("/api/v1/services"))[0] == 200
    assert api.sim.stats.sent_429 == 2


async def test_5xx_answers_html_or_json_and_do_nothing(api: Api) -> None:
    """rate_5xx=1: GDPR calls answer 500/502/503 (HTML or JSON) and are not recorded."""
    api.sim.faults = FaultConfig(rate_5xx=1.0, seed=5)
    kinds = set()
    for _ in range(12):
        async with api.http.post(
            api.url + "/api/v1/services/1001/gdpr/forget", headers=api.headers, data=FORGET
        ) as resp:
            assert resp.status in (500, 502, 503)
            kinds.add(resp.content_type)
            if resp.content_type == "application/json":
                assert set(await resp.json()) == {"error", "message"}
    assert kinds == {"text/html", "application/json"}
    assert api.sim.state.gdpr_calls == []
    assert api.sim.stats.sent_5xx == 12


async def test_session_dies_after_n_calls(api: Api) -> None:
    """session_expiry_after_calls=2: the third call answers 401; a new login works again."""
    api.sim.faults = FaultConfig(session_expiry_after_calls=2)
    await api.login()
    assert (await api.get("/api/v1/services"))[0] == 200
    assert (await api.get("/api/v1/services"))[0] == 200
    status, body = await api.get("/api/v1/services")
    assert status == 401 and body["message"] == "session expired"
    await api.login()
    assert (await api.get("/api/v1/services"))[0] == 200


async def test_failing_and_rejecting_services(api: Api) -> None:
    """GDPR calls to failing services answer 500, to rejecting ones 400; others succeed."""
    api.sim.faults = FaultConfig(failing_services={1002}, rejecting_services={1003})
    status, body = await api.post("/api/v1/services/1002/gdpr/forget", data=FORGET)
    assert status == 500 and body["error"] == "Internal Server Error"
    status, body = await api.post("/api/v1/services/1003/gdpr/forget", data=FORGET)
    assert status == 400 and "1003" in body["message"]
    assert (await api.get("/api/v1/services/1002"))[0] == 200
    assert (await api.post("/api/v1/services/1001/gdpr/forget", data=FORGET))[0] == 200
    assert [c.service_id for c in api.sim.state.gdpr_calls] == [1001]


async def test_truncated_json_after_the_work_is_done(api: Api) -> None:
    """malformed truncated_json: the answer is cut JSON, but the call was carried out."""
    api.sim.faults = FaultConfig(malformed_rate=1.0, malformed_mode="truncated_json")
    async with api.http.post(
        api.url + "/api/v1/services/1001/gdpr/forget", headers=api.headers, data=FORGET
    ) as resp:
        assert resp.status == 200
        with pytest.raises(ValueError):
            json.loads(await resp.text())
    assert len(api.sim.state.gdpr_calls) == 1


async def test_html_200_and_missing_id(api: Api) -> None:
    """html_200 answers an HTML page with 200; missing_id leaves the id out of the answer."""
    api.sim.faults = FaultConfig(malformed_rate=1.0, malformed_mode="html_200")
    async with api.http.get(api.url + "/api/v1/services", headers=api.headers) as resp:
        assert resp.status == 200 and resp.content_type == "text/html"
    api.sim.faults = FaultConfig(malformed_rate=1.0, malformed_mode="missing_id")
    status, body = await api.post("/api/v1/services/1001/gdpr/forget", data=FORGET)
    assert status == 200 and body == {}
    status, services = await api.get("/api/v1/services")
    assert all("id" not in s for s in services)


async def test_hang_times_out_client_but_call_was_done(api: Api) -> None:
    """hang_ms holds the answer back past the client's timeout; the call is still recorded."""
    api.sim.faults = FaultConfig(hang_ms=5_000)
    timeout = aiohttp.ClientTimeout(total=0.3)
    with pytest.raises(TimeoutError):
        async with api.http.post(
            api.url + "/api/v1/services/1001/gdpr/forget",
            headers=api.headers,
            data=FORGET,
            timeout=timeout,
        ) as resp:
            await resp.read()
    assert len(api.sim.state.gdpr_calls) == 1


async def test_latency_still_answers_correctly(api: Api) -> None:
    """With latency and jitter set, calls still answer correctly (delay size is unit-tested)."""
    api.sim.faults = FaultConfig(latency_ms=20, latency_jitter_ms=10)
    status, services = await api.get("/api/v1/services")
    assert status == 200 and len(services) == 6


async def test_faults_spare_control_and_token_endpoints(start_api: StartApi) -> None:
    """With every call failing, /_simulator/ and the OAuth token path still answer normally."""
    api = await start_api(login=False, faults=FaultConfig(rate_5xx=1.0))
    assert (await api.get("/_simulator/stats", auth=False))[0] == 200
    assert (await api.get("/_simulator/faults", auth=False))[1]["rate_5xx"] == 1.0
    status, _ = await api.post(
        TOKEN_PATH,
        auth=False,
        data={"grant_type": "refresh_token", "refresh_token": "api-token-for-tests",
              "scope": "api:access", "client_id": "c"},
    )  # fmt: skip
    assert status == 200
    status, _ = await api.post(
        "/api/auth/v1/login", auth=False, data={"email": EMAIL, "password": PASSWORD}
    )
    assert status in (500, 502, 503)


async def test_faults_given_at_start_apply(start_api: StartApi) -> None:
    """Faults passed to the Simulator apply from the first call (here: login gets 429)."""
    api = await start_api(login=False, faults=FaultConfig(burst_429=1, retry_after_s=0))
    status, _ = await api.post(
        "/api/auth/v1/login", auth=False, data={"email": EMAIL, "password": PASSWORD}
    )
    assert status == 429
    await api.login()
