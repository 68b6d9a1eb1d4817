"""The vendor's published example answers hold for the document, the client and the simulator.

``fixtures/*.json`` are the example answers of the OwnBackup API reference 1.0, transcribed
as they are printed (one file per call, named by the document's operationId;
``*.request.json`` is an example request body).  They are the fixed point: the document must
accept each, the client's models must read each, and the simulator must answer every field
of each with the same JSON type.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema_rs
import pytest

from gdpr_daemon.ownbackup import Backup, BackupObject, GdprSubmission, Seed, Service
from gdpr_daemon.ownbackup.models import parse_automations, parse_id
from gdpr_daemon.ownbackup.openapi import dereference, load_spec, operations
from gdpr_daemon.simulator import Simulator
from tests.helpers import SECRETS_SEEN

from .conftest import EMAIL, PASSWORD, AnswerValidator, contract_config

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ANSWERS = sorted(p for p in FIXTURES.glob("*.json") if not p.name.endswith(".request.json"))
OPERATIONS = {op.operation_id: op for op in operations(load_spec())}
# Every call whose example answer the reference prints.
PUBLISHED = {
    "login", "list_services", "get_service", "backup_specific_objects_now", "list_backups", "get_backup",
    "export", "export_to_endpoint", "backup_objects", "gdpr_rectify", "gdpr_forget", "events", "seed_info",
    "automations",
}  # fmt: skip


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def json_type(value: Any) -> str:
    """The JSON type of a value, telling booleans from integers."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {int: "integer", float: "number", str: "string", list: "array", dict: "object"}[type(value)]


def test_every_published_example_has_its_fixture() -> None:
    """The fixtures are exactly the reference's example answers, each named by an operation of the document."""
    assert {p.stem for p in ANSWERS} == PUBLISHED
    assert PUBLISHED <= set(OPERATIONS)


@pytest.mark.parametrize("path", ANSWERS, ids=lambda p: p.stem)
def test_example_answer_conforms_to_the_document(path: Path, answers: AnswerValidator) -> None:
    """Each published example answer validates against the document's 200 answer of its call."""
    op = OPERATIONS[path.stem]
    assert answers.problems(op.method, op.path, 200, load(path.name)) == []


def test_example_request_conforms_to_the_document() -> None:
    """The published start-seed body (automations by kind) validates against the document's JSON request schema."""
    spec = load_spec()
    body = OPERATIONS["start_seed"].request_body
    assert body is not None
    schema = body["content"]["application/json"]["schema"]
    validator = jsonschema_rs.validator_for(dereference(spec, schema))
    assert validator.is_valid(load("start_seed.request.json"))


@pytest.mark.parametrize(
    ("name", "change", "where"),
    [
        ("get_service.json", {"archived": 1}, "archived"),
        ("get_backup.json", {"completed_at": 1523270342}, "completed_at"),
        ("get_backup.json", {"num_sections": None}, "num_sections"),
        ("seed_info.json", {"seed_id": "731169459"}, "seed_id"),
        ("automations.json", {"ApexTrigger": [{"name": "Account.BeforeInsert"}]}, "ApexTrigger"),
    ],
)
def test_document_refuses_shapes_the_reference_does_not_have(
    name: str, change: dict[str, Any], where: str, answers: AnswerValidator
) -> None:
    """The document is no rubber stamp: an example with a field of another type is refused, naming the field."""
    op = OPERATIONS[name.removesuffix(".json")]
    problems = answers.problems(op.method, op.path, 200, {**load(name), **change})
    assert problems and all(p.startswith(where) for p in problems), problems


def test_client_reads_every_example() -> None:
    """The client's models read each example with its values; fields the API adds later are kept in raw only."""
    service = Service.from_json({**load("get_service.json"), "added_later": {"x": 1}})
    assert (service.id, service.archived, service.enabled, service.return_code) == (300008, True, True, 1)
    assert service.last_backup == datetime(2018, 4, 9, 10, 30, 42, tzinfo=UTC) and service.raw["added_later"]
    assert [s.id for s in map(Service.from_json, load("list_services.json"))] == [300008]
    backup = Backup.from_json(load("get_backup.json"))
    assert (backup.id, backup.status, backup.trigger_type) == (420519, "OK", "scheduled")
    assert backup.completed_at == datetime(2018, 4, 9, 10, 39, 2, tzinfo=UTC)
    assert (backup.num_sections, backup.num_sections_ok, backup.num_sections_info, backup.num_sections_warning,
            backup.num_sections_error) == (23, 7, 5, 2, 9)  # fmt: skip
    assert (backup.num_api_calls, backup.num_bulk_api_batches) == (2314, 1000)
    assert (backup.num_inserted_items, backup.num_updated_items, backup.num_deleted_items) == (6, 1, 5)
    [section] = [BackupObject.from_json(o) for o in load("backup_objects.json")]
    assert (section.id, section.name, section.status, section.num_items) == (82193842, "summary", "ok", 12)
    assert set(section.links) == {"changed", "removed"} and section.download_link is None
    seed = Seed.from_json(load("seed_info.json"))
    assert (seed.id, seed.seed_id, seed.template, seed.dest_service_id, seed.seeding_method) == (
        1, 731169459, 1, 4, "add"
    )  # fmt: skip
    assert seed.finished_at == datetime(2020, 5, 11, 11, 19, 53, tzinfo=UTC) and seed.total_insert_records == 5
    assert parse_automations(load("automations.json"))["ValidationRule"] == [
        "Account.CountryValidation", "Opportunity.ReasonRequired"
    ]  # fmt: skip
    assert GdprSubmission.from_json(load("gdpr_forget.json")).id == 30141
    assert parse_id(load("export.json"), "export", ("job_id", "id")) == 30141


