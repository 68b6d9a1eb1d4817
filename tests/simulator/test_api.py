"""Services, backups, downloads, exports, jobs, seeding and automations over real HTTP."""

from __future__ import annotations

import csv
import io
import json
import re

import aiohttp
import pytest

from .conftest import StartApi
from .support import Api, FakeClock

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SERVICE_FIELDS = {
    "id", "displayed_name", "secondary_name", "provider", "org_id", "status", "enabled", "archived",
    "last_backup", "num_items", "total_size", "return_code", "return_message",
}  # fmt: skip
BACKUP_FIELDS = {
    "id", "status", "trigger_type", "completed_at", "num_sections", "num_sections_ok", "num_sections_info",
    "num_sections_warning", "num_sections_error", "num_api_calls", "num_bulk_api_batches",
    "num_inserted_items", "num_updated_items", "num_deleted_items",
}  # fmt: skip
PRODUCTION, FULL_SANDBOX, PARTIAL_SANDBOX, DISABLED, ARCHIVED = 1001, 1002, 1003, 1005, 1006


async def test_default_services_have_exact_fields_and_types(api: Api) -> None:
    """Six services with the published fields plus secondary_name; archived a JSON boolean, enabled an integer."""
    status, services = await api.get("/api/v1/services")
    assert status == 200
    assert [s["id"] for s in services] == list(range(1001, 1007))
    for s in services:
        assert set(s) == SERVICE_FIELDS
        for name in ("id", "enabled", "return_code", "num_items", "total_size"):
            assert type(s[name]) is int, name
        assert type(s["archived"]) is bool
        assert s["secondary_name"] is None or isinstance(s["secondary_name"], str)
        assert s["status"] == s["status"].upper()
        assert ISO_MS.match(s["last_backup"])
        assert s["provider"] == "Salesforce" and len(s["org_id"]) == 18
    by_id = {s["id"]: s for s in services}
    assert by_id[DISABLED]["enabled"] == 0 and by_id[FULL_SANDBOX]["secondary_name"] == "uat"
    assert by_id[ARCHIVED]["archived"] is True and by_id[ARCHIVED]["status"] == "ARCHIVED"


async def test_configurable_number_of_services(start_api: StartApi) -> None:
    """services=20 makes 20 services with consecutive ids from 1001."""
    api = await start_api(services=20)
    _, services = await api.get("/api/v1/services")
    assert [s["id"] for s in services] == list(range(1001, 1021))
    assert len({s["org_id"] for s in services}) == 20


async def test_get_service_and_404_shape(api: Api) -> None:
    """A service answers by id; an unknown one answers 404 in the vendor's exact words."""
    status, service = await api.get("/api/v1/services/1003")
    assert status == 200 and service["id"] == 1003
    status, body = await api.get("/api/v1/services/12415")
    assert status == 404
    assert body == {"error": "Not Found", "message": "service_id 12415 not found"}
    assert (await api.get("/api/v1/services/abc"))[0] == 404


async def test_unknown_endpoint_and_method_use_the_error_shape(api: Api) -> None:
    """Unknown paths answer 404 and wrong methods 405, both in the error shape."""
    status, body = await api.get("/api/v1/nothing-here")
    assert status == 404 and body["error"] == "Not Found"
    status, body = await api.call("DELETE", "/api/v1/services")
    assert status == 405 and body["error"] == "Method Not Allowed"


async def test_405_names_the_allowed_methods(api: Api) -> None:
    """A 405 carries the Allow header (RFC 9110), as schemathesis found missing."""
    async with api.http.delete(api.url + "/api/v1/services", headers=api.headers) as resp:
        assert resp.status == 405 and set(resp.headers["Allow"].split(",")) >= {"GET"}


async def test_unreadable_form_is_400_without_validation(start_api: StartApi) -> None:
    """multipart/form-data without a boundary answered 500 (found by schemathesis); now 400."""
    api = await start_api(validate_requests=False)
    status, body = await api.post(
        "/api/v1/services/1001/gdpr/forget", data=b"x", headers={"Content-Type": "multipart/form-data"}
    )
    assert (status, body) == (400, {"error": "Bad Request", "message": "the request body is not a readable form"})


