"""The streaming download: the simulator's CSV in chunks with either kind of credential, one
re-login on a 401, and never a credential sent to another host (real hostile aiohttp servers)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiohttp import web

from gdpr_daemon.ownbackup import AuthenticationError, ClientConfig, OAuthAuth, OwnBackupClient, SessionAuth
from gdpr_daemon.ownbackup.download import ForeignLink
from gdpr_daemon.simulator.csvdata import backup_csv
from tests.helpers import SECRETS_SEEN, SIM_EMAIL, SIM_PASSWORD, run_cli
from tests.verify.conftest import PRODUCTION, contact, enter_forget

CSV = b"Id,Email\r\n0031010000000001AAA,a@example.org\r\n"


def session_client(url: str) -> OwnBackupClient:
    return OwnBackupClient(ClientConfig(base_url=url, auth=SessionAuth(SIM_EMAIL, SIM_PASSWORD), timeout=10))


async def read_all(client: OwnBackupClient, link: str, chunk_bytes: int = 2**18) -> tuple[bytes, int]:
    got, n = [], 0
    async with client.stream_download(link, chunk_bytes=chunk_bytes) as chunks:
        async for chunk in chunks:
            got.append(chunk)
            n += 1
    return b"".join(got), n


async def test_simulator_csv_streams_in_chunks_with_a_session(vsim) -> None:  # type: ignore[no-untyped-def]
    """The Contact section's download_link answers its CSV in many chunks, identical to the file."""
    async with session_client(vsim.url) as client:
        (contact_section,) = [s for s in await client.backup_objects(PRODUCTION, "last") if s.name == "Contact"]
        body, chunks = await read_all(client, contact_section.download_link, chunk_bytes=1024)
    state = vsim.sim.state
    backup = state.backup(PRODUCTION, "last")
    expected = backup_csv(PRODUCTION, backup, "Contact", "full", state.erasures.for_csv(backup, "Contact", state.now()))
    assert body == expected.encode() and chunks > 5
    assert body.count(b"\r\n") == contact_section.num_items + 1


async def test_bearer_token_download(vsim) -> None:  # type: ignore[no-untyped-def]
    """With OAuth the download carries the bearer access token and answers the same CSV."""
    token_path = str(vsim.sim.app.router["oauth_token"].url_for())
    auth = OAuthAuth(token_url=vsim.url + token_path, client_id="test-client", api_token="simulator-api-token")
    async with OwnBackupClient(ClientConfig(base_url=vsim.url, auth=auth, timeout=10)) as client:
        section = next(s for s in await client.backup_objects(PRODUCTION, "last") if s.name == "Account")
        body, _ = await read_all(client, section.download_link)
        assert client.logins == 1
    assert body.startswith(b"Id,Name,") and body.count(b"\r\n") == section.num_items + 1


class Hostile:
    """A small aiohttp server on loopback; records every request it gets (method, path, headers)."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.url = ""
        self.runner: web.AppRunner | None = None

        @web.middleware
        async def record(request: web.Request, handler):  # type: ignore[no-untyped-def]
            self.seen.append((request.method, request.path, dict(request.headers)))
            return await handler(request)

        self.app.middlewares.append(record)

    def paths(self) -> list[str]:
        return [p for _, p, _ in self.seen]

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"


async def start(*servers: Hostile) -> None:
    for server in servers:
        await server.start()


@pytest.fixture
async def servers() -> AsyncIterator[tuple[Hostile, Hostile]]:
    """An "API" and a third party, each to be started on its own port once its routes are in."""
    api, third = Hostile(), Hostile()
    yield api, third
    for server in (api, third):
        if server.runner is not None:
            await server.runner.cleanup()


def reply(make):  # type: ignore[no-untyped-def]
    """An aiohttp handler answering ``make()`` (a response, or an HTTP exception to raise)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        answer = make()
        if isinstance(answer, web.HTTPException):
            raise answer
        return answer

    return handler


def with_login(api: Hostile, sessions: list[str]) -> None:
    """Login answers the next of ``sessions`` each time."""
    handed = iter(sessions)

    async def login(request: web.Request) -> web.Response:
        return web.json_response({"session_id": next(handed)})

    api.app.router.add_post("/api/auth/v1/login", login)
    api.app.router.add_post("/api/auth/v1/logout", reply(lambda: web.json_response({})))
    SECRETS_SEEN.update(sessions)


async def test_401_logs_in_again_once(servers) -> None:  # type: ignore[no-untyped-def]
    """A 401 on the download: one fresh login, the download repeated with the new session."""
    api, _ = servers
    with_login(api, ["sess-expired-1a2b", "sess-fresh-3c4d"])

    async def csv(request: web.Request) -> web.Response:
        if request.headers.get("X-SESSION-ID") != "sess-fresh-3c4d":
            return web.json_response({"error": "Unauthorized", "message": "session expired"}, status=401)
        return web.Response(body=CSV, content_type="text/csv")

    api.app.router.add_get("/files/contact.csv", csv)
    await start(api)
    async with session_client(api.url) as client:
        body, _ = await read_all(client, api.url + "/files/contact.csv")
        assert body == CSV and client.logins == 2
    assert api.paths().count("/files/contact.csv") == 2


