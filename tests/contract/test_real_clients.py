"""The simulator driven the way the public clients of the API drive it, and our own client's
requests checked against what the reference says a request looks like.

Each replay below is plain aiohttp over loopback, written from what is known of one kind of
public client (Python on ``requests``, TypeScript on axios, Go, Node sending JSON, Apex):
how it authenticates (session login then ``X-SESSION-ID``, or the OAuth token at the
vendor's path then ``Authorization: Bearer``), how it encodes bodies (form, multipart, JSON;
``True``/``False``; no body where a call has no fields) and which answer fields it reads,
with their types.  A recording middleware in front of the simulator proves each request
went over the wire as claimed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web

from gdpr_daemon.config import load_settings
from gdpr_daemon.ownbackup import OwnBackupClient
from gdpr_daemon.runtime import client_config
from gdpr_daemon.simulator import Simulator
from tests.helpers import SECRETS_SEEN

from .conftest import API_TOKEN, EMAIL, PASSWORD, contract_config
from .test_client_contract import exercise_every_method

TOKEN_PATH = "/oauth2/aus4c3z3l8FqrbqDU4h7/v1/token"
CLIENT_ID = "0oa4c413eq8wwcEzP4h7"
FORM, MULTIPART, JSON_TYPE = "application/x-www-form-urlencoded", "multipart/form-data", "application/json"
PRODUCTION, SANDBOX = 1001, 1003
SECRETS_SEEN.add(API_TOKEN)


@dataclass(frozen=True)
class Seen:
    """One request as the simulator received it (the body only when form-encoded)."""

    route: str | None
    method: str
    path: str
    content_type: str | None
    fields: tuple[tuple[str, str], ...]
    query: tuple[tuple[str, str], ...]
    session: bool
    bearer: bool
    body_length: int


@dataclass
class Served:
    sim: Simulator
    url: str
    http: aiohttp.ClientSession
    seen: list[Seen] = field(default_factory=list)

    def routes(self, route: str) -> list[Seen]:
        return [s for s in self.seen if s.route == route]


def recorder(seen: list[Seen]) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        body = b""
        content_type = request.content_type if request.body_exists else None
        if request.body_exists and content_type == FORM:
            body = await request.read()  # cached: the handler reads it again
        route = request.match_info.route.name
        seen.append(
            Seen(
                route, request.method, request.path, content_type,
                tuple(parse_qsl(body.decode(), keep_blank_values=True)), tuple(request.query.items()),
                "X-SESSION-ID" in request.headers, request.headers.get("Authorization", "").startswith("Bearer "),
                request.content_length or len(body),
            )
        )  # fmt: skip
        response: web.StreamResponse = await handler(request)
        return response

    return record


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    """A simulator (backups, jobs and seeds finish at once) behind a recording middleware."""
    sim = Simulator(contract_config())
    seen: list[Seen] = []
    sim.app.middlewares.insert(0, recorder(seen))
    async with sim.serve(host="127.0.0.1", port=0) as url, aiohttp.ClientSession() as http:
        yield Served(sim, url, http, seen)
    SECRETS_SEEN.update(sim.state.credentials.issued)


async def answer(resp: aiohttp.ClientResponse) -> Any:
    assert resp.status == 200, f"{resp.method} {resp.url.path}: {resp.status} {await resp.text()}"
    return await resp.json()


def requests_form(payload: dict[str, Any]) -> list[tuple[str, str]]:
    """A dict as ``requests`` form-encodes it: None left out, a list or tuple repeated, a dict
    as its keys, anything else as ``str()`` (so booleans are ``True``/``False``)."""
    pairs = []
    for key, value in payload.items():
        for item in value if isinstance(value, list | tuple | dict) else [value]:
            if item is not None:
                pairs.append((key, str(item)))
    return pairs


async def oauth_token(served: Served, *, json_body: bool = False) -> dict[str, str]:
    """The token call every OAuth client makes, then the bearer header it sends."""
    fields = {"grant_type": "refresh_token", "scope": "api:access", "refresh_token": API_TOKEN, "client_id": CLIENT_ID}
    kwargs: dict[str, Any] = {"json": fields} if json_body else {"data": fields}
    async with served.http.post(served.url + TOKEN_PATH, headers={"Accept": "application/json"}, **kwargs) as resp:
        token = await answer(resp)
    assert (token["token_type"], token["scope"]) == ("Bearer", "api:access")
    assert isinstance(token["expires_in"], int) and isinstance(token["access_token"], str)
    return {"Authorization": f"Bearer {token['access_token']}"}


async def session_login(served: Served) -> dict[str, str]:
    """The reference's login: email and password as form fields in the body."""
    async with served.http.post(
        served.url + "/api/auth/v1/login", data={"email": EMAIL, "password": PASSWORD}
    ) as resp:
        session_id = (await answer(resp))["session_id"]
    assert isinstance(session_id, str) and session_id
    return {"X-SESSION-ID": session_id}


