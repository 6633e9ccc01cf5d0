"""Branch-office batches uploaded to a real channels service, against a real intake:
the whole system (EmbeddedSystem) in a temporary folder."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import Workbook, load_workbook

from khidma.run import CHANNEL_CLIENTS_FILE, EmbeddedSystem
from tests import personal_data
from shared.roles import FRONT_DESK
from tests.auth import ISSUER, as_adapter, as_staff, bearer
from tests.helpers import stream_messages_sync, wait_for

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "batches"


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedSystem]:
    with EmbeddedSystem(tmp_path_factory.mktemp("khidma"), fixed_ports=False) as running:
        yield running


@pytest.fixture(scope="module")
def representative(system: EmbeddedSystem) -> dict[str, str]:
    """The branch office's own client (make run registers it), signed in at the system's
    identity service: a token holding `channel:branch_office` where packs enable it."""
    client = json.loads((system.data_dir / CHANNEL_CLIENTS_FILE).read_text())["branch_office"]
    response = httpx.post(
        f"{system.services['identity'].url}/oauth/token",
        data={"grant_type": "client_credentials", **client},
        timeout=20,
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def upload(
    system: EmbeddedSystem,
    content: bytes,
    headers: dict[str, str] | None,
    *,
    filename: str = "batch.csv",
    **form: str,
) -> httpx.Response:
    return httpx.post(
        f"{system.services['channels'].url}/batches",
        files={"file": (filename, content, "application/octet-stream")},
        data=form,
        headers=headers or {},
        timeout=120,
    )


def result_rows(response: httpx.Response) -> dict[int, dict[str, str]]:
    assert response.content.startswith(b"\xef\xbb\xbf"), "a BOM, for Excel to read Arabic"
    reader = csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"), newline=""))
    return {int(r["row"]): r for r in reader}


def cases_of(association_id: str, system: EmbeddedSystem) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{system.services['intake'].url}/cases",
        params={"association_id": association_id, "limit": 1000},
        headers=as_staff(),
        timeout=20,
    )
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def status_with_code(system: EmbeddedSystem, case_ref: str, code: str) -> int:
    return httpx.get(
        f"{system.services['intake'].url}/cases/{case_ref}/status",
        headers={"X-Case-Code": code},
        timeout=20,
    ).status_code


def test_an_excel_csv_with_a_bom_gives_each_row_its_case_or_its_reason_and_again_nothing_twice(
    system, representative
):
    content = (FIXTURES / "excel-bom-crlf.csv").read_bytes()
    before = len(cases_of("textile-coop", system))
    first = upload(system, content, representative, association_id="textile-coop")
    assert first.status_code == 200, first.text
    assert first.headers["content-type"].startswith("text/csv")
    assert first.headers["cache-control"] == "no-store"
    rows = result_rows(first)
    assert sorted(rows) == [2, 3, 4, 5, 6]
    for number in (2, 3, 6):
        assert rows[number]["outcome"] == "received", rows[number]
        assert rows[number]["case_ref"].startswith("TXT-")
        assert status_with_code(system, rows[number]["case_ref"], rows[number]["access_code"]) == 200
    assert rows[2]["complete"] == "yes"
    # A bad national id: the adapter's own words, in both languages.
    assert rows[4]["outcome"] == "refused" and not rows[4]["case_ref"]
    assert "1234567890" in rows[4]["reason_en"] and "رقم الهوية" in rows[4]["reason_ar"]
    # An unknown service: intake's refusal, in both languages.
    assert rows[5]["outcome"] == "refused" and rows[5]["error"] != "row_unreadable"
    assert "unknown-service" in rows[5]["reason_en"] and rows[5]["reason_ar"]
    assert rows[5]["reason_ar"] != rows[5]["reason_en"]
    assert len(cases_of("textile-coop", system)) == before + 3

    again = result_rows(upload(system, content, representative, association_id="textile-coop"))
    for number in (2, 3, 6):
        assert again[number]["outcome"] == "already_received"
        assert again[number]["case_ref"] == rows[number]["case_ref"]
        assert again[number]["access_code"] == ""  # given once, with the first upload
    assert again[4]["outcome"] == again[5]["outcome"] == "refused"
    assert len(cases_of("textile-coop", system)) == before + 3

    # The result file, with its secret codes, is kept nowhere in the data folder; nor
    # are the names it was sent.
    codes = [rows[n]["access_code"] for n in (2, 3, 6)]
    personal_data.assert_no_plaintext(
        system.data_dir, [*codes, "فاطمة عبدالله الزهراني", "محمد بن سعيد القحطاني"]
    )


def test_a_semicolon_csv_without_a_bom_names_its_association_in_a_column(system, representative):
    content = (FIXTURES / "semicolon-no-bom.csv").read_bytes()
    assert not content.startswith(b"\xef\xbb\xbf")
    rows = result_rows(upload(system, content, representative))
    assert rows[2]["outcome"] == "received" and rows[2]["case_ref"].startswith("HLT-")
    assert rows[3]["outcome"] == "refused" and "131856100" in rows[3]["reason_en"]


def test_an_xlsx_batch_is_answered_with_an_xlsx_result(system, representative):
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["association_id", "service_code", "national_id", "name", "level", "attested"])
    sheet.append(["textile-coop", "sewing-training", 1831671621, "ريم سالم", "beginner", "yes"])
    sheet.append(["textile-coop", "sewing-training", 1859820829, "لمى فهد", "advanced", "نعم"])
    sheet.append(["textile-coop", "sewing-training", "12", "قصير", "beginner", "yes"])
    out = io.BytesIO()
    workbook.save(out)
    response = upload(system, out.getvalue(), representative, filename="دفعة.xlsx")
    assert response.status_code == 200, response.text
    assert "spreadsheetml" in response.headers["content-type"]
    values = list(load_workbook(io.BytesIO(response.content)).active.iter_rows(values_only=True))
    header, rows = values[0], {r[0]: dict(zip(values[0], r)) for r in values[1:]}
    assert header[:4] == ("row", "outcome", "case_ref", "access_code")
    assert rows[2]["outcome"] == rows[3]["outcome"] == "received"
    assert str(rows[2]["case_ref"]).startswith("TXT-")
    assert rows[4]["outcome"] == "refused" and rows[4]["reason_ar"]


def test_a_file_that_is_neither_csv_nor_xlsx_is_refused_in_both_languages(system, representative):
    before = len(cases_of("textile-coop", system))
    response = upload(
        system, (FIXTURES / "not-a-batch.pdf").read_bytes(), representative,
        filename="scan.pdf", association_id="textile-coop",
    )  # fmt: skip
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "batch_unreadable"
    assert "CSV" in body["message"]["en"] and "XLSX" in body["message"]["ar"]
    assert len(cases_of("textile-coop", system)) == before


def test_an_upload_without_a_valid_token_is_refused(system):
    content = (FIXTURES / "excel-bom-crlf.csv").read_bytes()
    missing = upload(system, content, None, association_id="textile-coop")
    assert missing.status_code == 401
    assert missing.json()["message"]["ar"]
    assert missing.headers["www-authenticate"].startswith("Bearer")
    forged = upload(
        system, content, {"Authorization": "Bearer not.a.token"}, association_id="textile-coop"
    )
    assert forged.status_code == 401


def test_rows_of_an_association_where_the_uploader_has_no_role_are_refused(system):
    """A token of another channel (letters), and a pack without branch offices (sidr)."""
    letters = as_adapter(["letter"], ["textile-coop"])
    content = "service_code,national_id,name,level\r\nsewing-training,1816969776,هيا,beginner\r\n"
    rows = result_rows(upload(system, content.encode(), letters, association_id="textile-coop"))
    assert rows[2]["outcome"] == "refused" and rows[2]["error"] == "forbidden"
    assert "front_desk" in rows[2]["reason_en"] and rows[2]["reason_ar"]
    front_desk = as_staff()  # front_desk everywhere, but sidr's pack has no branch office
    rows = result_rows(upload(system, content.encode(), front_desk, association_id="sidr"))
    assert rows[2]["error"] == "channel_not_enabled" and rows[2]["reason_ar"]
    # front_desk in textile-coop is enough.
    rows = result_rows(upload(system, content.encode(), front_desk, association_id="textile-coop"))
    assert rows[2]["outcome"] == "received"


def test_a_corrected_batch_sent_under_its_batch_id_keeps_its_rows_references(
    system, representative
):
    header = "service_code,national_id,name,level\r\n"
    good = "sewing-training,1968013456,جود,beginner\r\n"
    first = header + good + "sewing-training,1968013457,لين,beginner\r\n"  # a bad check digit
    fixed = header + good + "sewing-training,1663923322,لين,beginner\r\n"
    before = len(cases_of("textile-coop", system))
    sent = result_rows(
        upload(system, first.encode(), representative, association_id="textile-coop",
               batch_id="office-7/2026-12-03")
    )  # fmt: skip
    assert sent[2]["outcome"] == "received" and sent[3]["outcome"] == "refused"
    corrected = result_rows(
        upload(system, fixed.encode(), representative, association_id="textile-coop",
               batch_id="office-7/2026-12-03")
    )  # fmt: skip
    assert corrected[2]["outcome"] == "already_received"
    assert corrected[2]["case_ref"] == sent[2]["case_ref"]
    assert corrected[3]["outcome"] == "received"
    # Without the batch id the changed file is a new batch: its row joins the
    # applicant's open request instead of opening another.
    other = result_rows(
        upload(system, (fixed + "\r\n").encode(), representative, association_id="textile-coop")
    )
    assert other[2]["outcome"] == "linked" and other[2]["case_ref"] == sent[2]["case_ref"]
    assert other[2]["reason_ar"]
    assert len(cases_of("textile-coop", system)) == before + 2


def test_a_batch_sent_to_run_on_is_answered_at_once_and_followed_to_its_result(
    system, representative
):
    header = "service_code,national_id,name,level\r\n"
    rows = [
        "sewing-training,1757491186,نورة,beginner",
        "sewing-training,1013962459,عبير,advanced",
        "sewing-training,12,قصير,beginner",
    ]
    content = (header + "\r\n".join(rows) + "\r\n").encode()
    response = httpx.post(
        f"{system.services['channels'].url}/batches",
        files={"file": ("office-3.csv", content, "text/csv")},
        data={"association_id": "textile-coop"},
        headers={**representative, "Prefer": "respond-async"},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    taken = response.json()
    assert taken["rows"] == 3 and response.headers["location"] == taken["progress_url"]
    channels = system.services["channels"].url
    progress = wait_for(
        lambda: (
            found
            if (found := httpx.get(channels + taken["progress_url"], headers=representative,
                                   timeout=10).json())["finished"]
            else None
        ),
        timeout=60,
        what="the batch to finish",
    )  # fmt: skip
    assert progress["done"] == 3 and progress["counts"] == {"received": 2, "refused": 1}
    # Another caller is told there is no such batch, in both languages.
    elsewhere = httpx.get(channels + taken["progress_url"], headers=as_staff("someone"), timeout=10)
    assert elsewhere.status_code == 404 and elsewhere.json()["message"]["ar"]
    result = httpx.get(channels + taken["result_url"], headers=representative, timeout=10)
    assert result.status_code == 200 and result.headers["cache-control"] == "no-store"
    assert 'filename="office-3-results.csv"' in result.headers["content-disposition"]
    got = result_rows(result)
    assert got[2]["outcome"] == got[3]["outcome"] == "received" and got[2]["access_code"]
    assert got[4]["outcome"] == "refused"


def test_the_case_history_names_the_representative_who_uploaded_the_batch(system):
    uploader = bearer(ISSUER.token("rep-amal", {"textile-coop": [FRONT_DESK]}, name="Amal"))
    content = (
        "service_code,national_id,name,level,attested\r\n"
        "sewing-training,1820018263,وعد,beginner,yes\r\n"
    )
    rows = result_rows(upload(system, content.encode(), uploader, association_id="textile-coop"))
    assert rows[2]["outcome"] == "received", rows[2]
    case = httpx.get(
        f"{system.services['intake'].url}/cases/{rows[2]['case_ref']}", headers=as_staff(), timeout=20
    ).json()
    messages = wait_for(
        lambda: stream_messages_sync(system.admin_nats_url, f"khidma.*.{case['case_id']}.*"),
        what="the case's first event on the stream (a complete request is received)",
    )
    assert messages[0]["event"]["actor"]["id"] == "rep-amal"
    assert messages[0]["event"]["actor"]["role"] == FRONT_DESK
