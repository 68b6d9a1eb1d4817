"""`services` and `backups SERVICE_ID` show the fields of the API's published answers."""

from __future__ import annotations

import csv
import io
import json

from gdpr_daemon.simulator import Simulator
from tests.dpo.support import cli


async def test_backups_show_completion_sections_and_counts(sim: Simulator, db_url: str, sim_url: str) -> None:
    """`backups` lists newest first with status, trigger, completed_at, section counts and item counts; a running one says so."""
    running_backup = sim.state.backup_now(1001, ["Account", "Contact"])
    running_backup.duration_s = 86_400.0  # still running while the test looks
    code, out, err = await cli(db_url, sim_url, "backups", "1001")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "TRIGGER", "COMPLETED", "SECTIONS", "OK/INFO/WARN/ERR",
                                "INSERTED", "UPDATED", "DELETED"]  # fmt: skip
    running, newest = lines[2].split(), lines[3].split()
    assert running[1:4] == ["IN_PROGRESS", "manual", "running"] and running[4:7] == ["0/0/0/0", "of", "2"]
    assert newest[1:3] == ["OK", "scheduled"] and newest[5:8] == ["8/0/0/0", "of", "8"]

    code, out, err = await cli(db_url, sim_url, "backups", "1001", "--format", "json")
    listed = json.loads(out)
    assert code == 0 and listed[0]["completed_at"] is None and listed[1]["status"] == "OK"
    assert {"num_sections", "num_sections_error", "num_inserted_items", "num_updated_items", "num_deleted_items",
            "num_api_calls", "num_bulk_api_batches"} <= set(listed[1])  # fmt: skip
    assert [b["id"] for b in listed] == sorted((b["id"] for b in listed), reverse=True)


async def test_services_json_and_csv_carry_every_published_field(sim: Simulator, db_url: str, sim_url: str) -> None:
    """`services --format json/csv` adds secondary_name, org id, sizes and the last backup's return code to the table's columns."""
    code, out, err = await cli(db_url, sim_url, "services", "--format", "csv")
    assert code == 0, err
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(out))}
    assert rows["1002"]["secondary_name"] == "uat" and rows["1001"]["secondary_name"] == ""
    assert rows["1004"]["return_code"] == "1" and rows["1006"]["archived"] == "True"
    code, out, _ = await cli(db_url, sim_url, "services", "--format", "json")
    assert json.loads(out)[1]["secondary_name"] == "uat"