async def test_python_requests_client(served: Served) -> None:
    """A requests-based Python client: OAuth, forms with True/False and None left out, dicts sent as their keys."""
    auth = await oauth_token(served)
    api, http = served.url + "/api/v1/", served.http

    async def post(path: str, payload: dict[str, Any]) -> Any:
        async with http.post(api + path, headers=auth, data=requests_form(payload)) as resp:
            return await answer(resp)

    async with http.get(api + "services", headers=auth) as resp:
        services = await answer(resp)
    ids = {s["displayed_name"]: s["id"] for s in services}
    assert ids["Acme Production"] == PRODUCTION and isinstance(services[-1]["archived"], bool)
    async with http.get(api + f"services/{PRODUCTION}/backups/last/objects", headers=auth) as resp:
        section = next(s for s in await answer(resp) if s["name"] == "Contact")
    for key in ("download_link", "download_added_link", "download_changed_link", "download_removed_link"):
        async with http.get(section[key], headers=auth) as resp:
            assert resp.status == 200 and resp.content_type == "text/csv"
            assert (await resp.content.readline()).startswith(b"Id,")
    export = await post(f"services/{PRODUCTION}/backups/last/export",
                        {"export_format": "csv", "include_attachments": "false", "sql_dialect": None,
                         "objects": ["Account", "Contact"]})  # fmt: skip
    endpoint = await post(f"services/{PRODUCTION}/backups/last/export_to_endpoint", {"endpoint_id": 4, "objects": []})
    assert isinstance(export["job_id"], int) and isinstance(endpoint["job_id"], int)
    rectify = await post(f"services/{PRODUCTION}/gdpr/rectify", {"record_id": "0035g00000AbCdE", "table_name": "Contact",
                         "field": "Email", "value": "new@example.org", "comment": None})  # fmt: skip
    forget = await post(f"services/{PRODUCTION}/gdpr/forget",
                        {"record_id": "0035g00000AbCdE", "table_name": "Contact", "comment": None})
    assert isinstance(rectify["id"], int) and forget["id"] == rectify["id"] + 1
    async with http.get(api + "seeding/templates", headers=auth) as resp:
        template = next(t for t in await answer(resp) if "Sales" in t["name"])
    seed = await post(f"seeding/templates/{template['id']}/seed",
                      {"destination": SANDBOX, "seeding_method": "incremental", "disable_automations": False,
                       "disable_validation_rules": None, "reindex": None, "backup_id": None, "service_id": None})  # fmt: skip
    again = await post(f"seeding/templates/{template['id']}/seed",
                       {"destination": SANDBOX, "seeding_method": "upsert", "disable_automations": True,
                        "disable_validation_rules": True, "reindex": False, "backup_id": "last",
                        "service_id": PRODUCTION})  # fmt: skip
    async with http.get(api + f"seeding/seed/{seed['seed_id']}", headers=auth) as resp:
        log = await answer(resp)
    assert (log["status"], log["dest_service_id"], again["dest_service_id"]) == ("COMPLETED", SANDBOX, SANDBOX)
    anonymize = await post(f"seeding/templates/{template['id']}/anonymize",
                           {"destination_service_id": SANDBOX, "backup_id": None, "disable_automations": False,
                            "automations_to_disable": {}})  # fmt: skip
    by_kind = await post(f"seeding/templates/{template['id']}/anonymize",
                         {"destination_service_id": SANDBOX, "disable_automations": True,
                          "automations_to_disable": {"ApexTrigger": ["Account.BeforeInsert"]}})  # fmt: skip
    for job_id in (anonymize["job_id"], by_kind["job_id"]):
        async with http.get(api + f"seeding/anonymize/{job_id}", headers=auth) as resp:
            assert (await answer(resp))["status"] == "COMPLETED"
    async with http.get(api + "jobs", headers=auth) as resp:
        assert all(isinstance(r, str) for job in await answer(resp) for r in job["results"])

    form_calls = [s for s in served.seen if s.method == "POST"]
    assert {s.content_type for s in form_calls} == {FORM} and all(s.bearer for s in form_calls[1:])
    seeds = served.routes("start_seed")
    assert ("disable_automations", "False") in seeds[0].fields and ("reindex", "False") in seeds[1].fields
    assert [k for k, _ in seeds[0].fields] == ["destination", "seeding_method", "disable_automations"]
    assert ("automations_to_disable", "ApexTrigger") in served.routes("anonymize")[1].fields