@pytest.fixture
async def api() -> AsyncIterator[tuple[Simulator, aiohttp.ClientSession, str, dict[str, str]]]:
    """A simulator with a logged-in session (and so a login event)."""
    sim = Simulator(contract_config(synthetic_events=0, login_events=True))
    async with sim.serve(host="127.0.0.1", port=0) as url, aiohttp.ClientSession() as http:
        async with http.post(url + "/api/auth/v1/login", data={"email": EMAIL, "password": PASSWORD}) as resp:
            session = {"X-SESSION-ID": (await resp.json())["session_id"]}
        yield sim, http, url, session
    SECRETS_SEEN.update(sim.state.credentials.issued)


async def simulator_answers(http: aiohttp.ClientSession, url: str, auth: dict[str, str]) -> dict[str, Any]:
    """The simulator's answer to each call the reference has an example of, by operationId."""

    async def call(method: str, path: str, **kwargs: Any) -> Any:
        async with http.request(method, url + path, headers=auth, **kwargs) as resp:
            assert resp.status == 200, (path, await resp.text())
            return await resp.json()

    service = "/api/v1/services/1001"
    seed = await call("POST", "/api/v1/seeding/templates/1/seed",
                      data={"destination": 1003, "seeding_method": "upsert", "disable_automations": "false"})  # fmt: skip
    return {
        "login": await call("POST", "/api/auth/v1/login", data={"email": EMAIL, "password": PASSWORD}),
        "list_services": await call("GET", "/api/v1/services"),
        "get_service": await call("GET", service),
        "backup_specific_objects_now": await call(
            "POST", service + "/backup_specific_objects_now", data={"list_of_objects": "Contact"}
        ),
        "list_backups": await call("GET", service + "/backups"),
        "get_backup": await call("GET", service + "/backups/last"),
        "export": await call(
            "POST", service + "/backups/last/export", data={"export_format": "csv", "include_attachments": "false"}
        ),
        "export_to_endpoint": await call("POST", service + "/backups/last/export_to_endpoint", data={"endpoint_id": 4}),
        "backup_objects": await call("GET", service + "/backups/last/objects"),
        "gdpr_rectify": await call(
            "POST", service + "/gdpr/rectify",
            data={"record_id": "0031t00000AbCdEAAA", "table_name": "Contact", "field": "Email", "value": "a@b.example"},
        ),  # fmt: skip
        "gdpr_forget": await call("POST", service + "/gdpr/forget", data={"record_id": "0031t0", "table_name": "Lead"}),
        "events": await call("GET", "/api/v1/events"),
        "seed_info": await call("GET", f"/api/v1/seeding/seed/{seed['seed_id']}"),
        "automations": await call("GET", service + "/automations"),
    }


async def test_simulator_answers_every_field_of_each_example_with_its_type(api: Any) -> None:
    """For each published example, the simulator's answer has every one of its fields, each of the same JSON type."""
    _sim, http, url, session = api
    got = await simulator_answers(http, url, session)
    assert set(got) == PUBLISHED
    missing: list[str] = []
    for name in sorted(PUBLISHED):
        example, answer = load(f"{name}.json"), got[name]
        if isinstance(example, list):
            assert isinstance(answer, list) and answer, name
            example, answer = example[0], answer[0]
        for key, value in example.items():
            if key not in answer:
                missing.append(f"{name}.{key} is missing")
            elif json_type(answer[key]) != json_type(value):
                missing.append(f"{name}.{key} is {json_type(answer[key])}, the reference has {json_type(value)}")
        if not example:
            assert answer == {}, name
    assert missing == []
