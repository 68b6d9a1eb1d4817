"""Authentication: one re-login per expiry (also under concurrency), OAuth renewal, refusals."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import structlog
from aiohttp import web

from gdpr_daemon import metrics
from gdpr_daemon.ownbackup import (
    AuthenticationError,
    ClientConfig,
    OAuthAuth,
    OwnBackupClient,
    PermanentError,
    ServerError,
    SessionAuth,
    classify,
)
from gdpr_daemon.simulator import FaultConfig

from .conftest import API_TOKEN, EMAIL, PASSWORD, TOKEN_PATH, Harness, ManualClock, Sleeps, sim_config


def relogins() -> float:
    return metrics.REGISTRY.get_sample_value("gdpr_daemon_api_relogins_total") or 0.0


async def test_401_causes_exactly_one_relogin(harness: Harness) -> None:
    """An expired session (401) is renewed by one login and the call repeated once."""
    sim = await harness.sim(faults=FaultConfig(session_expiry_after_calls=2))
    sleeps = Sleeps()
    client = await harness.client(sim.url or "", sleeps=sleeps)
    before = relogins()
    await client.list_services()
    await client.get_service(1001)
    assert sim.stats.logins == 1
    service = await client.get_service(1002)  # third call on the session: 401, re-login
    assert service.id == 1002
    assert sim.stats.logins == 2 and sim.stats.sent_401 == 1 and client.logins == 2
    assert relogins() == before + 1
    assert sleeps.delays == []  # a re-login is not a retry


async def test_401_on_post_relogs_and_repeats_once(harness: Harness) -> None:
    """A GDPR POST answered 401 is sent again once after a fresh login, and succeeds."""
    sim = await harness.sim(faults=FaultConfig(session_expiry_after_calls=1))
    client = await harness.client(sim.url or "")
    await client.list_services()
    receipt = await client.gdpr_forget(1001, record_id="003x", table_name="Contact")
    assert [c.id for c in sim.state.gdpr_calls] == [receipt.id]
    assert sim.stats.logins == 2 and sim.stats.sent_401 == 1


def barrier(path: str) -> tuple[Any, Any]:
    """A middleware holding calls to ``path`` until ``arm(n)``'s n calls have all arrived."""
    state: dict[str, Any] = {"n": 0, "arrived": 0, "event": asyncio.Event()}

    def arm(n: int) -> None:
        state.update(n=n, arrived=0, event=asyncio.Event())

    @web.middleware
    async def hold(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == path and state["arrived"] < state["n"]:
            state["arrived"] += 1
            if state["arrived"] == state["n"]:
                state["event"].set()
            async with asyncio.timeout(10):  # bounded: a missing call fails the test
                await state["event"].wait()
        return await handler(request)

    return hold, arm


async def test_concurrent_401s_cause_one_relogin(harness: Harness) -> None:
    """Twenty calls that all get 401 for the same dead session cause ONE re-login."""
    hold, arm = barrier("/api/v1/services/1001")
    sim = await harness.sim(middleware=hold)
    client = await harness.client(sim.url or "")
    await client.list_services()
    before = relogins()
    sim.state.sessions.clear()  # the session dies for everyone at once
    arm(20)  # all twenty reach the 401 check together
    results = await asyncio.gather(*(client.get_service(1001) for _ in range(20)))
    assert [s.id for s in results] == [1001] * 20
    assert sim.stats.sent_401 == 20
    assert sim.stats.logins == 2 and client.logins == 2
    assert relogins() == before + 1


class Jumping:
    """A simulator clock that moves 100 s on every reading: every session is already dead."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 100
        return self.now


async def test_second_401_after_fresh_login_is_authentication_error(harness: Harness) -> None:
    """A 401 again right after a fresh login is a permanent AuthenticationError, not a loop."""
    sim = await harness.sim(sim_config(session_ttl_seconds=10), clock=Jumping())
    sleeps = Sleeps()
    client = await harness.client(sim.url or "", sleeps=sleeps)
    with pytest.raises(AuthenticationError) as info:
        await client.list_services()
    assert str(info.value) == (
        "OwnBackup answered 401 Unauthorized to list_services again right after a fresh login: "
        "session expired"
    )
    assert classify(info.value) == "permanent"
    assert sim.stats.logins == 2 and sim.stats.sent_401 == 2
    assert sleeps.delays == []
    assert not client.health.ok


async def test_wrong_password_is_authentication_error(harness: Harness) -> None:
    """A refused login is AuthenticationError naming the email, never the password."""
    sim = await harness.sim()
    sleeps = Sleeps()
    client = await harness.client(
        sim.url or "", sleeps=sleeps, auth=SessionAuth(EMAIL, "Wrong-Pa55word-PII")
    )
    with pytest.raises(AuthenticationError) as info:
        await client.list_services()
    error = info.value
    assert (
        str(error) == "OwnBackup refused the login for dpo@example.com: invalid email or password"
    )
    assert isinstance(error, PermanentError) and error.status == 401 and error.endpoint == "login"
    assert "Wrong-Pa55word" not in repr(error) and "Wrong-Pa55word" not in str(error)
    assert sleeps.delays == [] and sim.stats.logins == 0
    assert not client.health.ok and client.health.last_error == str(error)


async def test_concurrent_calls_share_one_refused_login(harness: Harness) -> None:
    """Ten concurrent calls with a wrong password cause ONE refused login, not ten."""
    sim = await harness.sim()
    client = await harness.client(sim.url or "", auth=SessionAuth(EMAIL, "Wrong-Pa55word-PII"))
    results = await asyncio.gather(
        *(client.get_service(1001) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, AuthenticationError) for r in results)
    assert sim.stats.calls["POST /api/auth/v1/login"] == 1


async def test_authenticate_proves_credentials(harness: Harness) -> None:
    """authenticate() logs in once (for `gdpr-daemon check`) and marks the API healthy."""
    sim = await harness.sim()
    client = await harness.client(sim.url or "")
    await client.authenticate()
    await client.authenticate()
    assert sim.stats.logins == 1 and client.health.ok and client.health.last_success_at


async def test_oauth_bearer_calls(harness: Harness) -> None:
    """With OAuth, one token exchange serves every call; no password login happens."""
    sim = await harness.sim()
    client = await harness.client(sim.url or "", oauth=True)
    await client.list_services()
    await client.gdpr_forget(1001, record_id="003x", table_name="Contact")
    assert sim.stats.tokens_issued == 1 and sim.stats.logins == 0
    assert sim.state.sessions == {} and len(sim.state.tokens) == 1


async def test_oauth_refused_token(harness: Harness) -> None:
    """A revoked API token is an AuthenticationError naming the client, never the token."""
    sim = await harness.sim()
    url = sim.url or ""
    client = await harness.client(url, auth=OAuthAuth(f"{url}{TOKEN_PATH}", "cid", "revoked-PII"))
    with pytest.raises(AuthenticationError) as info:
        await client.list_services()
    assert (
        str(info.value)
        == "OwnBackup refused the API token of client cid: invalid or revoked API token"
    )
    assert "revoked-PII" not in repr(info.value)


async def test_oauth_renewed_before_expiry(harness: Harness) -> None:
    """A token is renewed before it expires (last 10 % of its life), without any 401."""
    sim = await harness.sim()
    clock = ManualClock()
    client = await harness.client(sim.url or "", oauth=True, clock=clock)
    await client.list_services()
    clock.advance(3000)  # 600 s of 3600 left: still used
    await client.list_services()
    assert sim.stats.tokens_issued == 1
    clock.advance(300)  # 300 s left, under the 360 s margin: renewed first
    await client.list_services()
    assert sim.stats.tokens_issued == 2 and sim.stats.sent_401 == 0


async def test_oauth_failed_renewal_keeps_valid_token(harness: Harness) -> None:
    """A renewal failing with 503 keeps the still-valid token in use; once it has
    expired, the failure surfaces."""
    down = {"on": False, "token_requests": 0}

    @web.middleware
    async def token_outage(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == TOKEN_PATH:
            down["token_requests"] += 1
            if down["on"]:
                return web.json_response({"message": "down"}, status=503)
        return await handler(request)

    sim = await harness.sim(middleware=token_outage)
    clock = ManualClock()
    client = await harness.client(sim.url or "", oauth=True, clock=clock)
    await client.list_services()
    down["on"] = True
    clock.advance(3300)  # renewal due, token still valid for 300 s
    assert len(await client.list_services()) == 6
    assert down["token_requests"] == 2 and sim.stats.tokens_issued == 1
    clock.advance(400)  # now past its expiry
    with pytest.raises(ServerError, match="to oauth_token"):
        await client.list_services()


async def test_oauth_renewed_after_401(harness: Harness) -> None:
    """A token the API no longer accepts (401) is renewed once and the call repeated."""
    sim_clock = ManualClock()
    sim = await harness.sim(clock=sim_clock)
    client = await harness.client(sim.url or "", oauth=True)
    await client.list_services()
    before = relogins()
    sim_clock.advance(4000)  # the API's token expired; the client's clock did not move
    assert (await client.get_service(1003)).id == 1003
    assert sim.stats.tokens_issued == 2 and sim.stats.sent_401 == 1
    assert relogins() == before + 1


async def test_no_secrets_in_logs_or_errors(harness: Harness) -> None:
    """Logs of logins, re-logins, retries and failures hold no password, token or value."""
    sim = await harness.sim(faults=FaultConfig(session_expiry_after_calls=1))
    client = await harness.client(sim.url or "")
    with structlog.testing.capture_logs() as logs:
        await client.list_services()
        session_ids = list(sim.state.sessions)
        await client.gdpr_rectify(
            1001, record_id="003x", table_name="Contact", field="Email", value="PII-VALUE-77"
        )
        sim.faults = FaultConfig(rate_5xx=1.0, seed=2)
        with pytest.raises(ServerError) as info:
            await client.gdpr_rectify(
                1001, record_id="003x", table_name="Contact", field="Email", value="PII-VALUE-78"
            )
    text = repr(logs) + str(info.value) + repr(info.value)
    for secret in [PASSWORD, API_TOKEN, "PII-VALUE-", *session_ids]:
        assert secret not in text
    events = [e["event"] for e in logs]
    assert "ownbackup_reauthenticated" in events
    relogin = next(e for e in logs if e["event"] == "ownbackup_reauthenticated")
    assert relogin["log_level"] == "info"
    assert all(e["log_level"] == "debug" for e in logs if e["event"] == "ownbackup_call")


def test_auth_reprs_hide_secrets() -> None:
    """The auth configuration's repr never shows the password or API token."""
    text = repr(SessionAuth(EMAIL, PASSWORD)) + repr(OAuthAuth("https://x/t", "cid", API_TOKEN))
    assert PASSWORD not in text and API_TOKEN not in text
    cfg = ClientConfig(base_url="https://emea1.owndata.com", auth=SessionAuth(EMAIL, PASSWORD))
    assert PASSWORD not in repr(cfg)


async def test_client_unusable_outside_context() -> None:
    """A call before open() is a clear RuntimeError, not an aiohttp crash."""
    cfg = ClientConfig(base_url="http://127.0.0.1:9", auth=SessionAuth(EMAIL, PASSWORD))
    with pytest.raises(RuntimeError, match="async with"):
        await OwnBackupClient(cfg).list_services()