async def test_typescript_axios_client(served: Served) -> None:
    """An axios-based TypeScript client: OAuth, multipart FormData for exports and objects, back up now without a body."""
    auth = await oauth_token(served)
    api, http = served.url + "/api/v1/", served.http

    def form_data(pairs: list[tuple[str, str]]) -> aiohttp.FormData:
        return aiohttp.FormData(pairs, default_to_multipart=True)  # as the browser's and Node's FormData

    async with http.get(api + "services", headers=auth) as resp:
        services = await answer(resp)
    for s in services:  # interface Service
        assert isinstance(s["archived"], bool) and isinstance(s["enabled"], int) and not isinstance(s["enabled"], bool)
        assert s["secondary_name"] is None or isinstance(s["secondary_name"], str)
        assert all(isinstance(s[k], int) for k in ("id", "num_items", "total_size", "return_code"))
    async with http.post(api + f"services/{PRODUCTION}/backup_now", headers=auth) as resp:
        assert await answer(resp) == {}
    async with http.post(api + f"services/{PRODUCTION}/backup_specific_objects_now", headers=auth,
                         data=form_data([("list_of_objects", "Account"), ("list_of_objects", "Contact")])) as resp:  # fmt: skip
        assert await answer(resp) == {}
    async with http.get(api + f"services/{PRODUCTION}/backups", headers=auth) as resp:
        backups = await answer(resp)
    counters = ("num_sections", "num_updated_items", "num_sections_error", "num_api_calls", "num_inserted_items",
                "num_sections_info", "num_sections_warning", "num_sections_ok", "num_deleted_items")  # fmt: skip
    for b in backups:  # interface Backup
        assert all(isinstance(b[k], int) for k in ("id", *counters))
        assert all(isinstance(b[k], str) for k in ("trigger_type", "completed_at", "status"))
    assert [(b["trigger_type"], b["num_sections"]) for b in backups[-2:]] == [("manual", 8), ("manual", 2)]
    async with http.get(api + f"services/{PRODUCTION}/backups/{backups[-1]['id']}/objects", headers=auth) as resp:
        sections = await answer(resp)
    for o in sections:  # interface BackupObject
        assert all(isinstance(o[k], int) for k in ("id", "num_api_calls", "num_updated_items", "num_deleted_items",
                                                   "num_inserted_items", "num_items"))  # fmt: skip
        assert all(isinstance(o[k], str) for k in ("download_removed_link", "download_changed_link",
                                                   "download_added_link", "download_link", "name", "message", "status"))  # fmt: skip
    assert [o["name"] for o in sections] == ["Account", "Contact"]
    async with http.post(api + f"services/{PRODUCTION}/backups/last/export", headers=auth,
                         data=form_data([("export_format", "sql"), ("include_attachments", "true"),
                                         ("sql_dialect", "postgresql"), ("objects", "Contact")])) as resp:  # fmt: skip
        job_id = (await answer(resp))["job_id"]
    async with http.post(api + f"services/{PRODUCTION}/backups/last/export_to_endpoint", headers=auth,
                         data=form_data([("endpoint_id", "4"), ("objects", "Account")])) as resp:  # fmt: skip
        assert isinstance((await answer(resp))["job_id"], int)
    async with http.get(api + f"jobs/{job_id}", headers=auth) as resp:
        job = await answer(resp)  # interface Job
    assert isinstance(job["progress"], int) and isinstance(job["title"], str) and job["status"] == "COMPLETED"
    assert job["results"] and all(isinstance(r, str) for r in job["results"])

    assert served.routes("backup_now")[0].content_type is None and served.routes("backup_now")[0].body_length == 0
    for route in ("backup_specific_objects_now", "export", "export_to_endpoint"):
        assert [s.content_type for s in served.routes(route)] == [MULTIPART], route


