"""Every client method against the real simulator over loopback, on the happy path."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from gdpr_daemon.ownbackup import (
    AuthenticationError,
    Backup,
    BackupObject,
    ClientError,
    GdprSubmission,
    Job,
    NotFound,
    OwnBackupClient,
    Seed,
    SeedTemplate,
    Service,
)
from gdpr_daemon.simulator import Simulator

from .conftest import Harness, Sleeps, sim_config


async def test_list_services(client: OwnBackupClient) -> None:
    """list_services answers every service as a typed Service, ids from 1001."""
    services = await client.list_services()
    assert [s.id for s in services] == [1001, 1002, 1003, 1004, 1005, 1006]
    assert all(isinstance(s, Service) for s in services)
    archived = services[5]
    assert archived.archived is True and archived.status == "ARCHIVED"
    assert services[0].last_backup is not None and services[0].last_backup.tzinfo is not None


async def test_get_service(client: OwnBackupClient) -> None:
    """get_service answers one service."""
    service = await client.get_service(1002)
    assert service.id == 1002 and service.provider == "Salesforce"


async def test_get_unknown_service_is_not_found_with_api_message(client: OwnBackupClient) -> None:
    """404 becomes NotFound carrying the API's message, in one sentence."""
    with pytest.raises(NotFound) as info:
        await client.get_service(12415)
    error = info.value
    assert error.status == 404 and error.endpoint == "get_service"
    assert error.message == "service_id 12415 not found"
    assert str(error) == (
        "OwnBackup answered 404 Not Found to get_service: service_id 12415 not found"
    )


async def test_gdpr_forget(client: OwnBackupClient, sim: Simulator) -> None:
    """gdpr_forget sends record, table and comment and returns the API's request id."""
    receipt = await client.gdpr_forget(
        1001, record_id="003001000000042AAA", table_name="Contact", comment="case 17"
    )
    assert isinstance(receipt, GdprSubmission)
    [call] = sim.state.gdpr_calls
    assert receipt.id == call.id
    assert (call.kind, call.service_id, call.record_id, call.table_name, call.comment) == (
        "forget", 1001, "003001000000042AAA", "Contact", "case 17"
    )  # fmt: skip


async def test_gdpr_forget_unknown_service(client: OwnBackupClient) -> None:
    """A forget for a service the account lacks is NotFound with the API message."""
    with pytest.raises(NotFound, match="to gdpr_forget: service_id 12415 not found"):
        await client.gdpr_forget(12415, record_id="003x", table_name="Contact")


async def test_gdpr_rectify(client: OwnBackupClient, sim: Simulator) -> None:
    """gdpr_rectify sends field and value; the simulator received exactly that value."""
    receipt = await client.gdpr_rectify(
        1003, record_id="003003000000007AAA", table_name="Contact", field="Email",
        value="new.address@example.org",
    )  # fmt: skip
    [call] = sim.state.gdpr_calls
    assert receipt.id == call.id and call.kind == "rectify" and call.field == "Email"
    assert call.value_sha256 == hashlib.sha256(b"new.address@example.org").hexdigest()
    assert call.comment is None


async def test_gdpr_refusal_is_client_error_with_message(client: OwnBackupClient) -> None:
    """A 400 refusal becomes ClientError carrying the API's message."""
    with pytest.raises(ClientError) as info:
        await client.gdpr_forget(1001, record_id="003x", table_name="Not an API name")
    assert info.value.status == 400
    assert "is not a valid Salesforce API name" in (info.value.message or "")
    assert "to gdpr_forget:" in str(info.value)


async def test_gdpr_answer_as_job_id(harness: Harness) -> None:
    """A GDPR answer of {"job_id": N} is accepted like {"id": N}."""
    sim = await harness.sim(sim_config(gdpr_answer_key="job_id"))
    client = await harness.client(sim.url or "")
    receipt = await client.gdpr_forget(1001, record_id="003x", table_name="Contact")
    assert receipt.id == sim.state.gdpr_calls[0].id


