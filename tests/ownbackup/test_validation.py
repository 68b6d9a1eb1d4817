"""Arguments are refused before any HTTP call, with a sentence naming what is wrong."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gdpr_daemon.ownbackup import OwnBackupClient
from gdpr_daemon.simulator import Simulator

BAD_CALLS: dict[str, tuple[Callable[[OwnBackupClient], Awaitable[Any]], str]] = {
    "export_format": (
        lambda c: c.export(1001, "last", "xml"),
        "export_format must be one of csv, sql, not 'xml'",
    ),
    "export_format_case": (lambda c: c.export(1001, "last", "CSV"), "export_format must be one of"),
    "sql_dialect": (
        lambda c: c.export(1001, "last", "sql", sql_dialect="sqlite"),
        "sql_dialect must be one of mysql, oracle, postgresql, mssql, not 'sqlite'",
    ),
    "sql_dialect_with_csv": (
        lambda c: c.export(1001, "last", "csv", sql_dialect="mysql"),
        'sql_dialect applies only to export_format="sql"',
    ),
    "seeding_method": (
        lambda c: c.start_seed(1, destination=1003, seeding_method="merge"),
        "seeding_method must be one of clean_and_insert, incremental, upsert, not 'merge'",
    ),
    "seed_destination": (
        lambda c: c.start_seed(1, destination=" ", seeding_method="upsert"),
        "destination must not be empty",
    ),
    "backup_id": (
        lambda c: c.get_backup(1001, "latest"),
        'backup_id must be a whole number or "last"',
    ),
    "service_id_str": (lambda c: c.get_service("1001"), "service_id must be a whole number"),  # type: ignore[arg-type]
    "service_id_bool": (lambda c: c.get_service(True), "service_id must be a whole number"),
    "service_id_negative": (lambda c: c.list_backups(-1), "service_id must be a whole number"),
    "record_id_blank": (
        lambda c: c.gdpr_forget(1001, record_id="  ", table_name="Contact"),
        "record_id must not be empty",
    ),
    "table_name_missing": (
        lambda c: c.gdpr_forget(1001, record_id="003x", table_name=None),  # type: ignore[arg-type]
        "table_name must be a string",
    ),
    "rectify_field_blank": (
        lambda c: c.gdpr_rectify(1001, record_id="003x", table_name="Contact", field="", value="v"),
        "field must not be empty",
    ),
    "rectify_value_none": (
        lambda c: c.gdpr_rectify(
            1001,
            record_id="003x",
            table_name="Contact",
            field="Email",
            value=None,  # type: ignore[arg-type]
        ),
        "value must be a string",
    ),
    "objects_string": (
        lambda c: c.backup_now(1001, objects="Account"),  # type: ignore[arg-type]
        "objects must be a list of non-empty names",
    ),
    "events_from": (lambda c: c.events(from_id=-3), "from_id must be a whole number"),
    "endpoint_id": (
        lambda c: c.export_to_endpoint(1001, "last", "7"),  # type: ignore[arg-type]
        "endpoint_id must be a whole number",
    ),
    "download_empty": (lambda c: c.download(""), "download needs a download link"),
    "download_plain_http_elsewhere": (
        lambda c: c.download("http://files.example.com/x.csv"),
        "plain http://",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
async def test_refused_before_any_call(case: str, client: OwnBackupClient, sim: Simulator) -> None:
    """A bad argument is a ValueError with a clear sentence, and nothing reaches the API."""
    call, sentence = BAD_CALLS[case]
    with pytest.raises(ValueError) as info:
        await call(client)
    assert sentence in str(info.value)
    assert sum(sim.stats.calls.values()) == 0  # not even a login


async def test_value_is_never_echoed(client: OwnBackupClient) -> None:
    """A refused record id or rectify value is not repeated in the error (personal data)."""
    with pytest.raises(ValueError) as info:
        await client.gdpr_rectify(
            1001, record_id="PII-VALUE-9", table_name="Contact", field=" ", value="PII-VALUE-10"
        )
    assert "PII-VALUE" not in str(info.value)


async def test_empty_rectify_value_and_comment_are_allowed(
    client: OwnBackupClient, sim: Simulator
) -> None:
    """An empty rectify value (clearing a field) and an empty comment are valid."""
    await client.gdpr_rectify(
        1001, record_id="003x", table_name="Contact", field="Phone", value="", comment=""
    )
    assert sim.state.gdpr_calls[0].field == "Phone"
