"""A branch-office batch uploaded from the browser: the front desk of textile-coop
sends three rows (one with a bad national id), follows the batch to its end, reads
the refused row's reason and downloads the result file; a verifier has no such page."""

from __future__ import annotations

import csv
import io
import re

import pytest
from playwright.sync_api import expect

from khidma.simulate import national_id, simulated_applicant
from shared.roles import FRONT_DESK, VERIFIER
from tests.web import WebSystem

pytestmark = pytest.mark.e2e

COLUMNS = ("service_code", "national_id", "name", "family_size", "monthly_income",
           "doc:national_id_card:number", "doc:national_id_card:expires_on", "attested")  # fmt: skip
DONE = {"ar": "أُنجز 3 من 3 صفًا", "en": "3 of 3 rows done"}
BAD_ID = {"ar": "ليس رقم هوية وطنية أو إقامة صحيحًا", "en": "is not a Saudi national ID"}
FORBIDDEN = {"ar": "ليست لديك صلاحية لهذه الصفحة.", "en": "You do not have a role that opens this page."}


def a_batch() -> tuple[bytes, list[str]]:
    """Two requests that can be taken and, between them, one whose id cannot be."""
    good = [simulated_applicant() for _ in range(2)]
    rows = [
        ["support-request", good[0]["national_id"], good[0]["name"], "5", "3200",
         good[0]["national_id"], "2030-05-31", "yes"],
        ["support-request", "1234567890", "نورة خالد", "4", "2500", "1234567890", "2030-01-01", "yes"],
        ["support-request", good[1]["national_id"], good[1]["name"], "3", "4500",
         good[1]["national_id"], "31/12/2029", "نعم"],
    ]  # fmt: skip
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8-sig"), [g["national_id"] for g in good]


def test_a_front_desk_officer_uploads_a_batch_follows_it_and_downloads_the_result(
    web_system: WebSystem, lang: str, shoot
) -> None:
    page = web_system.page(FRONT_DESK, lang)
    expect(page.locator("nav.menu a[href='/batches']")).to_be_visible()
    page.goto(web_system.url + "/batches")
    form = page.locator("form[action='/batches']")
    template = page.locator("a[data-association='textile-coop']")
    expect(template).to_be_visible()
    shoot(page, "batches-upload")
    with page.expect_download() as downloading:
        template.click()
    header = downloading.value.path().read_bytes().decode("utf-8-sig").splitlines()[0]
    assert header.startswith("association_id,service_code,national_id,name")

    content, _ = a_batch()
    form.locator("select[name=association_id]").select_option("textile-coop")
    form.locator("input[name=batch_id]").fill(f"office-{lang}-{national_id()}")
    form.locator("input[name=file]").set_input_files(
        {"name": "دفعة.csv", "mimeType": "text/csv", "buffer": content}
    )
    form.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/batches/b-[\w-]+$"))
    # The page asks again by itself until the batch is finished.
    expect(page.locator("#batch[data-finished=yes]")).to_be_visible(timeout=60_000)
    expect(page.locator("#batch .done-of")).to_have_text(DONE[lang])
    expect(page.locator("#batch li[data-outcome=received]")).to_contain_text("2")
    refused = page.locator("table.refusals tr[data-row='3']")
    expect(refused).to_contain_text(BAD_ID[lang])
    expect(page.locator("table.refusals tbody tr")).to_have_count(1)
    shoot(page, "batches-progress")

    with page.expect_download() as downloading:
        page.locator("#batch a[href$='/result']").click()
    got = downloading.value
    assert got.suggested_filename.endswith("-results.csv")
    rows = {
        int(r["row"]): r
        for r in csv.DictReader(io.StringIO(got.path().read_bytes().decode("utf-8-sig")))
    }
    assert sorted(rows) == [2, 3, 4]
    for number in (2, 4):
        assert rows[number]["outcome"] == "received"
        assert rows[number]["case_ref"] and rows[number]["access_code"]
    assert rows[3]["outcome"] == "refused" and rows[3]["access_code"] == ""


def test_a_person_without_the_role_has_no_batches_page(
    web_system: WebSystem, lang: str
) -> None:
    page = web_system.page(VERIFIER, lang)
    expect(page.locator("nav.menu a[href='/batches']")).to_have_count(0)
    answer = page.goto(web_system.url + "/batches")
    assert answer is not None and answer.status == 403
    expect(page.locator("main")).to_contain_text(FORBIDDEN[lang])
    expect(page.locator("html")).to_have_attribute("lang", lang)