async def test_backups_list_and_last(api: Api) -> None:
    """Backups list oldest first in the published shape, all OK and scheduled; 'last' is the newest one."""
    status, backups = await api.get(f"/api/v1/services/{PRODUCTION}/backups")
    assert status == 200 and len(backups) == 3
    assert [b["id"] for b in backups] == sorted(b["id"] for b in backups)
    assert all(set(b) == BACKUP_FIELDS for b in backups)
    assert {(b["status"], b["trigger_type"]) for b in backups} == {("OK", "scheduled")}
    assert all(ISO_MS.match(b["completed_at"]) and b["num_sections"] == b["num_sections_ok"] == 8 for b in backups)
    _, last = await api.get(f"/api/v1/services/{PRODUCTION}/backups/last")
    assert last == backups[-1]
    _, same = await api.get(f"/api/v1/services/{PRODUCTION}/backups/{last['id']}")
    assert same == last
    status, body = await api.get(f"/api/v1/services/{PRODUCTION}/backups/1")
    assert status == 404 and body["error"] == "Not Found"


async def test_backup_now_adds_a_backup_that_completes(api: Api, clock: FakeClock) -> None:
    """backup_now without a body answers {} and adds a manual backup of every object, running until it completes."""
    async with api.http.post(api.url + f"/api/v1/services/{PRODUCTION}/backup_now", headers=api.headers) as resp:
        assert resp.status == 200 and await resp.json() == {}
    _, backups = await api.get(f"/api/v1/services/{PRODUCTION}/backups")
    assert len(backups) == 4
    _, last = await api.get(f"/api/v1/services/{PRODUCTION}/backups/last")
    assert last["trigger_type"] == "manual" and last["status"] == "IN_PROGRESS"
    assert last["num_sections"] == 8 and last["completed_at"] is None
    clock.advance(api.sim.config.backup_seconds + 1)
    _, last = await api.get(f"/api/v1/services/{PRODUCTION}/backups/last")
    assert last["status"] == "OK" and ISO_MS.match(last["completed_at"])
    _, service = await api.get(f"/api/v1/services/{PRODUCTION}")
    assert service["last_backup"] == last["completed_at"]


async def test_backup_specific_objects_now(api: Api) -> None:
    """backup_specific_objects_now backs up only list_of_objects, form, multipart or JSON alike."""
    path = f"/api/v1/services/{PRODUCTION}/backup_specific_objects_now"
    # multipart/form-data, as a browser's or Node's FormData sends it
    form = aiohttp.FormData([("list_of_objects", "Account"), ("list_of_objects", "Contact")], default_to_multipart=True)
    for body in ({"data": [("list_of_objects", "Account"), ("list_of_objects", "Contact")]},
                 {"data": form}, {"json": {"list_of_objects": ["Account", "Contact"]}}):  # fmt: skip
        assert await api.post(path, **body) == (200, {}), body
        _, sections = await api.get(f"/api/v1/services/{PRODUCTION}/backups/last/objects")
        assert [s["name"] for s in sections] == ["Account", "Contact"]
    status, answer = await api.post(path)
    assert status == 400 and "list_of_objects is required" in answer["message"]


async def test_backup_now_refusals(api: Api) -> None:
    """Unknown objects, archived and disabled services are refused with 400."""
    status, body = await api.post(
        f"/api/v1/services/{PRODUCTION}/backup_specific_objects_now", json={"list_of_objects": ["Nope__c"]}
    )
    assert status == 400 and "Nope__c" in body["message"]
    status, body = await api.post(f"/api/v1/services/{PRODUCTION}/backup_now", data={"list_of_objects": "Account"})
    assert status == 400 and "backup_specific_objects_now" in body["message"]
    assert (await api.post(f"/api/v1/services/{ARCHIVED}/backup_now"))[0] == 400
    assert (await api.post(f"/api/v1/services/{DISABLED}/backup_now"))[0] == 400


