"""The research committee in a real browser: the agenda updating by itself, a sitting
with its attendance, three members voting from three sessions, a recusal, a dissent,
a refused vote, the chair's decision and the printable minutes; in Arabic and English.

The cases are made through the services' APIs as the front desk and the verifier
would (khidma.simulate's request for the association), stopping before the committee.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import expect

from khidma.signin import STAFF
from khidma.simulate import TEMPLATES, simulated_applicant
from shared.roles import FRONT_DESK, PRIVACY_OFFICER, RESEARCHER, VERIFIER
from tests.browser import steps_committee as steps
from tests.web import WebSystem

pytestmark = pytest.mark.e2e

ASSOCIATION = "sidr"
PRESENT = ["chair", "member-2", "member-3", "member-4"]
REFUSED_NOT_PRESENT = {
    "ar": "ليس من الأعضاء الحاضرين في هذه الجلسة",
    "en": "is not among the members present at this sitting",
}
REFUSED_RECUSED = {"ar": "متنحٍّ عن هذا الطلب", "en": "is recused from this case"}


@dataclass
class Case:
    case_id: str
    case_ref: str
    applicant: str
    national_id: str


def token(web: WebSystem, username: str) -> dict[str, str]:
    response = httpx.post(
        web.system.services["identity"].url + "/oauth/token",
        data={
            "grant_type": "password",
            "username": username,
            "password": web.passwords[username],
        },
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def submitted(web: WebSystem, association_id: str = ASSOCIATION) -> Case:
    """A complete, attested request at the front desk: on its way to verification."""
    template = TEMPLATES[association_id]
    applicant = simulated_applicant()
    response = httpx.post(
        web.system.services["intake"].url + "/submissions",
        headers=token(web, STAFF[FRONT_DESK]),
        json={
            "association_id": association_id,
            "channel": "interview",
            "channel_ref": f"web-committee-{time.time_ns()}",
            "service_code": template.service_code,
            "applicant": applicant,
            "fields": template.fields,
            "documents": list(template.documents),
            "attestation": {
                "attested": True,
                "method": "in_person",
                "attested_by": applicant["name"],
            },
        },
        timeout=30,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Case(body["case_id"], body["case_ref"], applicant["name"], applicant["national_id"])


def confirmed(web: WebSystem, case: Case) -> None:
    """The verifier confirms the automatic checks, once the case reached verification."""
    url = f"{web.system.services['verification'].url}/verifications/{case.case_id}"
    headers = token(web, STAFF[VERIFIER])
    deadline = time.monotonic() + 30
    while httpx.get(url, headers=headers).status_code != 200:
        assert time.monotonic() < deadline, f"{case.case_ref} never reached verification"
        time.sleep(0.2)
    response = httpx.post(f"{url}/confirmation", headers=headers, json={"officer": "officer-2"})
    assert response.status_code in (200, 201, 202), response.text


REFERRAL = {
    "reason": "The procedure is unclear to the applicant",
    "answer": "Only the national ID card is needed",
}


def referred_and_answered(web: WebSystem, case: Case) -> None:
    """The front desk refers the applicant; the researcher answers, with a note."""
    referral = httpx.post(
        f"{web.system.services['intake'].url}/cases/{case.case_id}/referral",
        headers=token(web, STAFF[FRONT_DESK]),
        json={"reason": REFERRAL["reason"], "questions": ["Which documents?"]},
        timeout=30,
    )
    assert referral.status_code in (200, 201, 202), referral.text
    committee = web.system.services["committee"].url
    headers = token(web, STAFF[RESEARCHER])
    deadline = time.monotonic() + 30
    while (
        not httpx.get(f"{committee}/cases/{case.case_id}", headers=headers)
        .json()
        .get("referral_open")
    ):
        assert time.monotonic() < deadline, f"{case.case_ref} never reached the researcher"
    closure = httpx.post(
        f"{committee}/referrals/{case.case_id}/closure",
        headers=headers,
        json={"answers": [REFERRAL["answer"]], "note": "Explained the procedure."},
        timeout=30,
    )
    assert closure.status_code == 202, closure.text


def on_agenda(web: WebSystem, lang: str) -> Case:
    case = submitted(web)
    confirmed(web, case)
    steps.wait_on_agenda(web, lang, ASSOCIATION, case.case_ref)
    return case


def test_a_case_appears_on_the_open_agenda_by_itself(
    web_system: WebSystem, lang: str, shoot
) -> None:
    case = submitted(web_system)
    page = steps.agenda_page(web_system, lang, ASSOCIATION, case.case_ref)
    row = page.locator(f"#agenda tr[data-case-ref='{case.case_ref}']")
    expect(row).to_have_count(0)
    expect(page.locator("#agenda")).to_contain_text(case.case_ref)  # "not on the agenda now"
    confirmed(web_system, case)
    expect(row).to_be_visible(timeout=steps.AGENDA_TIMEOUT)
    expect(row.locator("time")).not_to_have_count(0)
    expect(row.locator(".badge").last).to_be_visible()
    page.goto(f"{web_system.url}/committee/agenda?association_id={ASSOCIATION}")
    expect(page.locator("#agenda tr.agenda-case").first).to_be_visible()
    shoot(page, "committee-agenda")


def test_three_members_vote_from_their_own_sessions_and_see_each_other(
    web_system: WebSystem, lang: str, shoot
) -> None:
    web = web_system
    case = on_agenda(web, lang)
    sitting_id = steps.open_sitting(web, lang, ASSOCIATION, PRESENT)
    chair = steps.seat_page(web, lang, "chair")
    chair.goto(f"{web.url}/committee/sittings?association_id={ASSOCIATION}")
    listed = chair.locator(f"tr.sitting[data-sitting-id='{sitting_id}']")
    expect(listed.locator(".badge.ok")).to_have_count(2)  # quorum met, and open
    shoot(chair, "committee-sittings")
    chair = steps.sitting_page(web, lang, "chair", sitting_id)
    expect(chair.locator(".quorum .badge.ok")).to_be_visible()
    # member-4 declares a conflict of interest; their vote is then refused, on the form.
    steps.recuse(web, lang, "member-4", sitting_id, case.case_ref, "A relative of the applicant")
    refused = steps.cast(web, lang, "member-4", sitting_id, case.case_ref, "approve")
    card = steps.case_card(refused, case.case_ref)
    expect(card.locator("form.vote-form .flash.error")).to_contain_text(REFUSED_RECUSED[lang])
    # Each member's page stays open while the others vote: their votes appear on it.
    pages = {seat: steps.sitting_page(web, lang, seat, sitting_id) for seat in PRESENT[:3]}
    cast = [("chair", "approve", None), ("member-2", "approve", None)]
    cast.append(("member-3", "reject", "The need is not shown in the file"))
    for seat, choice, dissent in cast:
        steps.vote(web, lang, seat, sitting_id, case.case_ref, choice, dissent)
    for seat, page in pages.items():
        card = steps.case_card(page, case.case_ref)
        for voter, choice, _ in cast:
            if voter != seat:  # the others' votes, without reloading the page
                vote_row = card.locator(f".vote[data-member='{voter}']")
                expect(vote_row).to_have_attribute("data-vote", choice)
        expect(card.locator(".recusal[data-member='member-4']")).to_be_visible()
    expect(steps.case_card(pages["member-3"], case.case_ref).locator(".mine")).to_be_visible()
    shoot(pages["member-3"], "committee-vote")
    steps.decide(web, lang, sitting_id, case.case_ref, "approved", ["The need is shown"])
    shoot(steps.seat_page(web, lang, "chair"), "committee-sitting")


def test_a_member_not_present_is_refused_clearly(web_system: WebSystem, lang: str) -> None:
    web = web_system
    case = on_agenda(web, lang)
    sitting_id = steps.open_sitting(web, lang, ASSOCIATION, PRESENT[:3])
    page = steps.cast(web, lang, "member-4", sitting_id, case.case_ref, "approve")
    card = steps.case_card(page, case.case_ref)
    refusal = card.locator("form.vote-form .flash.error")
    expect(refusal).to_contain_text(REFUSED_NOT_PRESENT[lang])
    # What they chose is still on the form; nothing was recorded.
    expect(card.locator("input[name=vote][value=approve]")).to_be_checked()
    expect(card.locator(".vote[data-member='member-4']")).to_have_count(0)


def test_the_chair_decides_closes_and_the_minutes_print_without_the_menu(
    web_system: WebSystem, lang: str, shoot
) -> None:
    web = web_system
    case = on_agenda(web, lang)
    sitting_id = steps.open_sitting(web, lang, ASSOCIATION, PRESENT[:3])
    # Before any vote the service refuses the decision: shown on the chair's form.
    chair = steps.sitting_page(web, lang, "chair", sitting_id)
    form = steps.case_card(chair, case.case_ref).locator("form.decision-form")
    form.locator("select[name=decision]").select_option("approved")
    form.locator("textarea[name=reasons]").fill("Too early")
    form.locator("button[type=submit]").click()
    card = steps.case_card(chair, case.case_ref)
    expect(card.locator("form.decision-form .flash.error")).to_be_visible()
    expect(card.locator("form.decision-form textarea[name=reasons]")).to_have_value("Too early")
    for seat, choice in (("chair", "reject"), ("member-2", "reject"), ("member-3", "approve")):
        dissent = "The family's need is clear" if choice == "approve" else None
        steps.vote(web, lang, seat, sitting_id, case.case_ref, choice, dissent)
    steps.decide(web, lang, sitting_id, case.case_ref, "rejected", ["The need is not shown"])
    steps.close_sitting(web, lang, sitting_id)
    chair.goto(f"{web.url}/committee/sittings/{sitting_id}/minutes")
    minutes = chair.locator(f".minutes-case[data-case-ref='{case.case_ref}']")
    expect(minutes).to_contain_text("The family's need is clear")
    expect(minutes).to_contain_text("The need is not shown")
    expect(chair.locator("header.top")).to_be_visible()
    chair.emulate_media(media="print")
    expect(chair.locator("header.top")).to_be_hidden()
    expect(chair.locator(".minutes h1")).to_be_visible()
    shoot(chair, "committee-minutes")
    chair.emulate_media(media="screen")
    chair.goto(f"{web.url}/committee/cases/{case.case_id}")
    expect(chair.locator(".attestation")).to_contain_text(case.applicant)


def test_the_case_file_shows_erased_once_the_applicant_is_erased(
    web_system: WebSystem, lang: str, shoot
) -> None:
    web = web_system
    case = submitted(web)
    referred_and_answered(web, case)
    confirmed(web, case)
    page = steps.seat_page(web, lang, "member-2")
    file_url = f"{web.url}/committee/cases/{case.case_id}"
    page.goto(file_url)
    expect(page.locator(".attestation")).to_contain_text(case.applicant)
    expect(page.locator(".referral .reason")).to_contain_text(REFERRAL["reason"])
    expect(page.locator(".referral .answers")).to_contain_text(REFERRAL["answer"])
    shoot(page, "committee-file")
    erasure = httpx.post(
        f"{web.system.services['privacy'].url}/associations/{ASSOCIATION}/erasures",
        headers=token(web, STAFF[PRIVACY_OFFICER]),
        json={
            "national_id": case.national_id,
            "reason": "The applicant asked to be forgotten",
            "legal_basis": "PDPL article 18",
        },
        timeout=30,
    )
    assert erasure.status_code == 201, erasure.text
    # The keys are destroyed at once; the committee learns of it a moment later:
    # the file is read again until it shows the erasure (the page does not poll).
    deadline = time.monotonic() + 30
    page.goto(file_url)
    while page.locator(".declaration-erased").count() == 0 and time.monotonic() < deadline:
        page.goto(file_url)
    expect(page.locator(".declaration-erased")).to_be_visible()
    expect(page.locator(".referral .answers .erased")).to_be_visible()
    expect(page.locator(".referral .note .erased")).to_be_visible()
    expect(page.locator("main")).not_to_contain_text(case.applicant)
    expect(page.locator("main")).not_to_contain_text(REFERRAL["answer"])


def test_the_committee_pages_refuse_another_role(web_system: WebSystem, lang: str) -> None:
    page = web_system.page(FRONT_DESK, lang)
    response = page.goto(f"{web_system.url}/committee/agenda")
    assert response is not None and response.status == 403
    expect(page.locator("nav.menu a[href='/committee/agenda']")).to_have_count(0)
