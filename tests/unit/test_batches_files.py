"""Reading branch-office batch files as Excel writes them, and the rows as submissions."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook

from services.channels.batches.files import read_batch, sniff_delimiter, write_result
from services.channels.batches.rows import (
    RowUnreadable,
    batch_key,
    channel_ref,
    national_id_valid,
    submission_of,
)
from shared.errors import Invalid
from shared.policy_loader import load_packs

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "batches"
POLICIES = Path(__file__).resolve().parent.parent.parent / "policies"


@pytest.fixture(scope="module")
def packs():
    return load_packs(POLICIES)


def test_an_excel_csv_with_a_bom_and_crlf_reads_its_arabic_names_whole():
    content = (FIXTURES / "excel-bom-crlf.csv").read_bytes()
    assert content.startswith(b"\xef\xbb\xbf") and b"\r\n" in content
    sheet = read_batch(content, 100)
    assert sheet.kind == "csv"
    assert sheet.header[0] == "service_code"  # the BOM is not part of the first column
    assert [n for n, _ in sheet.rows] == [2, 3, 4, 5, 6]
    assert sheet.rows[0][1]["name"] == "فاطمة عبدالله الزهراني"
    assert sheet.rows[1][1]["name"] == "محمد بن سعيد القحطاني"
    assert all("\r" not in str(v) for _, cells in sheet.rows for v in cells.values())


def test_a_semicolon_csv_without_a_bom_is_sniffed():
    sheet = read_batch((FIXTURES / "semicolon-no-bom.csv").read_bytes(), 100)
    assert sheet.rows[0][1]["association_id"] == "health-coop"
    assert sheet.rows[0][1]["monthly_income"] == "5000,50"
    assert sniff_delimiter("a;b;c,d") == ";"
    assert sniff_delimiter("a,b,c") == ","
    assert sniff_delimiter("a\tb\tc") == "\t"


def test_an_xlsx_reads_numbers_and_dates_as_a_submission_takes_them():
    from datetime import datetime

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["service_code", "national_id", "name", "family_size", "doc:x:expires_on"])
    sheet.append(["support-request", 1748526058, "هند", 4.0, datetime(2029, 1, 2)])
    sheet.append([None, None, None, None, None])
    out = io.BytesIO()
    workbook.save(out)
    read = read_batch(out.getvalue(), 100)
    assert read.kind == "xlsx"
    assert read.rows == [
        (
            2,
            {
                "service_code": "support-request",
                "national_id": 1748526058,
                "name": "هند",
                "family_size": 4,
                "doc:x:expires_on": "2029-01-02",
            },
        )
    ]


@pytest.mark.parametrize(
    "content",
    [
        (FIXTURES / "not-a-batch.pdf").read_bytes(),
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        "اسم,هاتف\nأحمد,055\n".encode(),  # CSV, but not a batch's header
        b"PK\x03\x04 not really a zip",
        "service_code,national_id,name\n".encode("utf-16"),
        b"",
    ],
)
def test_what_is_not_a_batch_is_refused_in_both_languages(content):
    with pytest.raises(Invalid) as refused:
        read_batch(content, 100)
    assert refused.value.code == "batch_unreadable"
    assert "CSV" in refused.value.en and "XLSX" in refused.value.ar


def test_a_batch_over_the_limit_is_refused_whole():
    content = "service_code,national_id,name\n" + "x,1,a\n" * 11
    with pytest.raises(Invalid) as refused:
        read_batch(content.encode(), 10)
    assert refused.value.code == "batch_too_large"


def test_rows_become_branch_office_submissions(packs):
    sheet = read_batch((FIXTURES / "excel-bom-crlf.csv").read_bytes(), 100)
    first = submission_of(
        sheet.rows[0][1], ref="r2", default_association="textile-coop", packs=packs
    )
    assert first.channel == "branch_office" and first.channel_ref == "r2"
    assert first.association_id == "textile-coop"
    assert first.applicant.name == "فاطمة عبدالله الزهراني"
    assert first.fields == {"family_size": "5", "monthly_income": "3200"}
    assert [d.model_dump(mode="json") for d in first.documents] == [
        {"code": "national_id_card", "number": "1748526058", "issued_on": None,
         "expires_on": "2029-05-31"}
    ]  # fmt: skip
    assert first.attestation is not None and first.attestation.method == "paper_scan"
    second = submission_of(sheet.rows[1][1], ref="r3", default_association="textile-coop", packs=packs)
    assert second.documents[0].expires_on.isoformat() == "2028-12-31"  # day first, as written
    assert second.attestation is not None and second.attestation.attested
    with pytest.raises(RowUnreadable) as bad_id:
        submission_of(sheet.rows[2][1], ref="r4", default_association="textile-coop", packs=packs)
    assert "1234567890" in bad_id.value.en and "رقم الهوية" in bad_id.value.ar


def test_a_decimal_comma_of_a_number_field_is_read(packs):
    sheet = read_batch((FIXTURES / "semicolon-no-bom.csv").read_bytes(), 100)
    submission = submission_of(sheet.rows[0][1], ref="r", default_association=None, packs=packs)
    assert submission.fields["monthly_income"] == "5000.50"
    assert submission.fields["diagnosis"] == "ربو مزمن"
    assert {d.code for d in submission.documents} == {"national_id_card", "medical_report"}


@pytest.mark.parametrize(
    ("cells", "words"),
    [
        ({"service_code": "s", "national_id": "1748526058", "name": "a"}, "association_id"),
        ({"association_id": "sidr", "national_id": "1748526058", "name": "a"}, "service_code"),
        (
            {"association_id": "sidr", "service_code": "s", "national_id": "1748526058",
             "name": "a", "doc:x": "1"},
            "doc:x",
        ),
        (
            {"association_id": "sidr", "service_code": "s", "national_id": "1748526058",
             "name": "a", "doc:x:expires_on": "next year"},
            "next year",
        ),
        (
            {"association_id": "sidr", "service_code": "s", "national_id": "1748526058",
             "name": "a", "attested": "maybe"},
            "attested",
        ),
    ],
)  # fmt: skip
def test_a_row_that_cannot_be_read_says_why(packs, cells, words):
    with pytest.raises(RowUnreadable) as refused:
        submission_of(cells, ref="r", default_association=None, packs=packs)
    assert words in refused.value.en and words in refused.value.ar


def test_the_same_batch_is_the_same_references_and_another_is_not():
    content = b"service_code,national_id,name\n"
    key = batch_key(content, None, "rep-1")
    assert key == batch_key(content, None, "rep-2")  # the same file, whoever sends it
    assert channel_ref(key, 2) == channel_ref(batch_key(content, None, "x"), 2)
    assert channel_ref(key, 2) != channel_ref(key, 3)
    assert batch_key(content + b"\n", None, "rep-1") != key
    # A representative's own batch id is theirs alone.
    assert batch_key(b"a", "B-7", "rep-1") == batch_key(b"b", "B-7", "rep-1")
    assert batch_key(b"a", "B-7", "rep-1") != batch_key(b"a", "B-7", "rep-2")
    assert len(channel_ref(key, 10_000)) <= 200


def test_national_ids_are_checked_by_their_check_digit():
    assert national_id_valid("1748526058") and national_id_valid("2564143556")
    assert not national_id_valid("1748526059")
    assert not national_id_valid("3748526058")
    assert not national_id_valid("174852605")


def test_the_result_file_opens_in_excel_with_arabic_and_as_xlsx():
    results = [
        {"row": 2, "outcome": "received", "case_ref": "TXT-1448-000001", "access_code": "K7",
         "complete": True, "missing": []},
        {"row": 3, "outcome": "refused", "error": "x", "reason_en": "No.", "reason_ar": "لا."},
    ]  # fmt: skip
    content = write_result("csv", results)
    assert content.startswith(b"\xef\xbb\xbf")
    lines = list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))
    assert lines[0][:3] == ["row", "outcome", "case_ref"]
    assert lines[1][:4] == ["2", "received", "TXT-1448-000001", "K7"]
    assert lines[2][-1] == "لا."
    assert b"\r\n" in content
    book = load_workbook(io.BytesIO(write_result("xlsx", results)))
    values = list(book.active.iter_rows(values_only=True))
    assert values[1][:3] == (2, "received", "TXT-1448-000001")
    assert values[2][-1] == "لا."


@pytest.mark.parametrize(
    ("written", "read"),
    [("1455-01-01h", "2033-04-01"), ("١٤٥٥-٠١-٠١ هـ", "2033-04-01"), ("2029-05-31", "2029-05-31")],
)
def test_an_expiry_in_hijri_with_its_mark_is_read_as_its_gregorian_day(packs, written, read):
    cells = {"association_id": "sidr", "service_code": "s", "national_id": "1748526058",
             "name": "a", "doc:x:expires_on": written}  # fmt: skip
    submission = submission_of(cells, ref="r", default_association=None, packs=packs)
    assert submission.documents[0].expires_on.isoformat() == read
