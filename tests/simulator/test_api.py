"""Services, backups, downloads, exports, jobs, seeding and automations over real HTTP."""

from __future__ import annotations

import csv
import io
import re

import pytest

from .conftest import StartApi
from .support import Api, FakeClock

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SERVICE_FIELDS = {
    "id", "displayed_name", "provider", "org_id", "status", "enabled", "archived",
    "last_backup", "num_items", "total_size", "return_code", "return_message",
}  # fmt: skip
PRODUCTION, FULL_SANDBOX, PARTIAL_SANDBOX, DISABLED, ARCHIVED = 1001, 1002, 1003, 1005, 1006


async def test_default_services_have_exact_fields_and_types(api: Api) -> None:
    """Six services with exactly the vendor's fields; integers, upper-case status, ISO times."""
    status, services = await api.get("/api/v1/services")
    assert status == 200
    assert [s["id"] for s in services] == list(range(1001, 1007))
    for s in services:
        assert set(s) == SERVICE_FIELDS
        for name in ("id", "enabled", "archived", "return_code", "num_items", "total_size"):
            assert type(s[name]) is int, name
        assert s["status"] == s["status"].upper()
        assert ISO_MS.match(s["last_backup"])
        assert s["provider"] == "Salesforce" and len(s["org_id"]) == 18
    by_id = {s["id"]: s for s in services}
    assert by_id[DISABLED]["enabled"] == 0
    assert by_id[ARCHIVED]["archived"] == 1 and by_id[ARCHIVED]["status"] == "ARCHIVED"


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
    """Backups list oldest first, all completed; 'last' is the newest one."""
    status, backups = await api.get(f"/api/v1/services/{PRODUCTION}/backups")
    assert status == 200 and len(backups) == 3
    assert [b["id"] for b in backups] == sorted(b["id"] for b in backups)
    assert {b["status"] for b in backups} == {"COMPLETED"}
    _, last = await api.get(f"/api/v1/services/{PRODUCTION}/backups/last")
    assert last == backups[-1]
    _, same = await api.get(f"/api/v1/services/{PRODUCTION}/backups/{last['id']}")
    assert same == last
    status, body = await api.get(f"/api/v1/services/{PRODUCTION}/backups/1")
    assert status == 404 and body["error"] == "Not Found"


async def test_backup_now_adds_a_backup_that_completes(api: Api, clock: FakeClock) -> None:
    """Back up now answers {} and adds a MANUAL backup, in progress until it completes."""
    status, answer = await api.post(
        f"/api/v1/services/{PRODUCTION}/backup_now", data={"list_of_objects": "Account,Contact"}
    )
    assert status == 200 and answer == {}
    _, backups = await api.get(f"/api/v1/services/{PRODUCTION}/backups")
    assert len(backups) == 4
    _, last = await api.get(f"/api/v1/services/{PRODUCTION}/backups/last")
    assert last["trigger_type"] == "MANUAL" and last["status"] == "IN_PROGRESS"
    assert last["num_objects"] == 2 and last["end_time"] is None
    clock.advance(api.sim.config.backup_seconds + 1)
    _, last = await api.get(f"/api/v1/services/{PRODUCTION}/backups/last")
    assert last["status"] == "COMPLETED" and ISO_MS.match(last["end_time"])
    _, service = await api.get(f"/api/v1/services/{PRODUCTION}")
    assert service["last_backup"] == last["end_time"]


async def test_backup_now_refusals(api: Api) -> None:
    """Unknown objects, archived and disabled services are refused with 400."""
    status, body = await api.post(
        f"/api/v1/services/{PRODUCTION}/backup_now", json={"list_of_objects": ["Nope__c"]}
    )
    assert status == 400 and "Nope__c" in body["message"]
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
        path, data={"export_format": "sql", "sql_dialect": "postgresql", "objects": "Account"}
    )
    assert status == 200 and set(answer) == {"job_id"}
    job_path = f"/api/v1/jobs/{answer['job_id']}"
    _, job = await api.get(job_path)
    assert set(job) == {"id", "title", "status", "progress", "results"}
    assert job["progress"] == 0 and job["status"] == "PENDING" and job["results"] is None
    clock.advance(api.sim.config.job_seconds / 2)
    _, job = await api.get(job_path)
    assert job["status"] == "IN_PROGRESS" and 0 < job["progress"] < 100
    clock.advance(api.sim.config.job_seconds)
    _, job = await api.get(job_path)
    assert job["status"] == "COMPLETED" and job["progress"] == 100
    assert job["results"]["sql_dialect"] == "postgresql" and job["results"]["objects"] == [
        "Account"
    ]


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


async def test_seeding_templates_and_seed_progress(api: Api, clock: FakeClock) -> None:
    """A seed starts STARTED, moves IN_PROGRESS with counters rising, ends COMPLETED."""
    status, templates = await api.get("/api/v1/seeding/templates")
    assert status == 200 and len(templates) >= 1
    template = templates[0]
    status, seed = await api.post(
        f"/api/v1/seeding/templates/{template['id']}/seed",
        data={"destination": PARTIAL_SANDBOX, "seeding_method": "upsert",
              "disable_automations": "true"},
    )  # fmt: skip
    assert status == 200 and seed["status"] == "STARTED" and seed["records_processed"] == 0
    seen = []
    for _ in range(4):
        clock.advance(api.sim.config.seed_seconds / 3)
        _, info = await api.get(f"/api/v1/seeding/seed/{seed['id']}")
        seen.append((info["status"], info["records_processed"]))
    assert seen[0][0] == "IN_PROGRESS" and seen[-1][0] == "COMPLETED"
    counts = [n for _, n in seen]
    assert counts == sorted(counts) and counts[-1] == template["num_records"]
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
    body = {"seeding_method": method}
    if destination is not None:
        body["destination"] = destination
    status, answer = await api.post("/api/v1/seeding/templates/1/seed", json=body)
    assert status == 400 and words in answer["message"]


async def test_clean_and_insert_allowed_into_partial_sandbox(api: Api) -> None:
    """clean_and_insert into a partial sandbox is accepted (only full sandboxes refuse it)."""
    status, seed = await api.post(
        "/api/v1/seeding/templates/2/seed",
        data={"destination": PARTIAL_SANDBOX, "seeding_method": "clean_and_insert"},
    )
    assert status == 200 and seed["seeding_method"] == "clean_and_insert"


async def test_automations_and_disabling_them_in_a_seed(api: Api) -> None:
    """Automations answer {ApexTrigger, ValidationRule}; a seed may name them to disable."""
    status, automations = await api.get(f"/api/v1/services/{PARTIAL_SANDBOX}/automations")
    assert status == 200 and set(automations) == {"ApexTrigger", "ValidationRule"}
    names = [a["name"] for group in automations.values() for a in group]
    assert names
    status, seed = await api.post(
        "/api/v1/seeding/templates/1/seed",
        json={"destination": PARTIAL_SANDBOX, "seeding_method": "incremental",
              "disable_automations": True, "automations_to_disable": names[:1]},
    )  # fmt: skip
    assert status == 200 and seed["automations_to_disable"] == names[:1]
    status, body = await api.post(
        "/api/v1/seeding/templates/1/seed",
        json={"destination": PARTIAL_SANDBOX, "seeding_method": "upsert",
              "automations_to_disable": ["NoSuchTrigger"]},
    )  # fmt: skip
    assert status == 400 and "NoSuchTrigger" in body["message"]