async def test_401_again_after_a_fresh_login_is_an_authentication_error(servers) -> None:  # type: ignore[no-untyped-def]
    """Refused again right after logging in: AuthenticationError, after exactly one re-login."""
    api, _ = servers
    with_login(api, ["sess-a-5e6f", "sess-b-7a8b"])
    api.app.router.add_get("/f.csv", reply(lambda: web.json_response({"error": "Unauthorized"}, status=401)))
    await start(api)
    async with session_client(api.url) as client:
        with pytest.raises(AuthenticationError, match="401 Unauthorized to download again right after a fresh login"):
            await read_all(client, api.url + "/f.csv")
        assert client.logins == 2


@pytest.mark.parametrize(
    "make_link",
    [
        lambda api, third: third.url + "/steal.csv",  # another port on the same address
        lambda api, third: "//" + third.url.removeprefix("http://") + "/steal.csv",  # scheme-relative
        lambda api, third: api.url.replace("http://", "http://user:pw@") + "/f.csv",  # user information
        lambda api, third: api.url.replace("http://", "https://") + "/f.csv",  # another scheme
        lambda api, third: "http://localhost:" + api.url.rsplit(":", 1)[1] + "/f.csv",  # another host name
    ],
)
async def test_link_elsewhere_is_refused_before_any_connection(servers, make_link) -> None:  # type: ignore[no-untyped-def]
    """A link not on the API's own origin is refused; nothing reaches any server, not even a login."""
    api, third = servers
    with_login(api, ["sess-never-9c0d"])
    await start(api, third)
    async with session_client(api.url) as client:
        with pytest.raises(ForeignLink, match="not at the OwnBackup API's own host"):
            await read_all(client, make_link(api, third))
    assert api.seen == [] and third.seen == []


async def test_relative_link_is_resolved_on_the_api_host(servers) -> None:  # type: ignore[no-untyped-def]
    """A relative link is fetched from the API's own host, with the session."""
    api, _ = servers
    with_login(api, ["sess-rel-1f2e"])
    api.app.router.add_get("/files/c.csv", reply(lambda: web.Response(body=CSV, content_type="text/csv")))
    await start(api)
    async with session_client(api.url) as client:
        assert (await read_all(client, "/files/c.csv"))[0] == CSV
    assert api.seen[-1][2]["X-SESSION-ID"] == "sess-rel-1f2e"


async def test_redirect_to_another_host_is_not_followed(servers) -> None:  # type: ignore[no-untyped-def]
    """The API redirecting the download elsewhere: an error, and the third party gets nothing."""
    api, third = servers
    with_login(api, ["sess-redir-3a4b"])
    api.app.router.add_get("/f.csv", reply(lambda: web.HTTPFound(third.url + "/steal.csv")))
    third.app.router.add_get("/steal.csv", reply(lambda: web.Response(body=CSV)))
    await start(api, third)
    async with session_client(api.url) as client:
        with pytest.raises(Exception, match="302"):
            await read_all(client, api.url + "/f.csv")
    assert third.seen == []


async def test_hostile_objects_answer_cannot_take_the_session_elsewhere(  # type: ignore[no-untyped-def]
    servers, pg: asyncpg.Connection, db_url: str
) -> None:
    """`requests verify` against an API whose objects answer links to a third party: exit 1 with one
    sentence naming that host, no history row, and the third party never contacted."""
    api, third = servers
    with_login(api, [f"sess-hostile-{i:02d}" for i in range(20)])
    completed = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    api.app.router.add_get("/api/v1/services/1001/backups", reply(lambda: web.json_response(
        [{"id": 9, "status": "OK", "trigger_type": "scheduled", "completed_at": completed}])))  # fmt: skip
    api.app.router.add_get("/api/v1/services/1001/backups/9/objects", reply(lambda: web.json_response(
        [{"id": 1, "name": "Contact", "status": "ok", "message": "", "num_items": 1,
          "download_link": third.url + "/steal.csv"}])))  # fmt: skip
    third.app.router.add_get("/steal.csv", reply(lambda: web.Response(body=CSV)))
    await start(api, third)
    rid = await enter_forget(pg, contact(3))
    await pg.execute("UPDATE gdpr_requests SET status = 'submitted', submitted_at = now() WHERE id = $1", rid)
    before = await pg.fetchval("SELECT count(*) FROM gdpr_request_log WHERE request_id = $1", rid)
    code, out, err = await run_cli(db_url, api.url, "requests", "verify", str(rid), "--format", "json")
    assert code == 1, err
    (result,) = json.loads(out)
    port = third.url.rsplit(":", 1)[1]
    assert result["outcome"] == "error" and f"points at http://127.0.0.1:{port}, not at" in result["sentence"]
    assert third.seen == [], "no request, so no session, reached the third party"
    assert await pg.fetchval("SELECT count(*) FROM gdpr_request_log WHERE request_id = $1", rid) == before


async def test_error_answer_echoing_the_session_is_redacted(servers) -> None:  # type: ignore[no-untyped-def]
    """A download refused with a message that echoes the session id and the password: the error names
    the status and the message, with both redacted."""
    api, _ = servers
    with_login(api, ["sess-echoed-77aa99bb"])

    async def refuse(request: web.Request) -> web.Response:
        echoed = f"session {request.headers['X-SESSION-ID']} of {SIM_PASSWORD} may not read this file"
        return web.json_response({"error": "Forbidden", "message": echoed}, status=403)

    api.app.router.add_get("/f.csv", refuse)
    await start(api)
    async with session_client(api.url) as client:
        with pytest.raises(Exception, match="403 Forbidden to download") as caught:
            await read_all(client, api.url + "/f.csv")
    assert "may not read this file" in str(caught.value)
    assert "sess-echoed-77aa99bb" not in str(caught.value) and SIM_PASSWORD not in str(caught.value)