async def test_backups(client: OwnBackupClient) -> None:
    """list_backups and get_backup (by id and "last") answer typed backups."""
    backups = await client.list_backups(1001)
    assert backups and all(isinstance(b, Backup) for b in backups)
    last = await client.get_backup(1001, "last")
    assert last.id == backups[-1].id
    assert (await client.get_backup(1001, backups[0].id)).id == backups[0].id
    assert last.status == "OK" and last.trigger_type == "scheduled" and last.completed_at is not None
    assert last.num_sections == last.num_sections_ok == 8 and last.num_inserted_items is not None


async def test_backup_now_and_specific_objects(client: OwnBackupClient) -> None:
    """backup_now backs up everything, backup_specific_objects_now (or backup_now with objects) only those."""
    before = await client.list_backups(1002)
    assert await client.backup_now(1002) is None
    assert await client.backup_specific_objects_now(1002, ["Account", "Contact"]) is None
    assert await client.backup_now(1002, objects=["Lead"]) is None
    after = await client.list_backups(1002)
    assert len(after) == len(before) + 3
    assert [(b.trigger_type, b.num_sections) for b in after[-3:]] == [("manual", 8), ("manual", 2), ("manual", 1)]
    with pytest.raises(ValueError, match="at least one object"):
        await client.backup_specific_objects_now(1002, [])


async def test_backup_now_of_disabled_service_is_refused(client: OwnBackupClient) -> None:
    """The API's refusal to back up a disabled service is a ClientError with its message."""
    with pytest.raises(ClientError, match="disabled"):
        await client.backup_now(1005)


async def test_backup_objects_and_download(client: OwnBackupClient) -> None:
    """backup_objects lists sections with links; download fetches one with the session."""
    objects = await client.backup_objects(1001, "last")
    assert objects and all(isinstance(o, BackupObject) for o in objects)
    contact = next(o for o in objects if o.name == "Contact")
    body = await client.download(contact.links["full"])
    assert isinstance(body, bytes)
    assert body.splitlines()[0].startswith(b"Id,")


async def test_download_relative_link(client: OwnBackupClient) -> None:
    """A link relative to the base URL is fetched from the API's origin."""
    last = await client.get_backup(1001)
    body = await client.download(
        f"/api/v1/services/1001/backups/{last.id}/objects/Account/full.csv"
    )
    assert body.startswith(b"Id,")


async def test_download_elsewhere_gets_no_credential(
    harness: Harness, client: OwnBackupClient
) -> None:
    """A link to another origin is fetched without our session (it is not sent away)."""
    other = await harness.sim()
    assert other.url is not None
    with pytest.raises(AuthenticationError):
        await client.download(
            f"{other.url}/api/v1/services/1001/backups/last/objects/Account/full.csv"
        )
    assert other.stats.sent_401 == 1 and other.stats.logins == 0


async def test_export_and_jobs(client: OwnBackupClient) -> None:
    """export (CSV and SQL) answers a job id that get_job and list_jobs know."""
    job_id = await client.export(1001, "last", "csv", include_attachments=True, objects=["Contact"])
    sql_job = await client.export(1001, "last", "sql", sql_dialect="postgresql")
    job = await client.get_job(job_id)
    assert isinstance(job, Job) and job.id == job_id and job.status == "COMPLETED"
    last = await client.get_backup(1001)
    assert job.results == (f"backup_{last.id}_Contact.csv", f"backup_{last.id}_attachments.zip")
    assert all(r.endswith(".postgresql.sql") for r in (await client.get_job(sql_job)).results)
    assert {j.id for j in await client.list_jobs()} >= {job_id, sql_job}


async def test_export_to_endpoint(client: OwnBackupClient) -> None:
    """export_to_endpoint answers the job id of the export."""
    job_id = await client.export_to_endpoint(1001, "last", 7, objects=["Account", "Lead"])
    job = await client.get_job(job_id)
    assert [r.split(":")[0] for r in job.results] == ["Account", "Lead"]
    assert all(r.endswith("exported to endpoint 7") for r in job.results)


async def test_unknown_job_is_not_found(client: OwnBackupClient) -> None:
    """get_job of an unknown id is NotFound."""
    with pytest.raises(NotFound, match="job_id 99999 not found"):
        await client.get_job(99999)


