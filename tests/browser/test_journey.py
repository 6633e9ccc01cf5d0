"""One request end to end, in a real browser, against the real services: each role
signed in as itself, in Arabic and in English (issue 11).

1. an applicant applies on the website, leaving a document out;
2. the front desk completes the request and refers it to the social researcher;
3. the verifier confirms;
4. the researcher answers the referral;
5. three members vote, each from their own session;
6. the chair decides;
7. the front desk delivers the service;
8. the applicant answers the survey from the link they were sent.

Then "where is my request?" says delivered, and the audit's timeline names each
person who acted, as themselves.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from khidma.signin import STAFF
from khidma.simulate import simulated_applicant
from shared.roles import AUDITOR, FRONT_DESK, RESEARCHER, VERIFIER
from tests.browser.steps_committee import decide, open_sitting, vote, wait_on_agenda
from tests.browser.steps_desk import complete_request, deliver, refer
from tests.browser.steps_public import VALID_CARD, answer_survey, apply_on_website, open_status
from tests.browser.steps_verify import answer_referral, confirm, staff_token
from tests.browser.test_desk import survey_link
from tests.web import WebSystem

# One language in make test (by the test's stable hash); both under make test-browser.
pytestmark = [pytest.mark.e2e]

ASSOCIATION = "sidr"
VOTERS = ["member-2", "member-3", "member-4"]
WORDS = {
    "ar": {
        "reason": "الأسرة انتقلت حديثًا ولا نعرف موقع الأرض",
        "questions": ["هل الأرض ملك لمقدم الطلب؟"],
        "answers": ["نعم، زرتُ الأرض وهي ملكه بصك"],
        "note": "الحالة مستحقة",
        "decision": ["الطلب مستوفٍ للشروط"],
        "comment": "خدمة ممتازة",
        "delivered": "تم التسليم",
    },
    "en": {
        "reason": "The family moved recently; we do not know where the land is",
        "questions": ["Is the land the applicant's own?"],
        "answers": ["Yes, I visited it: it is theirs by deed"],
        "note": "The case qualifies",
        "decision": ["The request meets the conditions"],
        "comment": "Excellent service",
        "delivered": "Delivered",
    },
}


def case_of(web: WebSystem, case_ref: str) -> dict[str, Any]:
    response = httpx.get(
        f"{web.system.services['intake'].url}/cases/{case_ref}",
        headers={"Authorization": f"Bearer {staff_token(web, FRONT_DESK)}"},
        timeout=10,
    )
    response.raise_for_status()
    found: dict[str, Any] = response.json()
    return found


def timeline_actors(web: WebSystem, case_id: str) -> dict[str, set[str]]:
    """Who the audit's timeline says did each thing: event name -> the actors' ids."""
    response = httpx.get(
        f"{web.system.services['audit'].url}/cases/{case_id}/timeline",
        headers={"Authorization": f"Bearer {staff_token(web, AUDITOR)}"},
        timeout=60,
    )
    response.raise_for_status()
    actors: dict[str, set[str]] = {}
    for event in response.json()["events"]:
        actor = event.get("actor") or {}
        actors.setdefault(event["name"], set()).add(str(actor.get("name") or actor.get("id")))
    return actors


def test_one_request_from_the_website_to_the_survey_each_role_as_itself(
    web_system: WebSystem, lang: str, shoot
) -> None:
    words = WORDS[lang]
    applicant = simulated_applicant()
    applied = apply_on_website(
        web_system, lang, ASSOCIATION, "seedlings", applicant,
        leave_out_document="national_id_card",
    )
    assert case_of(web_system, applied.case_ref)["status"] == "incomplete"
    complete_request(web_system, lang, applied.case_ref, {"national_id_card": VALID_CARD})
    refer(web_system, lang, applied.case_ref, words["reason"], words["questions"])
    confirm(web_system, lang, applied.case_ref)
    answer_referral(web_system, lang, applied.case_ref, words["answers"], words["note"])
    wait_on_agenda(web_system, lang, ASSOCIATION, applied.case_ref)
    sitting = open_sitting(web_system, lang, ASSOCIATION, ["chair", *VOTERS])
    for seat in VOTERS:
        vote(web_system, lang, seat, sitting, applied.case_ref, "approve")
    decide(web_system, lang, sitting, applied.case_ref, "approved", words["decision"])
    deliver(web_system, lang, applied.case_ref, words["delivered"])
    case_id = case_of(web_system, applied.case_ref)["case_id"]
    answer_survey(web_system, lang, survey_link(web_system, case_id), 5, 9, words["comment"])

    status = open_status(web_system, lang, applied.case_ref, applied.code)
    expect(status.locator(".status-label")).to_contain_text(
        {"ar": "تم تقديم الخدمة", "en": "Service delivered"}[lang]
    )
    shoot(status, "journey-status")
    actors = timeline_actors(web_system, case_id)
    everyone = set().union(*actors.values())
    for person in (STAFF[FRONT_DESK], STAFF[VERIFIER], STAFF[RESEARCHER], *VOTERS, "chair"):
        assert any(person in actor for actor in everyone), (person, actors)
