"""The simulator refuses requests that break the OpenAPI document, in the vendor's error shape."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from gdpr_daemon.simulator import Simulator, cli
from gdpr_daemon.simulator.conformance import INVALID
from tests.helpers import SECRETS_SEEN

from .conftest import EMAIL, PASSWORD, contract_config

FORGET = "/api/v1/services/1001/gdpr/forget"
RECTIFY = "/api/v1/services/1001/gdpr/rectify"
EXPORT = "/api/v1/services/1001/backups/last/export"
SECRET_VALUE = "PII-VALUE-validation-anna@example.org"
TOKEN_PATH = "/oauth2/aus4c3z3l8FqrbqDU4h7/v1/token"


class Api:
    def __init__(self, url: str, http: aiohttp.ClientSession, session_id: str | None) -> None:
        self.url, self.http, self.session_id = url, http, session_id

    async def call(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> tuple[int, Any]:
        headers = {"X-SESSION-ID": self.session_id} if auth and self.session_id else {}
        headers.update(kwargs.pop("headers", {}))
        async with self.http.request(method, self.url + path, headers=headers, **kwargs) as resp:
            body = await resp.json() if resp.content_type == "application/json" else await resp.text()
            return resp.status, body


async def start(http: aiohttp.ClientSession, stack: list[Any], **changes: Any) -> tuple[Simulator, Api]:
    sim = Simulator(contract_config(synthetic_events=0, **changes))
    serving = sim.serve(host="127.0.0.1", port=0)
    url = await serving.__aenter__()
    stack.append((sim, serving))
    async with http.post(url + "/api/auth/v1/login", data={"email": EMAIL, "password": PASSWORD}) as resp:
        session_id = (await resp.json())["session_id"]
    return sim, Api(url, http, session_id)


@pytest.fixture
async def served() -> AsyncIterator[Any]:
    """Starts simulators (config changes as keywords) and stops them after the test."""
    stack: list[Any] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:

        async def make(**changes: Any) -> tuple[Simulator, Api]:
            return await start(http, stack, **changes)

        try:
            yield make
        finally:
            for sim, serving in reversed(stack):
                await serving.__aexit__(None, None, None)
                SECRETS_SEEN.update(sim.state.credentials.issued)


@pytest.fixture
async def api(served: Any) -> Api:
    return (await served())[1]


def refused(status: int, body: Any) -> str:
    assert status == 400, body
    assert body["error"] == "Bad Request" and body["message"].startswith(INVALID), body
    message: str = body["message"]
    return message


@pytest.mark.parametrize("encoding", ["data", "json"])
async def test_missing_required_field_is_named(api: Api, encoding: str) -> None:
    """A GDPR forget without table_name answers 400 naming it, form-encoded or JSON alike."""
    status, body = await api.call("POST", FORGET, **{encoding: {"record_id": "0031t00000AbCdE"}})
    assert refused(status, body) == "invalid request: table_name is required"


async def test_wrong_types_are_named_in_form_and_json(api: Api) -> None:
    """endpoint_id that is no integer and a boolean that is not true/false answer 400 naming the field."""
    path = "/api/v1/services/1001/backups/last/export_to_endpoint"
    for body in ({"endpoint_id": "four"}, {"endpoint_id": "4.5"}):
        assert "endpoint_id must be an integer" in refused(*await api.call("POST", path, data=body))
    assert "endpoint_id must be an integer" in refused(*await api.call("POST", path, json={"endpoint_id": "4"}))
    assert "endpoint_id must be at least 1" in refused(*await api.call("POST", path, data={"endpoint_id": "0"}))
    message = refused(*await api.call("POST", EXPORT, data={"export_format": "csv", "include_attachments": "maybe"}))
    assert "include_attachments must be true or false" in message
    status, answer = await api.call("POST", EXPORT, data={"export_format": "csv", "include_attachments": "TRUE"})
    assert status == 200 and "job_id" in answer


async def test_enums_list_the_allowed_values(api: Api) -> None:
    """An unknown export_format answers the allowed values; sql without sql_dialect names sql_dialect."""
    message = refused(*await api.call("POST", EXPORT, data={"export_format": "xml", "include_attachments": "false"}))
    assert message == "invalid request: export_format must be one of csv, sql, not 'xml'"
    assert refused(*await api.call("POST", EXPORT, data={"export_format": "sql", "include_attachments": "False"})) == (
        "invalid request: sql_dialect is required"
    )
    assert refused(*await api.call("POST", EXPORT, data={"export_format": "csv"})) == (
        "invalid request: include_attachments is required"
    ), "the reference marks include_attachments required"


async def test_unknown_fields_are_refused_with_the_known_ones(api: Api) -> None:
    """A misspelt field answers 400 naming it and the fields the call knows."""
    body = {"record_id": "0031t00000AbCdE", "table_name": "Contact", "tabel_name": "Lead"}
    message = refused(*await api.call("POST", FORGET, data=body))
    assert message == "invalid request: unknown field tabel_name (known fields: record_id, table_name, comment)"


async def test_several_problems_in_one_sentence_each(api: Api) -> None:
    """Up to three problems are reported, required fields first."""
    body = {"table_name": "Not an API name", "field": "Email", "extra": "x"}
    message = refused(*await api.call("POST", RECTIFY, json=body))
    parts = message.removeprefix(INVALID).split("; ")
    assert parts[:2] == ["record_id is required", "value is required"]
    assert len(parts) == 3 and parts[2].startswith("table_name is not a valid Salesforce API name")


async def test_personal_data_is_never_echoed(api: Api) -> None:
    """A bad record_id or rectify value is refused without repeating it."""
    blank = "   \t "
    message = refused(*await api.call("POST", FORGET, data={"record_id": blank, "table_name": "Contact"}))
    assert message == "invalid request: record_id must not be empty or only white space"
    body = {"record_id": SECRET_VALUE, "table_name": "Contact", "field": "Email", "value": [SECRET_VALUE]}
    message = refused(*await api.call("POST", RECTIFY, json=body))
    assert message == "invalid request: value must be text" and SECRET_VALUE not in message


async def test_lists_as_repeated_fields_commas_or_json_text(api: Api) -> None:
    """A list goes as a repeated form field, comma-separated or as a JSON array; each item is checked."""
    path = "/api/v1/services/1001/backup_specific_objects_now"
    for form in ([("list_of_objects", "Account"), ("list_of_objects", "Contact")],
                 {"list_of_objects": "Account, Contact"}, {"list_of_objects": '["Account", "Contact"]'}):  # fmt: skip
        status, answer = await api.call("POST", path, data=form)
        assert (status, answer) == (200, {}), form
    message = refused(*await api.call("POST", path, data={"list_of_objects": "Account,Bad Name"}))
    assert message.startswith("invalid request: list_of_objects[1] is not a valid Salesforce API name")
    assert refused(*await api.call("POST", path, data={"list_of_objects": "[oops"})) == (
        "invalid request: list_of_objects is not a valid JSON array"
    )


async def test_scalar_given_twice_is_refused(api: Api) -> None:
    """A form field that is no list, given twice, answers 400 (which one was meant is unknown)."""
    form = [("record_id", "0031t00000AbCdE"), ("table_name", "Contact"), ("table_name", "Lead")]
    assert refused(*await api.call("POST", FORGET, data=form)) == "invalid request: table_name must be text"


async def test_body_that_is_not_an_object_or_not_readable(api: Api) -> None:
    """Invalid JSON, JSON that is no object, and other media types are refused before the handler."""
    status, body = await api.call("POST", FORGET, data=b"{nope", headers={"Content-Type": "application/json"})
    assert refused(status, body) == "invalid request: the request body is not valid JSON"
    assert "must be a JSON object" in refused(*await api.call("POST", FORGET, json=[1, 2]))
    status, body = await api.call("POST", FORGET, data=b"record_id=1", headers={"Content-Type": "text/plain"})
    assert status == 415 and body["error"] == "Unsupported Media Type"
    assert body["message"] == (
        "the request body is text/plain; send application/json or application/x-www-form-urlencoded "
        "or multipart/form-data"
    )


async def test_path_and_query_parameters(api: Api) -> None:
    """A path id that is no integer answers 404 in the vendor's words; a bad ``from`` answers 400."""
    status, body = await api.call("GET", "/api/v1/services/abc")
    assert (status, body) == (404, {"error": "Not Found", "message": "service_id abc not found"})
    assert (await api.call("GET", "/api/v1/services/1001/backups/latest"))[0] == 404
    assert refused(*await api.call("GET", "/api/v1/events?from=-1")) == "invalid request: from must be at least 0"
    assert refused(*await api.call("GET", "/api/v1/events?from=x")) == "invalid request: from must be an integer"
    assert (await api.call("GET", "/api/v1/events?from=0"))[0] == 200