SECTION_FIELDS = {
    "id", "name", "status", "message", "num_items", "num_inserted_items", "num_updated_items",
    "num_deleted_items", "num_api_calls", "num_bulk_api_batches", "download_link",
    "download_added_link", "download_changed_link", "download_removed_link",
}  # fmt: skip


async def test_objects_with_download_links_and_csv_files(api: Api) -> None:
    """Objects answer the published flat sections; each absolute link's CSV matches its counts."""
    status, sections = await api.get(f"/api/v1/services/{PRODUCTION}/backups/last/objects")
    assert status == 200 and len(sections) == 8
    assert all(set(s) == SECTION_FIELDS and s["status"] == "ok" for s in sections)
    assert len({s["id"] for s in sections}) == 8
    contact = next(s for s in sections if s["name"] == "Contact")
    counts = {"download_link": "num_items", "download_added_link": "num_inserted_items",
              "download_removed_link": "num_deleted_items", "download_changed_link": "num_updated_items"}  # fmt: skip
    for key, count in counts.items():
        link = contact[key]
        assert link.startswith(api.url + "/api/v1/")
        async with api.http.get(link, headers=api.headers) as resp:
            assert resp.status == 200 and resp.content_type == "text/csv"
            rows = list(csv.DictReader(io.StringIO(await resp.text())))
        assert len(rows) == contact[count]
        assert all(r["Id"].startswith("003") and len(r["Id"]) == 18 for r in rows)
    async with api.http.get(contact["download_link"]) as resp:
        assert resp.status == 401


async def test_export_validates_enums_and_starts_a_job(api: Api, clock: FakeClock) -> None:
    """Export checks export_format, sql_dialect and include_attachments; answers job_id."""
    path = f"/api/v1/services/{PRODUCTION}/backups/last/export"
    bad = [
        {"export_format": "xml"},
        {},
        {"export_format": "sql"},
        {"export_format": "sql", "sql_dialect": "sqlite"},
        {"export_format": "csv", "include_attachments": "maybe"},
        {"export_format": "csv", "objects": "Account,Nope__c"},
    ]
    for body in bad:
        status, answer = await api.post(path, data=body)
        assert status == 400 and answer["error"] == "Bad Request" and answer["message"], body
    status, answer = await api.post(
        path, data={"export_format": "sql", "sql_dialect": "postgresql", "objects": "Account",
                    "include_attachments": "False"}
    )  # fmt: skip
    assert status == 200 and set(answer) == {"job_id"}
    job_path = f"/api/v1/jobs/{answer['job_id']}"
    _, job = await api.get(job_path)
    assert set(job) == {"id", "title", "status", "progress", "results"}
    assert job["progress"] == 0 and job["status"] == "PENDING" and job["results"] == []
    clock.advance(api.sim.config.job_seconds / 2)
    _, job = await api.get(job_path)
    assert job["status"] == "IN_PROGRESS" and 0 < job["progress"] < 100
    clock.advance(api.sim.config.job_seconds)
    _, job = await api.get(job_path)
    assert job["status"] == "COMPLETED" and job["progress"] == 100
    _, last = await api.get(f"/api/v1/services/{PRODUCTION}/backups/last")
    assert job["results"] == [f"backup_{last['id']}_Account.postgresql.sql"]


async def test_export_to_endpoint_and_jobs_list(api: Api) -> None:
    """Export to endpoint needs endpoint_id, answers job_id; jobs list and 404 work."""
    path = f"/api/v1/services/{PRODUCTION}/backups/last/export_to_endpoint"
    status, body = await api.post(path, data={})
    assert status == 400 and "endpoint_id" in body["message"]
    status, answer = await api.post(path, json={"endpoint_id": 4, "objects": ["Contact"]})
    assert status == 200 and set(answer) == {"job_id"}
    _, jobs = await api.get("/api/v1/jobs")
    assert [j["id"] for j in jobs] == [answer["job_id"]]
    status, body = await api.get("/api/v1/jobs/999999")
    assert status == 404 and body["error"] == "Not Found"


