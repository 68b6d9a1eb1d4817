"""Typed answers: strict where the daemon relies on a field, tolerant elsewhere."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gdpr_daemon.ownbackup import (
    Backup,
    BackupObject,
    BadAnswer,
    GdprSubmission,
    Job,
    Seed,
    SeedTemplate,
    Service,
)
from gdpr_daemon.ownbackup.models import (
    parse_automations,
    parse_id,
    parse_list,
    parse_object,
    parse_timestamp,
)

SERVICE = {
    "id": 12415,
    "displayed_name": "Acme Production",
    "provider": "Salesforce",
    "org_id": "00D000000000001EAA",
    "status": "ARCHIVED",
    "enabled": 0,
    "archived": True,
    "secondary_name": None,
    "last_backup": "2018-12-12T07:57:51.000Z",
    "num_items": 1200,
    "total_size": 99000,
    "return_code": 0,
    "return_message": "Backup completed successfully",
}


def test_service_parses_vendor_shape() -> None:
    """A service in the vendor's published shape parses: enabled 0/1 and archived true/false become booleans."""
    s = Service.from_json(SERVICE)
    assert s.id == 12415 and s.status == "ARCHIVED" and s.secondary_name is None
    assert Service.from_json({**SERVICE, "secondary_name": "uat", "archived": 0}).secondary_name == "uat"
    assert s.enabled is False and s.archived is True
    assert s.last_backup == datetime(2018, 12, 12, 7, 57, 51, tzinfo=UTC)
    assert s.raw["org_id"] == "00D000000000001EAA"


def test_service_minimal() -> None:
    """Only the id is required; absent or null fields are None."""
    s = Service.from_json({"id": 1, "last_backup": None})
    assert s.displayed_name is None and s.last_backup is None


@pytest.mark.parametrize(
    "obj",
    [
        {},
        {"id": None},
        {"id": "12415"},
        {"id": 1.0},
        {"id": True},
        {"id": 1, "enabled": 2},
        {"id": 1, "enabled": "yes"},
        {"id": 1, "num_items": "many"},
        {"id": 1, "status": 3},
        {"id": 1, "last_backup": 5},
        [],
        "service",
        None,
    ],
)
def test_service_malformed_is_bad_answer(obj: object) -> None:
    """A service without an integer id, or with a field of the wrong type, is a BadAnswer."""
    with pytest.raises(BadAnswer, match="OwnBackup answered get_service"):
        Service.from_json(obj, "get_service")


def test_bad_answer_does_not_echo_values() -> None:
    """BadAnswer describes the kind of a wrong value, never the value (personal data)."""
    with pytest.raises(BadAnswer) as info:
        Service.from_json({"id": 1, "displayed_name": ["Jane Doe"]})
    assert "Jane" not in str(info.value)
    assert "a list" in str(info.value)


def test_raw_is_read_only_and_not_compared() -> None:
    """raw is a read-only view and does not take part in equality."""
    a = Service.from_json({"id": 1, "x": 1})
    b = Service.from_json({"id": 1, "x": 2})
    assert a == b
    with pytest.raises(TypeError):
        a.raw["x"] = 3  # type: ignore[index]


def test_unreadable_timestamp_becomes_none() -> None:
    """A timestamp string no parser understands is None (raw keeps it), not a failure."""
    assert Service.from_json({"id": 1, "last_backup": "yesterday"}).last_backup is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2018-12-12T07:57:51.000Z", datetime(2018, 12, 12, 7, 57, 51, tzinfo=UTC)),
        ("2018-12-12T08:57:51+01:00", datetime(2018, 12, 12, 7, 57, 51, tzinfo=UTC)),
        ("2018-12-12T07:57:51", datetime(2018, 12, 12, 7, 57, 51, tzinfo=UTC)),
        ("Wed, 12 Dec 2018 07:57:51 GMT", datetime(2018, 12, 12, 7, 57, 51, tzinfo=UTC)),
        ("nonsense", None),
        ("", None),
        (None, None),
        (17, None),
    ],
)
def test_parse_timestamp(text: object, expected: datetime | None) -> None:
    """ISO 8601 (with Z or offset) and RFC 1123 both give aware UTC datetimes."""
    assert parse_timestamp(text) == expected


def test_backup() -> None:
    """A backup parses id, status, trigger, completed_at and its counters; a running one has no completed_at."""
    b = Backup.from_json(
        {"id": 420519, "status": "OK", "trigger_type": "scheduled", "completed_at": "2018-04-09T10:39:02.000Z",
         "num_sections": 23, "num_sections_error": 9, "num_inserted_items": 6, "num_deleted_items": 5}
    )  # fmt: skip
    assert (b.id, b.status, b.trigger_type) == (420519, "OK", "scheduled")
    assert b.completed_at == datetime(2018, 4, 9, 10, 39, 2, tzinfo=UTC)
    assert (b.num_sections, b.num_sections_error, b.num_inserted_items, b.num_deleted_items) == (23, 9, 6, 5)
    running = Backup.from_json({"id": 8, "status": "IN_PROGRESS", "completed_at": None})
    assert running.completed_at is None and running.num_sections is None
    with pytest.raises(BadAnswer, match="'num_sections' is a string"):
        Backup.from_json({"id": 8, "num_sections": "23"})