async def test_go_client_with_session_and_multipart(served: Served) -> None:
    """A Go client: session login, X-SESSION-ID, multipart for export and forget, logout without a body."""
    auth = await session_login(served)
    api, http = served.url + "/api/v1/", served.http
    forget = aiohttp.FormData([("record_id", "0035g00000AbCdE"), ("table_name", "Contact"), ("comment", "DSR-7")],
                              default_to_multipart=True)  # fmt: skip
    async with http.post(api + f"services/{PRODUCTION}/gdpr/forget", headers=auth, data=forget) as resp:
        request_id = (await answer(resp))["id"]
    [call] = served.sim.state.gdpr_calls
    assert (call.id, call.record_id, call.table_name, call.comment) == (request_id, "0035g00000AbCdE", "Contact", "DSR-7")
    export = aiohttp.FormData([("export_format", "csv"), ("include_attachments", "false")], default_to_multipart=True)
    async with http.post(api + f"services/{PRODUCTION}/backups/last/export", headers=auth, data=export) as resp:
        assert isinstance((await answer(resp))["job_id"], int)
    async with http.post(served.url + "/api/auth/v1/logout", headers=auth) as resp:
        assert resp.status == 200
    async with http.get(api + "services", headers=auth) as resp:
        assert resp.status == 401, "the session ended"

    [login] = served.routes("login")
    assert login.content_type == FORM and {k for k, _ in login.fields} == {"email", "password"} and not login.query
    assert [s.content_type for s in served.routes("gdpr_forget") + served.routes("export")] == [MULTIPART, MULTIPART]
    assert served.routes("logout")[0].content_type is None and all(s.session for s in served.seen[1:])


async def test_node_client_sending_json(served: Served) -> None:
    """A Node client sending JSON: OAuth with a JSON token body, rectify, export and the published seed body."""
    auth = await oauth_token(served, json_body=True)
    api, http = served.url + "/api/v1/", served.http
    async with http.post(api + f"services/{PRODUCTION}/gdpr/rectify", headers=auth,
                         json={"record_id": "0035g00000AbCdE", "table_name": "Contact", "field": "Email",
                               "value": "new@example.org"}) as resp:  # fmt: skip
        assert isinstance((await answer(resp))["id"], int)
    async with http.post(api + f"services/{PRODUCTION}/backups/last/export", headers=auth,
                         json={"export_format": "csv", "include_attachments": True, "objects": ["Lead"]}) as resp:  # fmt: skip
        assert isinstance((await answer(resp))["job_id"], int)
    async with http.get(api + f"services/{SANDBOX}/automations", headers=auth) as resp:
        automations = await answer(resp)
    assert set(automations) == {"ApexTrigger", "ValidationRule"}
    assert all(isinstance(n, str) and n.count(".") == 1 for names in automations.values() for n in names)
    body = json.loads((Path(__file__).parent / "fixtures" / "start_seed.request.json").read_text(encoding="utf-8"))
    body["destination"] = SANDBOX  # the published example's body, aimed at a sandbox of this account
    body["automations_to_disable"] = {kind: names[:1] for kind, names in automations.items()}
    async with http.post(api + "seeding/templates/1/seed", headers=auth, json=body) as resp:
        seed = await answer(resp)
    assert (seed["seeding_method"], seed["disable_automations"]) == ("incremental", True)
    assert {s.content_type for s in served.seen if s.method == "POST"} == {JSON_TYPE}


async def test_apex_client_with_session_and_form_text(served: Served) -> None:
    """An Apex client: session login, bodies written as form text with an explicit Content-Type, fields read."""
    auth = await session_login(served)
    api, http = served.url + "/api/v1/", served.http
    headers = {**auth, "Content-Type": FORM}
    async with http.get(api + f"services/{PRODUCTION}", headers=auth) as resp:
        service = await answer(resp)
    assert (service["id"], service["status"], service["enabled"]) == (PRODUCTION, "ACTIVE", 1)
    text = "record_id=0035g00000AbCdE&table_name=Contact&field=Email&value=new%40example.org&comment=DSR%208"
    async with http.post(api + f"services/{PRODUCTION}/gdpr/rectify", headers=headers, data=text) as resp:
        receipt = await answer(resp)
    [call] = served.sim.state.gdpr_calls
    assert receipt == {"id": call.id} and call.comment == "DSR 8" and call.field == "Email"
    async with http.get(api + "events", headers=auth, params={"from": "1500"}) as resp:  # after the synthetic ones
        events = await answer(resp)
    assert [e["parameters"]["request_id"] for e in events if e["key"] == "gdpr.rectify"] == [call.id]


