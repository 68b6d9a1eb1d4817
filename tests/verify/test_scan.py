"""The incremental CSV scan: the record found wherever the chunks are cut, and bad files named."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import AsyncIterator

import pytest

from gdpr_daemon.verify import scan
from gdpr_daemon.verify.scan import CsvProblem, Target, scan_csv

RID = "0031010000000042AAA"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def make_csv(rows: list[list[str]], header: tuple[str, ...] = ("Id", "FirstName", "Email", "Notes")) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def sample(n: int = 200, *, with_target: bool = True, email: str = "old@example.org") -> bytes:
    rows = []
    for i in range(n):
        rid = f"003102000000{i:04d}AAA"
        # Fields with commas, quotes and line breaks, as Salesforce notes have.
        rows.append([rid, f"Name {i}", f"n{i}@example.org", f'line one, "quoted"\nline two {i}'])
    if with_target:
        rows.insert(n // 2, [RID, "Anna", email, "multi\r\nline, with \"quotes\""])
    return make_csv(rows)


async def chunked(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 1000, 10**7])
async def test_forget_target_found_whatever_the_chunk_size(size: int) -> None:
    """The record id is found in the Id column however the bytes are cut (quoted line breaks included)."""
    result = await scan_csv(chunked(sample(), size), Target(record_id=RID))
    assert result.found and result.new_value is None
    assert result.rows == 101  # it stops at the record


@pytest.mark.parametrize("size", [1, 5, 4096])
async def test_absent_record_reads_every_row(size: int) -> None:
    """A record that is not there: every record is read and counted, none found."""
    result = await scan_csv(chunked(sample(with_target=False), size), Target(record_id=RID))
    assert not result.found and result.rows == 200 and result.short_rows == 0


async def test_id_only_in_another_column_is_not_a_match() -> None:
    """The id in another column (a lookup to the record) does not count as the record."""
    data = make_csv([["0031010000000001AAA", "x", RID, ""]])
    assert not (await scan_csv(chunked(data, 10), Target(record_id=RID))).found


async def test_rectify_compares_the_new_value_digest() -> None:
    """Rectify: the record's field is compared by SHA-256 with the new value; another value is not it."""
    data = sample(email="new@example.org")
    ok = await scan_csv(chunked(data, 333), Target(RID, None, "Email", sha("new@example.org")))
    assert ok.found and ok.new_value is True
    old = await scan_csv(chunked(data, 333), Target(RID, None, "Email", sha("other@example.org")))
    assert old.found and old.new_value is False


async def test_purged_record_id_is_matched_by_digest() -> None:
    """After retention purged the record id, its SHA-256 finds the record."""
    result = await scan_csv(chunked(sample(), 97), Target(record_id_sha256=sha(RID)))
    assert result.found
    missing = await scan_csv(chunked(sample(with_target=False), 97), Target(record_id_sha256=sha(RID)))
    assert not missing.found


async def test_bom_and_column_case_are_tolerated() -> None:
    """A UTF-8 byte order mark and column names in another case still find the columns."""
    data = b"\xef\xbb\xbf" + make_csv([[RID, "a", "v@example.org", ""]], header=("ID", "FirstName", "EMAIL", "N"))
    result = await scan_csv(chunked(data, 2), Target(RID, None, "Email", sha("v@example.org")))
    assert result.found and result.new_value is True


async def test_last_line_without_line_break_is_read() -> None:
    """A file whose last record has no line break still has that record read."""
    data = make_csv([["a", "", "", ""]]) + RID.encode() + b",x,y,z"
    assert (await scan_csv(chunked(data, 8), Target(record_id=RID))).found


@pytest.mark.parametrize(
    ("data", "target", "words"),
    [
        (b"", Target(record_id=RID), "empty"),
        (b"Name,Email\r\nx,y\r\n", Target(record_id=RID), "no record id column 'Id'"),
        (make_csv([[RID, "a", "b", "c"]]), Target(RID, None, "Phone", sha("1")), "no field column 'Phone'"),
        (b'Id,Notes\r\n1,"never closed\r\n2,x\r\n', Target(record_id=RID), "ends inside a quoted field"),
    ],
)
async def test_unreadable_files_are_named(data: bytes, target: Target, words: str) -> None:
    """An empty file, a missing column or a cut-off quoted field is a CsvProblem saying which."""
    with pytest.raises(CsvProblem, match=words):
        await scan_csv(chunked(data, 5), target)


async def test_a_record_without_end_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A quoted field that never ends stops the scan at the bound instead of filling memory."""
    monkeypatch.setattr(scan, "MAX_RECORD_BYTES", 1000)
    data = b'Id,Notes\r\n1,"' + b"x\n" * 5000

    with pytest.raises(CsvProblem, match="longer than"):
        await scan_csv(chunked(data, 100), Target(record_id=RID))


async def test_invalid_utf8_does_not_stop_the_scan() -> None:
    """Bytes that are not UTF-8 in some cell are replaced; the scan goes on and finds the record."""
    data = make_csv([["x", "", "", ""]]).replace(b"x", b"\xff\xfe") + make_csv([[RID, "", "", ""]]).split(b"\r\n", 1)[1]
    assert (await scan_csv(chunked(data, 3), Target(record_id=RID))).found


def test_target_repr_hides_the_record_id() -> None:
    """A Target's repr (in a traceback or a log) never shows the record id."""
    assert RID not in repr(Target(record_id=RID)) and RID not in repr(Target(RID, None, "Email", sha("v")))


def test_section_found_by_exact_case_insensitive_or_plural_name() -> None:
    """A request's table names its section exactly, in another case, or in the plural some clients see."""
    from gdpr_daemon.ownbackup.models import BackupObject
    from gdpr_daemon.verify.verifier import section_named

    def sections(*names: str) -> list[BackupObject]:
        return [BackupObject.from_json({"id": i, "name": n}) for i, n in enumerate(names, 1)]

    assert section_named(sections("Accounts", "Account"), "Account").name == "Account"  # exact wins
    assert section_named(sections("contact"), "Contact").name == "contact"
    assert section_named(sections("Accounts", "Opportunities"), "Account").name == "Accounts"
    assert section_named(sections("Opportunities"), "Opportunity").name == "Opportunities"
    assert section_named(sections("Custom_Object__cs"), "Custom_Object__c").name == "Custom_Object__cs"
    assert section_named(sections("Lead", "Case"), "Contact") is None