SEED_FIELDS = {
    "id", "seed_id", "template", "dest_service_id", "seeding_method", "disable_automations", "status",
    "progress", "created_at", "started_at", "finished_at", "total_insert_records", "insert_success_records",
    "insert_fail_records", "total_delete_records", "delete_success_records", "delete_fail_records",
    "duplicated_records",
}  # fmt: skip


async def test_seeding_templates_and_seed_progress(api: Api, clock: FakeClock) -> None:
    """A seed answers the published shape: STARTED, then IN_PROGRESS with counters rising, then COMPLETED."""
    status, templates = await api.get("/api/v1/seeding/templates")
    assert status == 200 and len(templates) >= 1
    template = templates[0]
    status, seed = await api.post(
        f"/api/v1/seeding/templates/{template['id']}/seed",
        data={"destination": PARTIAL_SANDBOX, "seeding_method": "upsert", "disable_automations": "True"},
    )
    assert status == 200 and set(seed) == SEED_FIELDS
    assert seed["status"] == "STARTED" and seed["insert_success_records"] == 0 and seed["finished_at"] is None
    assert (seed["template"], seed["dest_service_id"], seed["disable_automations"]) == (
        template["id"], PARTIAL_SANDBOX, True
    )  # fmt: skip
    assert seed["seed_id"] != seed["id"]
    seen = []
    for _ in range(4):
        clock.advance(api.sim.config.seed_seconds / 3)
        _, info = await api.get(f"/api/v1/seeding/seed/{seed['seed_id']}")
        seen.append((info["status"], info["insert_success_records"]))
    assert seen[0][0] == "IN_PROGRESS" and seen[-1][0] == "COMPLETED"
    counts = [n for _, n in seen]
    assert counts == sorted(counts) and counts[-1] == template["num_records"] == info["total_insert_records"]
    assert ISO_MS.match(info["finished_at"])
    assert (await api.get(f"/api/v1/seeding/seed/{seed['id']}"))[1] == info, "the run's id finds it too"
    assert (await api.get("/api/v1/seeding/seed/424242"))[0] == 404


@pytest.mark.parametrize(
    ("destination", "method", "words"),
    [
        (FULL_SANDBOX, "clean_and_insert", "full sandbox"),
        (PARTIAL_SANDBOX, "replace_all", "seeding_method"),
        (PRODUCTION, "upsert", "destination"),
        (999, "upsert", "destination"),
        (None, "upsert", "destination"),
    ],
)
async def test_start_seed_refusals(api: Api, destination, method, words) -> None:
    """clean_and_insert into a full sandbox, bad methods and bad destinations answer 400."""
    body = {"seeding_method": method, "disable_automations": False}
    if destination is not None:
        body["destination"] = destination
    status, answer = await api.post("/api/v1/seeding/templates/1/seed", json=body)
    assert status == 400 and words in answer["message"]


async def test_clean_and_insert_allowed_into_partial_sandbox(api: Api) -> None:
    """clean_and_insert into a partial sandbox is accepted (only full sandboxes refuse it) and deletes first."""
    status, seed = await api.post(
        "/api/v1/seeding/templates/2/seed",
        data={"destination": PARTIAL_SANDBOX, "seeding_method": "clean_and_insert", "disable_automations": "false"},
    )
    assert status == 200 and seed["seeding_method"] == "clean_and_insert" and seed["total_delete_records"] > 0


