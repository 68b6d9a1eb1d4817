"""The simulator's backups as GDPR calls change them: which CSVs lose a record or carry a new value,
and the `simulate` flags that set it up."""

from __future__ import annotations

import csv
import io

import pytest

from gdpr_daemon.simulator.account import Backup
from gdpr_daemon.simulator.cli import add_arguments, build
from gdpr_daemon.simulator.csvdata import Erasures, backup_csv, record_id, record_number

SID = 1001


def backup(started_at: float, total: int = 30) -> Backup:
    counts = {"total_items": total, "added_items": 3, "removed_items": 2, "changed_items": 4}
    return Backup(58_100 + int(started_at), SID, started_at, 100.0, "scheduled", {"Contact": counts})


def rows(b: Backup, erasures: Erasures, now: float) -> dict[str, dict[str, str]]:
    text = backup_csv(SID, b, "Contact", "full", erasures.for_csv(b, "Contact", now))
    return {r["Id"]: r for r in csv.DictReader(io.StringIO(text))}


def test_forget_leaves_backups_started_after_it_without_the_record() -> None:
    """A backup started after the forget lacks the record; one started before keeps it, also while running."""
    erasures = Erasures(old_backups_after_s=None)
    rid = record_id("Contact", SID, 5)
    erasures.add(1_000.0, SID, "Contact", rid)
    assert rid in rows(backup(950.0), erasures, now=10**9), "started before: kept for ever without a delay"
    after = rows(backup(1_001.0), erasures, now=1_200.0)
    assert rid not in after and len(after) == 29


def test_old_backups_follow_after_the_delay() -> None:
    """With a delay, a backup started before the call loses the record once the delay has passed."""
    erasures = Erasures(old_backups_after_s=60.0)
    rid = record_id("Contact", SID, 6)
    erasures.add(1_000.0, SID, "Contact", rid)
    old = backup(500.0)
    assert rid in rows(old, erasures, now=1_059.0)
    assert rid not in rows(old, erasures, now=1_060.0)


def test_rectify_changes_the_field_and_a_forget_wins() -> None:
    """A rectify puts the new value (quoted as CSV needs) in the field; a later forget removes the record."""
    erasures = Erasures()
    rid = record_id("Contact", SID, 7)
    erasures.add(1_000.0, SID, "Contact", rid, "Email", 'new, "odd" value@example.org')
    got = rows(backup(1_001.0), erasures, now=1_100.0)
    assert got[rid]["Email"] == 'new, "odd" value@example.org' and got[rid]["LastName"]
    erasures.add(1_050.0, SID, "Contact", rid)
    assert rid not in rows(backup(1_051.0), erasures, now=1_100.0)
    assert "value@example.org" not in repr(erasures), "the value is not in the repr"


def test_other_services_and_tables_are_untouched() -> None:
    """A call for another service or object changes nothing here."""
    erasures = Erasures()
    rid = record_id("Contact", SID, 8)
    erasures.add(1_000.0, SID + 1, "Contact", rid)
    erasures.add(1_000.0, SID, "Lead", rid)
    assert rid in rows(backup(1_001.0), erasures, now=1_100.0)


def test_record_ids_round_trip() -> None:
    """record_number reads back the number of a simulator record id and refuses other ids."""
    assert record_number("Contact", SID, record_id("Contact", SID, 42)) == 42
    assert record_number("Contact", SID, "0035g00000AbCdEAAB") is None
    assert record_number("Contact", SID + 1, record_id("Contact", SID, 42)) is None


def test_simulate_flags() -> None:
    """`simulate --erase-old-backups-after S --backup-rows N` sets them; a negative value is refused."""
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    sim = build(parser.parse_args(["--erase-old-backups-after", "30", "--backup-rows", "1000"]), environ={})
    assert sim.config.erase_old_backups_after_seconds == 30 and sim.config.backup_now_rows == 1000
    with pytest.raises(ValueError, match="erase_old_backups_after_seconds must not be negative"):
        build(parser.parse_args(["--erase-old-backups-after", "-1"]), environ={})