def test_backup_object_reads_the_flat_section() -> None:
    """A section in the published flat shape keeps its counters and its four links by kind."""
    o = BackupObject.from_json(
        {"id": 82193842, "name": "Contact", "status": "ok", "message": "", "num_items": 12,
         "num_inserted_items": 6, "num_updated_items": 1, "num_deleted_items": 5, "num_api_calls": 21,
         "num_bulk_api_batches": 100, "download_link": "https://h/f", "download_added_link": "https://h/a",
         "download_changed_link": "https://h/c", "download_removed_link": "https://h/r", "later_field": [1]}
    )  # fmt: skip
    assert (o.id, o.name, o.status, o.num_items, o.num_deleted_items) == (82193842, "Contact", "ok", 12, 5)
    assert dict(o.links) == {"full": "https://h/f", "added": "https://h/a", "changed": "https://h/c",
                             "removed": "https://h/r"}  # fmt: skip
    assert o.raw["later_field"] == [1]


def test_backup_object_with_some_links() -> None:
    """A section with only some links (as the published example) lists only those."""
    o = BackupObject.from_json({"name": "summary", "download_removed_link": "https://h/r"})
    assert dict(o.links) == {"removed": "https://h/r"} and o.download_link is None


def test_backup_object_without_name() -> None:
    """An object section without a name is a BadAnswer."""
    with pytest.raises(BadAnswer, match="without a name"):
        BackupObject.from_json({"added_link": "/d/1"})


def test_job() -> None:
    """A job parses id, title, status, progress and its results, a list of strings (null: none yet)."""
    j = Job.from_json({"id": 3, "title": "Export", "status": "COMPLETED", "progress": 100,
                       "results": ["a.csv", "b.csv"]})  # fmt: skip
    assert (j.id, j.progress, j.results) == (3, 100, ("a.csv", "b.csv"))
    assert Job.from_json({"id": 4, "results": None}).results == ()
    with pytest.raises(BadAnswer, match="'results' is an object, not a list of strings"):
        Job.from_json({"id": 5, "results": {"files": ["a.csv"]}})


def test_job_progress_must_be_number() -> None:
    """A job whose progress is not a number is a BadAnswer."""
    with pytest.raises(BadAnswer):
        Job.from_json({"id": 3, "progress": "half"})


def test_seed_and_template() -> None:
    """Seeds read the published shape (id and seed_id differ); one of them alone serves as both; templates take name."""
    seed = Seed.from_json(
        {"id": 1, "seed_id": 731169459, "template": 1, "dest_service_id": 4, "seeding_method": "add",
         "disable_automations": False, "status": "COMPLETED", "progress": 100,
         "finished_at": "2020-05-11T11:19:53.000Z", "insert_success_records": 5, "total_insert_records": 5}
    )  # fmt: skip
    assert (seed.id, seed.seed_id, seed.template, seed.dest_service_id) == (1, 731169459, 1, 4)
    assert seed.disable_automations is False and seed.insert_success_records == 5
    assert seed.finished_at == datetime(2020, 5, 11, 11, 19, 53, tzinfo=UTC)
    assert (Seed.from_json({"id": 4, "status": "STARTED"}).seed_id, Seed.from_json({"seed_id": 5}).id) == (4, 5)
    assert SeedTemplate.from_json({"id": 9, "name": "Sales"}).name == "Sales"
    with pytest.raises(BadAnswer):
        Seed.from_json({"status": "STARTED"})


@pytest.mark.parametrize("obj", [{"id": 17}, {"job_id": 17}, {"id": 17, "job_id": 3}])
def test_gdpr_submission_accepts_id_or_job_id(obj: dict[str, int]) -> None:
    """The GDPR answer is {"id": N} in the published API and {"job_id": N} in some clients."""
    assert GdprSubmission.from_json(obj).id == 17


@pytest.mark.parametrize(
    "obj", [{}, {"id": "17"}, {"job_id": None}, {"id": True}, {"status": "ok"}, [17], 17, None]
)
def test_gdpr_submission_without_integer_id(obj: object) -> None:
    """A GDPR answer without an integer id or job_id is a BadAnswer (outcome unknown)."""
    with pytest.raises(BadAnswer, match="gdpr_forget"):
        GdprSubmission.from_json(obj, "gdpr_forget")


def test_parse_id_names_the_keys() -> None:
    """The BadAnswer of a missing id names the keys that were looked for."""
    with pytest.raises(BadAnswer, match="without an integer 'job_id' or 'id'"):
        parse_id({}, "export", ("job_id", "id"))


def test_parse_list_and_object() -> None:
    """Lists and objects are checked as such."""
    assert parse_list([1], "events", "events") == [1]
    assert parse_object({}, "backup_now") == {}
    with pytest.raises(BadAnswer, match="an object where a list of events was expected"):
        parse_list({"events": []}, "events", "events")
    with pytest.raises(BadAnswer):
        parse_object([], "backup_now")


def test_automations() -> None:
    """Automations map each kind (any kind, more may come) to a list of Object.Name strings."""
    answer = {"ApexTrigger": ["Account.BeforeInsert"], "ValidationRule": ["Account.CountryValidation"], "Flow": []}
    assert parse_automations(answer) == answer
    assert parse_automations({**answer, "generated_at": "2026-01-01", "meta": {"v": 2}}) == answer
    for bad in ({"ApexTrigger": "none"}, {"ValidationRule": [{"id": "x"}]}):
        with pytest.raises(BadAnswer, match="not a list of strings"):
            parse_automations(bad)


def test_models_are_frozen() -> None:
    """Typed answers are frozen."""
    with pytest.raises(AttributeError):
        GdprSubmission.from_json({"id": 1}).id = 2  # type: ignore[misc]