async def test_refusals_keep_the_vendors_error_shape(served: Served) -> None:
    """What the API would refuse is refused in every encoding, as {"error", "message"}: missing fields, bad enums."""
    auth = await session_login(served)
    path = served.url + f"/api/v1/services/{PRODUCTION}/backups/last/export"
    bad_enum = [("export_format", "xml"), ("include_attachments", "False")]
    for kwargs in ({"data": bad_enum}, {"data": aiohttp.FormData(bad_enum, default_to_multipart=True)},
                   {"json": {"export_format": "xml", "include_attachments": False}}):  # fmt: skip
        async with served.http.post(path, headers=auth, **kwargs) as resp:
            assert resp.status == 400 and await resp.json() == {
                "error": "Bad Request", "message": "invalid request: export_format must be one of csv, sql, not 'xml'"
            }  # fmt: skip
    async with served.http.post(served.url + f"/api/v1/services/{PRODUCTION}/gdpr/forget", headers=auth,
                                data=aiohttp.FormData([("record_id", "x")], default_to_multipart=True)) as resp:  # fmt: skip
        assert resp.status == 400 and (await resp.json())["message"] == "invalid request: table_name is required"


# -- our own client, against what the reference says a request looks like -----------------------

#: Per route of the simulator: the form fields the reference requires and those it allows.
#: A call missing here sends no body at all.
REFERENCE_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    "login": ({"email", "password"}, set()),
    "oauth_token": ({"grant_type", "refresh_token", "scope", "client_id"}, set()),
    "backup_specific_objects_now": ({"list_of_objects"}, set()),
    "export": ({"export_format", "include_attachments"}, {"sql_dialect", "objects"}),
    "export_to_endpoint": ({"endpoint_id"}, {"objects"}),
    "gdpr_rectify": ({"record_id", "table_name", "field", "value"}, {"comment"}),
    "gdpr_forget": ({"record_id", "table_name"}, {"comment"}),
    "start_seed": ({"destination", "seeding_method", "disable_automations"},
                   {"automations_to_disable", "disable_validation_rules", "reindex", "backup_id", "service_id"}),
    "anonymize": ({"destination_service_id", "disable_automations"}, {"automations_to_disable", "backup_id"}),
}  # fmt: skip
BOOLEANS = {"include_attachments", "disable_automations", "disable_validation_rules", "reindex"}
LISTS = {"list_of_objects", "objects"}


def stray_from_the_reference(seen: Seen) -> list[str]:
    """Every way one request of our client differs from the reference's description of it."""
    where = f"{seen.method} {seen.path}"
    problems = []
    if seen.route in REFERENCE_FIELDS:
        required, allowed = REFERENCE_FIELDS[seen.route]
        names = [k for k, _ in seen.fields]
        if seen.content_type != FORM:
            problems.append(f"{where}: sent as {seen.content_type}, not form-encoded")
        if missing := required - set(names):
            problems.append(f"{where}: lacks {sorted(missing)}")
        if extra := set(names) - required - allowed:
            problems.append(f"{where}: sends fields the reference does not have: {sorted(extra)}")
        problems += [f"{where}: {k} given twice" for k in set(names) - LISTS if names.count(k) > 1]
        problems += [f"{where}: {k}={v!r} is no true/false" for k, v in seen.fields if k in BOOLEANS
                     and v not in ("true", "false")]  # fmt: skip
        problems += [f"{where}: {k} holds several names in one value" for k, v in seen.fields
                     if k in LISTS and ("," in v or v.startswith("["))]  # fmt: skip
    elif seen.content_type is not None or seen.body_length:
        problems.append(f"{where}: sends a body ({seen.content_type}) where the call has no fields")
    if seen.route == "events" and {k for k, _ in seen.query} - {"from"}:
        problems.append(f"{where}: query {seen.query} beyond from")
    elif seen.route != "events" and seen.query:
        problems.append(f"{where}: has a query string")
    public = seen.route in ("login", "oauth_token")
    if public and (seen.session or seen.bearer):
        problems.append(f"{where}: sends a credential to get one")
    if not public and not (seen.session or seen.bearer):
        problems.append(f"{where}: sends no credential")
    return problems


