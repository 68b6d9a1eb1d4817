"""The shipped OpenAPI document: valid OpenAPI 3.1, packaged, and the same API the
simulator serves and the client calls."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from gdpr_daemon.ownbackup import Endpoints
from gdpr_daemon.ownbackup.openapi import SPEC_RESOURCE, dereference, load_spec, operations, response_schema
from gdpr_daemon.simulator import Simulator
from gdpr_daemon.simulator.control import PREFIX as CONTROL_PREFIX

ROOT = Path(__file__).resolve().parent.parent.parent
# Client call names whose paths are not in the Endpoints table (links and the token URL).
NOT_IN_ENDPOINTS = {"download", "oauth_token"}


def test_document_is_valid_openapi_3_1() -> None:
    """load_spec() reads the packaged file through importlib.resources and it validates as OpenAPI 3.1."""
    assert resources.files("gdpr_daemon.ownbackup").joinpath(SPEC_RESOURCE).is_file()
    spec = load_spec()
    assert spec["openapi"].startswith("3.1")
    validate(spec)


def test_document_ships_in_the_package() -> None:
    """pyproject's package-data includes the document, so an installed wheel has it."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "ownbackup/openapi.yaml" in pyproject["tool"]["setuptools"]["package-data"]["gdpr_daemon"]


def test_load_spec_gives_each_caller_its_own_copy() -> None:
    """Changing one loaded document does not change the next."""
    first = load_spec()
    first["paths"].clear()
    assert load_spec()["paths"]


def test_operations_are_exactly_the_simulator_routes() -> None:
    """Every API route of the simulator is in the document and every operation is served."""
    app = Simulator().app
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and not route.resource.canonical.startswith(CONTROL_PREFIX)
    }
    documented = {(op.method, op.path) for op in operations(load_spec())}
    assert served == documented


def test_client_endpoint_table_matches_the_document() -> None:
    """Each default client path is the document's path of the operation of that call name."""
    by_id = {op.operation_id: op for op in operations(load_spec())}
    endpoints = Endpoints()
    call_names = {
        "services": "list_services", "service": "get_service", "backups": "list_backups",
        "backup": "get_backup", "jobs": "list_jobs", "job": "get_job", "seed": "seed_info",
        "anonymize_job": "anonymize_info",
    }  # fmt: skip
    for field in Endpoints.names():
        op = by_id[call_names.get(field, field)]
        assert getattr(endpoints, field) == op.path, field
    assert set(by_id) - {call_names.get(f, f) for f in Endpoints.names()} == NOT_IN_ENDPOINTS


def test_every_operation_documents_its_answers_and_security() -> None:
    """Each operation has a JSON 200 (CSV for downloads), 401 unless public, and error-shaped refusals."""
    spec = load_spec()
    error = dereference(spec, spec["components"]["schemas"]["Error"])
    for op in operations(spec):
        media = "text/csv" if op.operation_id == "download" else "application/json"
        assert response_schema(spec, op.method, op.path, 200, media), op.operation_id
        public = op.security == []
        assert public == (op.operation_id in {"login", "oauth_token"}), op.operation_id
        if not public:
            assert response_schema(spec, op.method, op.path, 401) == error
        for status in (400, 404, 415):
            if str(status) in op.responses:
                assert response_schema(spec, op.method, op.path, status) == error, (op.operation_id, status)
        if op.request_body is not None:
            assert set(op.request_body["content"]) == {
                "application/x-www-form-urlencoded", "multipart/form-data", "application/json"
            }, op.operation_id  # fmt: skip


def test_field_types_follow_the_vendor_examples() -> None:
    """enabled and return_code are integers, archived a boolean, job results strings, times ISO 8601 with ms."""
    spec = load_spec()
    schemas = spec["components"]["schemas"]
    service = dereference(spec, schemas["Service"])["properties"]
    assert service["enabled"]["type"] == service["return_code"]["type"] == "integer"
    assert service["archived"]["type"] == "boolean" and service["secondary_name"]["type"] == ["string", "null"]
    assert dereference(spec, schemas["Job"])["properties"]["results"] == {
        "type": "array", "items": {"type": "string"}, "description": schemas["Job"]["properties"]["results"]["description"]
    }  # fmt: skip
    assert schemas["Automations"]["additionalProperties"]["items"]["type"] == "string"
    assert schemas["Timestamp"]["format"] == "date-time" and r"\.[0-9]{3}Z$" in schemas["Timestamp"]["pattern"]
    assert schemas["Error"]["required"] == ["error", "message"]


def test_token_operation_is_the_vendors() -> None:
    """The token operation has the vendor's path on its own server, and the client's defaults are that URL."""
    from gdpr_daemon.ownbackup import VENDOR_CLIENT_ID, VENDOR_TOKEN_URL

    spec = load_spec()
    [(path, item)] = [(p, i) for p, i in spec["paths"].items() if "post" in i and i["post"]["operationId"] == "oauth_token"]
    assert item["servers"][0]["url"] + path == VENDOR_TOKEN_URL
    assert VENDOR_CLIENT_ID == "0oa4c413eq8wwcEzP4h7"


def test_response_schema_refuses_what_is_not_documented() -> None:
    """Asking for an undocumented status or media type is a KeyError, not a silent pass."""
    spec = load_spec()
    with pytest.raises(KeyError):
        response_schema(spec, "GET", "/api/v1/services", 404)
    with pytest.raises(KeyError):
        response_schema(spec, "GET", "/api/v1/services", 200, "text/csv")
    assert response_schema(spec, "GET", "/api/v1/services", 503)["required"] == ["error", "message"]


def test_dereference_refuses_validation_keywords_beside_a_ref() -> None:
    """A $ref with constraints beside it would be merged wrongly, so it is refused."""
    spec = {"components": {"schemas": {"A": {"type": "string"}}}}
    assert dereference(spec, {"$ref": "#/components/schemas/A", "description": "d"}) == {
        "type": "string", "description": "d",
    }  # fmt: skip
    with pytest.raises(ValueError, match="validation keywords"):
        dereference(spec, {"$ref": "#/components/schemas/A", "minLength": 2})
