"""Survey results by service, channel and stage, never by officer, with small groups
suppressed as the surveys service says."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from shared.roles import FRONT_DESK, SURVEYS_OFFICER
from tests.browser.oversight_cases import drive_cases, headers, url
from tests.browser.steps_surveys import survey_results
from tests.helpers import wait_for
from tests.web import WebSystem

pytestmark = pytest.mark.e2e

TOO_FEW = {"ar": "الإجابات أقل من أن تُعرض", "en": "Too few answers to show"}
ASSOCIATION = "textile-coop"  # the seed the other browser tests leave alone
SERVICE = "support-request"


@pytest.fixture(scope="module")
def answered(web_system: WebSystem) -> dict:
    """Five delivered and one rejected case of textile-coop, each answered by its
    applicant: the service's group is shown; the stages' are not (one answer after a
    rejection, and so the delivered group too, or the one would be worked out)."""
    drive_cases(web_system, ["approved"] * 5 + ["rejected"], ASSOCIATION)
    officer = headers(web_system, SURVEYS_OFFICER)

    def results() -> dict | None:
        found = httpx.get(
            url(web_system, "surveys") + "/results",
            params={"association_id": ASSOCIATION},
            headers=officer,
        ).json()
        by_service = {r["service_code"]: r for r in found["by_service_code"]}
        counted = by_service.get(SERVICE, {}).get("answers", 0)
        return found if counted >= 6 else None

    return wait_for(results, timeout=60, interval=0.5, what="six answers counted")


def test_results_show_groups_and_suppress_the_small_ones(
    web_system: WebSystem, lang: str, shoot, answered: dict
) -> None:
    page = survey_results(web_system, lang)
    page.goto(web_system.url + f"/survey-results?association={ASSOCIATION}")
    service = page.locator(f"section[data-breakdown='service_code'] tr[data-group='{SERVICE}']")
    expect(service).not_to_have_class("suppressed")
    expect(service.locator("td").nth(1)).to_contain_text(str(answered["by_service_code"][0]["answers"]))
    stages = page.locator("section[data-breakdown='stage']")
    for row in answered["by_stage"]:
        assert row["suppressed"], row
        expect(stages.locator(f"tr[data-group='{row['stage']}']")).to_contain_text(TOO_FEW[lang])
    # Never by officer: no breakdown but service, channel, stage (and association).
    breakdowns = page.locator("section[data-breakdown]").evaluate_all(
        "sections => sections.map(s => s.dataset.breakdown)"
    )
    assert set(breakdowns) <= {"service_code", "channel", "stage", "association_id"}
    shoot(page, "surveys-results")


def test_the_front_desk_may_not_read_the_results(web_system: WebSystem, lang: str) -> None:
    page = web_system.page(FRONT_DESK, lang)
    assert page.request.get(web_system.url + "/survey-results").status == 403