@pytest.mark.parametrize("auth", ["session", "oauth"])
async def test_own_client_requests_look_as_the_reference_says(served: Served, auth: str) -> None:
    """Every call of our client (each public method) goes with the reference's method, path, encoding and field names."""
    settings = load_settings(
        None, environ={}, ownbackup_url=served.url, ownbackup_auth=auth, ownbackup_email=EMAIL,
        ownbackup_password=PASSWORD, ownbackup_api_token=API_TOKEN, ownbackup_token_url=served.url + TOKEN_PATH,
    )  # fmt: skip
    client = OwnBackupClient(client_config(settings))
    await exercise_every_method(client)  # type: ignore[arg-type]

    problems = [p for seen in served.seen for p in stray_from_the_reference(seen)]
    assert problems == []
    routes = {s.route for s in served.seen}
    with_fields = set(REFERENCE_FIELDS) - ({"oauth_token"} if auth == "session" else {"login"})
    assert with_fields <= routes, "a call with fields went unchecked"
    assert {"backup_now", "logout" if auth == "session" else "services", "events"} <= routes
    [token_or_login] = served.routes("oauth_token" if auth == "oauth" else "login")
    if auth == "oauth":
        assert dict(token_or_login.fields) == {
            "grant_type": "refresh_token", "refresh_token": API_TOKEN, "scope": "api:access", "client_id": CLIENT_ID
        }  # fmt: skip
        assert all(s.bearer and not s.session for s in served.seen if s.route != "oauth_token")
    else:
        assert dict(token_or_login.fields) == {"email": EMAIL, "password": PASSWORD}
        assert all(s.session and not s.bearer for s in served.seen if s.route != "login")
    [seed] = served.routes("start_seed")
    assert json.loads(dict(seed.fields)["automations_to_disable"]).keys() == {"ApexTrigger"}
    assert [v for k, v in served.routes("backup_specific_objects_now")[0].fields] == ["Account", "Contact"]


def test_the_reference_check_finds_each_kind_of_stray() -> None:
    """The check above is no rubber stamp: a body where none belongs, missing and unknown fields, True, commas are found."""
    def seen(route: str, fields: tuple[tuple[str, str], ...] = (), content_type: str | None = FORM, **kw: Any) -> Seen:
        values = {"method": "POST", "path": f"/{route}", "query": (), "session": True, "bearer": False,
                  "body_length": 1 if content_type else 0, **kw}  # fmt: skip
        return Seen(route, content_type=content_type, fields=fields, **values)

    ok = (("record_id", "1"), ("table_name", "Contact"))
    assert stray_from_the_reference(seen("gdpr_forget", ok)) == []
    assert stray_from_the_reference(seen("backup_now", (("list_of_objects", "Account"),)))
    assert stray_from_the_reference(seen("gdpr_forget", ok[:1]))
    assert stray_from_the_reference(seen("gdpr_forget", (*ok, ("tabel_name", "x"))))
    assert stray_from_the_reference(seen("gdpr_forget", ok, content_type=JSON_TYPE))
    assert stray_from_the_reference(seen("export", (("export_format", "csv"), ("include_attachments", "True"))))
    assert stray_from_the_reference(seen("backup_specific_objects_now", (("list_of_objects", "Account,Contact"),)))
    assert stray_from_the_reference(seen("gdpr_forget", ok, session=False))
    assert stray_from_the_reference(seen("login", (("email", "e"), ("password", "p"))))  # a session sent to log in
    assert stray_from_the_reference(seen("services", content_type=None, method="GET", query=(("page", "2"),)))


async def test_own_client_ignores_fields_the_api_adds_later() -> None:
    """With a new field in every object of every JSON answer, each client method still works (the field kept in raw)."""

    @web.middleware
    async def add_fields(request: web.Request, handler: Any) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        if not isinstance(response, web.Response) or response.content_type != JSON_TYPE or response.status != 200:
            return response
        data = json.loads(response.body)  # type: ignore[arg-type]
        later = {"added_in_api_1_1": {"nested": [1, "two", None]}, "region_hint": "emea1"}
        if isinstance(data, dict):
            data = {**data, **later}
        elif isinstance(data, list):
            data = [{**item, **later} if isinstance(item, dict) else item for item in data]
        return web.json_response(data)

    sim = Simulator(contract_config())
    sim.app.middlewares.insert(0, add_fields)
    async with sim.serve(host="127.0.0.1", port=0) as url:
        settings = load_settings(None, environ={}, ownbackup_url=url, ownbackup_email=EMAIL, ownbackup_password=PASSWORD)
        await exercise_every_method(OwnBackupClient(client_config(settings)))  # type: ignore[arg-type]
        async with OwnBackupClient(client_config(settings)) as again:
            service = await again.get_service(PRODUCTION)
    SECRETS_SEEN.update(sim.state.credentials.issued)
    assert service.raw["region_hint"] == "emea1" and service.id == PRODUCTION
