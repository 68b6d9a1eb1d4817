"""Session and OAuth bearer authentication of the simulator, over real HTTP."""

from __future__ import annotations

import aiohttp

from .conftest import StartApi
from .support import API_TOKEN, EMAIL, PASSWORD, TOKEN_PATH, VENDOR_CLIENT_ID, Api, FakeClock

UNAUTHORIZED = "Unauthorized"


async def token(api: Api, refresh_token: str = API_TOKEN, **extra: str) -> tuple[int, dict]:
    data = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "scope": "api:access",
        "client_id": VENDOR_CLIENT_ID,
        **extra,
    }
    return await api.post(TOKEN_PATH, auth=False, data=data)


async def test_login_with_form_and_json_bodies(start_api: StartApi) -> None:
    """Login answers a random session_id for form-encoded and for JSON bodies alike."""
    api = await start_api(login=False)
    credentials = {"email": EMAIL, "password": PASSWORD}
    status, form_answer = await api.post("/api/auth/v1/login", auth=False, data=credentials)
    assert status == 200 and set(form_answer) == {"session_id"}
    status, json_answer = await api.post("/api/auth/v1/login", auth=False, json=credentials)
    assert status == 200
    assert form_answer["session_id"] != json_answer["session_id"]
    assert len(api.sim.state.sessions) == 2


async def test_wrong_credentials_answer_401_in_vendor_shape(start_api: StartApi) -> None:
    """A wrong password or email answers 401 with the exact error shape."""
    api = await start_api(login=False)
    for creds in ({"email": EMAIL, "password": "nope"}, {"email": "x@y.z", "password": PASSWORD}):
        status, body = await api.post("/api/auth/v1/login", auth=False, data=creds)
        assert status == 401
        assert body == {"error": UNAUTHORIZED, "message": "invalid email or password"}


async def test_missing_and_unknown_session_answer_401(api: Api) -> None:
    """An API call without X-SESSION-ID, or with an unknown one, answers 401 in shape."""
    status, body = await api.get("/api/v1/services", auth=False)
    assert status == 401 and body["error"] == UNAUTHORIZED and body["message"]
    status, body = await api.get("/api/v1/services", headers={"X-SESSION-ID": "forged"})
    assert status == 401 and body["error"] == UNAUTHORIZED


async def test_logout_ends_the_session(api: Api) -> None:
    """After logout the same session id answers 401."""
    assert (await api.get("/api/v1/services"))[0] == 200
    assert (await api.post("/api/auth/v1/logout"))[0] == 200
    status, body = await api.get("/api/v1/services")
    assert status == 401 and body["error"] == UNAUTHORIZED


async def test_session_lifetime_expires(start_api: StartApi, clock: FakeClock) -> None:
    """With session_ttl_seconds set, a session answers 401 once that time has passed."""
    api = await start_api(session_ttl_seconds=60)
    assert (await api.get("/api/v1/services"))[0] == 200
    clock.advance(61)
    status, body = await api.get("/api/v1/services")
    assert status == 401 and body["message"] == "session expired"


async def test_oauth_token_answer_and_bearer_calls(start_api: StartApi) -> None:
    """The API token exchanges for a bearer access token that authorises API calls."""
    api = await start_api(login=False, token_ttl_seconds=900)
    status, answer = await token(api)
    assert status == 200
    assert set(answer) == {"access_token", "token_type", "expires_in", "scope"}
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == 900
    assert answer["scope"] == "api:access"
    bearer = {"Authorization": f"Bearer {answer['access_token']}"}
    status, services = await api.get("/api/v1/services", auth=False, headers=bearer)
    assert status == 200 and len(services) == 6


async def test_bearer_token_expires_after_expires_in(start_api: StartApi, clock: FakeClock) -> None:
    """An access token answers 401 after expires_in seconds; a fresh one works again."""
    api = await start_api(login=False, token_ttl_seconds=300)
    _, answer = await token(api)
    bearer = {"Authorization": f"Bearer {answer['access_token']}"}
    clock.advance(299)
    assert (await api.get("/api/v1/services", auth=False, headers=bearer))[0] == 200
    clock.advance(2)
    status, body = await api.get("/api/v1/services", auth=False, headers=bearer)
    assert status == 401 and body == {"error": UNAUTHORIZED, "message": "access token expired"}
    _, fresh = await token(api)
    fresh_bearer = {"Authorization": f"Bearer {fresh['access_token']}"}
    assert (await api.get("/api/v1/services", auth=False, headers=fresh_bearer))[0] == 200


async def test_token_is_served_at_the_vendors_path_only(start_api: StartApi) -> None:
    """The token answers at the vendor's path on the simulator's host; the old /oauth/token path is 404."""
    api = await start_api(login=False)
    assert (await token(api))[0] == 200
    form = {"grant_type": "refresh_token", "refresh_token": API_TOKEN, "scope": "api:access", "client_id": "c"}
    status, body = await api.post("/oauth/token", auth=False, data=form)
    assert status == 404 and body["error"] == "Not Found"


async def test_oauth_refuses_bad_grants(start_api: StartApi) -> None:
    """An unknown API token answers 401; a wrong grant_type or scope answers 400."""
    api = await start_api(login=False)
    assert (await token(api, "not-a-token"))[0] == 401
    status, body = await token(api, grant_type="password")
    assert status == 400 and "grant_type" in body["message"]
    status, body = await token(api, scope="everything")
    assert status == 400 and "scope" in body["message"]


async def test_login_appends_a_login_event(start_api: StartApi) -> None:
    """With login_events on, each login adds a user.login event to the history."""
    api = await start_api(login_events=True)
    _, events = await api.get("/api/v1/events")
    assert [e["key"] for e in events] == ["user.login"]
    assert events[0]["user_email"] == EMAIL


async def test_app_can_be_hosted_by_aiohttp_test_utils() -> None:
    """Simulator.app runs under aiohttp.test_utils.TestServer as well as under serve()."""
    from aiohttp.test_utils import TestServer

    from gdpr_daemon.simulator import Simulator

    from .support import config

    sim = Simulator(config())
    async with TestServer(sim.app) as server, aiohttp.ClientSession() as http:
        url = str(server.make_url("/api/auth/v1/login"))
        async with http.post(url, data={"email": EMAIL, "password": PASSWORD}) as resp:
            assert resp.status == 200
            assert "session_id" in await resp.json()