async def test_authentication_comes_before_validation(api: Api) -> None:
    """Without a session an invalid body answers 401, not 400: nothing is revealed unauthenticated."""
    status, body = await api.call("POST", FORGET, auth=False, data={"nonsense": "1"})
    assert status == 401 and body["error"] == "Unauthorized"


async def test_token_url_is_validated_but_ignores_unknown_parameters(api: Api) -> None:
    """The token URL refuses a wrong grant_type by the document and ignores extra OAuth parameters."""
    form = {"grant_type": "password", "refresh_token": "x", "scope": "api:access", "client_id": "c"}
    message = refused(*await api.call("POST", TOKEN_PATH, auth=False, data=form))
    assert message == "invalid request: grant_type must be one of refresh_token, not 'password'"
    form.update(grant_type="refresh_token", refresh_token="contract-Api-Token-4711", client_secret="ignored")
    status, answer = await api.call("POST", TOKEN_PATH, auth=False, data=form)
    assert status == 200 and answer["token_type"] == "Bearer"


async def test_validation_can_be_switched_off(served: Any) -> None:
    """validate_requests=False lets a request the document refuses reach the handler, as before."""
    sim, api = await served(validate_requests=False)
    body = {"record_id": "0031t00000AbCdE", "table_name": " Contact ", "extra": "ignored"}
    status, answer = await api.call("POST", FORGET, data=body)
    assert status == 200 and answer["id"] == sim.state.gdpr_calls[0].id
    assert sim.state.gdpr_calls[0].table_name == "Contact"


def test_no_validate_option() -> None:
    """`gdpr-daemon simulate --no-validate` turns request validation off; it is on by default."""
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert cli.build(parser.parse_args([]), {}).config.validate_requests is True
    assert cli.build(parser.parse_args(["--no-validate"]), {}).config.validate_requests is False