async def test_seeding(client: OwnBackupClient) -> None:
    """seeding_templates, start_seed and seed_info work end to end."""
    templates = await client.seeding_templates()
    assert templates and all(isinstance(t, SeedTemplate) for t in templates)
    automations = await client.automations(1003)
    trigger = automations["ApexTrigger"][0]
    seed = await client.start_seed(
        templates[0].id, destination=1003, seeding_method="upsert",
        disable_automations=True, automations_to_disable={"ApexTrigger": [trigger]},
        disable_validation_rules=True, reindex=False, backup_id="last", service_id=1001,
    )  # fmt: skip
    assert isinstance(seed, Seed) and seed.seed_id is not None and seed.seed_id != seed.id
    assert (seed.template, seed.dest_service_id, seed.disable_automations) == (templates[0].id, 1003, True)
    info = await client.seed_info(seed.seed_id)
    assert info.id == seed.id and info.status == "COMPLETED" and info.finished_at is not None
    assert info.insert_success_records == info.total_insert_records == templates[0].raw["num_records"]
    by_name = await client.start_seed(
        templates[0].id, destination=1003, seeding_method="upsert", automations_to_disable=[trigger]
    )
    assert by_name.seed_id == seed.seed_id + 1


async def test_anonymize(client: OwnBackupClient) -> None:
    """anonymize answers a job id that anonymize_info (and get_job) follow to COMPLETED with results."""
    template = (await client.seeding_templates())[0]
    job_id = await client.anonymize(template.id, destination_service_id=1003, disable_automations=True,
                                    automations_to_disable=["ApexTrigger"], backup_id="last")  # fmt: skip
    job = await client.anonymize_info(job_id)
    assert job.id == job_id and job.status == "COMPLETED" and job.results
    assert (await client.get_job(job_id)).results == job.results
    with pytest.raises(NotFound, match="anonymize_id 99999 not found"):
        await client.anonymize_info(99999)


async def test_start_seed_refusal(client: OwnBackupClient) -> None:
    """Seeding a template's own source is refused by the API: a ClientError with its reason."""
    template = (await client.seeding_templates())[0]
    with pytest.raises(ClientError, match="destination must differ"):
        await client.start_seed(
            template.id, destination=template.raw["source_service_id"], seeding_method="incremental"
        )


async def test_automations(client: OwnBackupClient) -> None:
    """automations answers lists of Object.Name strings by kind."""
    automations = await client.automations(1001)
    assert set(automations) == {"ApexTrigger", "ValidationRule"}
    assert all(isinstance(n, str) and "." in n for v in automations.values() for n in v)


async def test_events_pages_with_from(harness: Harness) -> None:
    """events answers one page; from excludes that event itself."""
    sim = await harness.sim(sim_config(synthetic_events=30))
    client = await harness.client(sim.url or "")
    page = await client.events()
    ids = [e["event_id"] for e in page]  # type: ignore[index]
    assert ids[:3] == [1, 2, 3] and ids == sorted(ids)
    after = await client.events(from_id=10)
    assert after[0]["event_id"] == 11  # type: ignore[index]


async def test_events_keep_malformed_items(harness: Harness) -> None:
    """A malformed event does not fail the page: items come back as received."""
    sim = await harness.sim(sim_config(synthetic_events=5))
    sim.state.inject_malformed_event(2, "not_object")
    sim.state.inject_malformed_event(3, "missing_event_id")
    client = await harness.client(sim.url or "")
    page = await client.events()
    assert isinstance(page[1], str)
    assert isinstance(page[2], dict) and "event_id" not in page[2]
    assert page[0]["event_id"] == 1  # type: ignore[index]


async def test_logout_on_exit(harness: Harness) -> None:
    """Leaving the client's context logs out: the simulator has no session left."""
    sim = await harness.sim()
    async with OwnBackupClient(harness.config(sim.url or ""), sleep=Sleeps()) as client:
        await client.list_services()
        assert len(sim.state.sessions) == 1
    assert sim.state.sessions == {}
    assert sim.stats.calls["POST /api/auth/v1/logout"] == 1


async def test_concurrent_first_calls_share_one_login(
    client: OwnBackupClient, sim: Simulator
) -> None:
    """Twenty calls on a fresh client log in once, not twenty times."""
    await asyncio.gather(*(client.get_service(1001) for _ in range(20)))
    assert sim.stats.logins == 1 and client.logins == 1