async def test_seed_takes_the_clients_extra_fields(api: Api) -> None:
    """disable_validation_rules, reindex, backup_id and service_id are accepted as clients send them; bad ones refused."""
    _, backups = await api.get(f"/api/v1/services/{PRODUCTION}/backups")
    body = {"destination": PARTIAL_SANDBOX, "seeding_method": "incremental", "disable_automations": "False",
            "disable_validation_rules": "True", "reindex": "false", "backup_id": backups[0]["id"],
            "service_id": PRODUCTION}  # fmt: skip
    status, seed = await api.post("/api/v1/seeding/templates/1/seed", data=body)
    assert status == 200 and seed["status"] == "STARTED"
    status, answer = await api.post("/api/v1/seeding/templates/1/seed", data={**body, "backup_id": "last"})
    assert status == 200
    status, answer = await api.post("/api/v1/seeding/templates/1/seed", data={**body, "backup_id": 4711})
    assert status == 400 and "backup_id 4711 not found" in answer["message"]
    status, answer = await api.post("/api/v1/seeding/templates/1/seed", data={**body, "reindex": "perhaps"})
    assert status == 400 and "reindex must be true or false" in answer["message"]


async def test_automations_and_disabling_them_in_a_seed(api: Api) -> None:
    """Automations answer Object.Name strings by kind; a seed disables them by kind, by name, or a whole kind."""
    status, automations = await api.get(f"/api/v1/services/{PARTIAL_SANDBOX}/automations")
    assert status == 200 and set(automations) == {"ApexTrigger", "ValidationRule"}
    names = [n for group in automations.values() for n in group]
    assert names and all(isinstance(n, str) and re.match(r"^[A-Z][a-z]+\.[A-Za-z_]+$", n) for n in names)
    trigger = automations["ApexTrigger"][0]
    base = {"destination": PARTIAL_SANDBOX, "seeding_method": "incremental", "disable_automations": True}
    for wanted in ({"ApexTrigger": [trigger]}, [trigger], ["ValidationRule"]):
        status, seed = await api.post("/api/v1/seeding/templates/1/seed", json={**base, "automations_to_disable": wanted})
        assert status == 200, (wanted, seed)
    form = {**base, "disable_automations": "True", "automations_to_disable": json.dumps({"ApexTrigger": [trigger]})}
    assert (await api.post("/api/v1/seeding/templates/1/seed", data=form))[0] == 200
    for wanted, words in (([ "NoSuchTrigger"], "NoSuchTrigger"), ({"Flow": ["Account.X"]}, "unknown automation kind Flow")):
        status, body = await api.post("/api/v1/seeding/templates/1/seed", json={**base, "automations_to_disable": wanted})
        assert status == 400 and words in body["message"], body


async def test_anonymize_job_progresses_like_an_export(api: Api, clock: FakeClock) -> None:
    """Anonymize answers job_id; seeding/anonymize/{id} and jobs/{id} show it progress to COMPLETED with results."""
    status, answer = await api.post(
        "/api/v1/seeding/templates/1/anonymize",
        data={"destination_service_id": PARTIAL_SANDBOX, "disable_automations": "False"},
    )
    assert status == 200 and set(answer) == {"job_id"}
    path = f"/api/v1/seeding/anonymize/{answer['job_id']}"
    _, job = await api.get(path)
    assert (job["status"], job["progress"], job["results"]) == ("PENDING", 0, [])
    clock.advance(api.sim.config.job_seconds / 2)
    assert (await api.get(path))[1]["status"] == "IN_PROGRESS"
    clock.advance(api.sim.config.job_seconds)
    _, job = await api.get(path)
    assert job["status"] == "COMPLETED" and job["progress"] == 100
    assert job["results"] and all(isinstance(r, str) for r in job["results"])
    assert (await api.get(f"/api/v1/jobs/{job['id']}"))[1] == job
    _, jobs = await api.get("/api/v1/jobs")
    assert job in jobs
    status, body = await api.post("/api/v1/seeding/templates/1/anonymize", json={"disable_automations": False})
    assert status == 400 and "destination_service_id is required" in body["message"]
    status, body = await api.post("/api/v1/seeding/templates/1/anonymize",
                                  json={"destination_service_id": PRODUCTION, "disable_automations": False})  # fmt: skip
    assert status == 400 and "destination_service_id must differ from the template's source" in body["message"]
    assert (await api.get("/api/v1/seeding/anonymize/424242"))[0] == 404
