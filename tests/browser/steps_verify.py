"""Journey steps of the verifier and the social researcher, in the browser, and the
cases their tests start from (made through the services' APIs, as the front desk).

`confirm` and `answer_referral` are the journey's steps 3 and 4: each signs in
as the role's own person, finds the case in its queue by its reference (the
queue updates by itself, so the step waits for the case to appear) and acts.
"""

from __future__ import annotations

import random
import re
import time
from typing import Any
from uuid import uuid4

import httpx
from playwright.sync_api import Page, expect

from khidma.signin import STAFF
from khidma.simulate import ID_CARD, TEMPLATES, simulated_applicant
from shared.roles import FRONT_DESK, PRIVACY_OFFICER, RESEARCHER, VERIFIER
from tests.web import WebSystem

# How long a step waits for a case to reach a queue (through the stream).
APPEAR_MS = 30_000
EXPIRED_ID_CARD = {**ID_CARD, "expires_on": "2020-01-01"}


# The steps ----------------------------------------------------------------------------


def find_in_queue(page: Page, web: WebSystem, path: str, case_ref: str) -> None:
    """Opens the queue at `path`, searches for the reference and waits for its row."""
    page.goto(web.url + path)
    page.locator("form[role=search] input[name=ref]").fill(case_ref)
    page.locator("form[role=search] button[type=submit]").click()
    row = page.locator(f"#queue tr[data-case-ref='{case_ref}']")
    expect(row).to_be_visible(timeout=APPEAR_MS)
    row.locator("a").first.click()


def confirm(web: WebSystem, lang: str, case_ref: str) -> None:
    """As the verifier: finds the case in the queue, opens it, confirms the suggested
    outcome; returns once the queue no longer shows it as waiting."""
    page = web.page(VERIFIER, lang)
    find_in_queue(page, web, "/verification", case_ref)
    expect(page.locator(".case-file")).to_be_visible()
    page.locator(".confirm-form button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/verification$"))
    expect(page.locator(".flash.ok")).to_be_visible()
    waiting(page, web, case_ref, count=0)


def waiting(page: Page, web: WebSystem, case_ref: str, count: int) -> None:
    """The verifier's queue of waiting requests shows the case `count` times (it polls)."""
    page.goto(f"{web.url}/verification?status=pending&ref={case_ref}")
    expect(page.locator(f"#queue tr[data-case-ref='{case_ref}']")).to_have_count(
        count, timeout=APPEAR_MS
    )


def answer_referral(
    web: WebSystem, lang: str, case_ref: str, answers: list[str], note: str
) -> None:
    """As the researcher: finds the referral in the queue, answers each question in
    order, writes the note and closes the referral; returns once the answers show."""
    page = web.page(RESEARCHER, lang)
    find_in_queue(page, web, "/researcher", case_ref)
    boxes = page.locator(".referral textarea[name=answers]")
    expect(boxes).to_have_count(len(answers))
    for index, answer in enumerate(answers):
        boxes.nth(index).fill(answer)
    page.locator(".referral textarea[name=note]").fill(note)
    page.locator(".referral button[type=submit]").click()
    expect(page.locator(".flash.ok")).to_be_visible()
    closed = page.locator(".closed-referral").last
    for answer in answers:
        expect(closed.locator(".answers")).to_contain_text(answer)
    expect(closed.locator(".note")).to_contain_text(note)


def reload_until_erased(page: Page, where: str, erased: str, tries: int = 20) -> None:
    """Reloads until `where` shows the erased marker: a service keeps a key it opened
    for a few seconds (shared/personal/keyring.py), so an erasure shows soon, not at once."""
    for _ in range(tries - 1):
        page.reload()
        try:
            expect(page.locator(f"{where} .erased").first).to_contain_text(erased, timeout=1_000)
            return
        except AssertionError:
            continue
    page.reload()
    expect(page.locator(f"{where} .erased").first).to_contain_text(erased)


# Cases, through the services' APIs ----------------------------------------------------


def staff_token(web: WebSystem, role: str) -> str:
    """The role's person signs in with the password grant; their bearer token."""
    username = STAFF[role]
    response = httpx.post(
        web.system.services["identity"].url + "/oauth/token",
        data={
            "grant_type": "password",
            "username": username,
            "password": web.passwords[username],
        },
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def as_staff(web: WebSystem, role: str, service: str, path: str, body: dict[str, Any]) -> Any:
    response = httpx.post(
        web.system.services[service].url + path,
        json=body,
        headers={"Authorization": f"Bearer {staff_token(web, role)}"},
        timeout=30,
    )
    assert response.is_success, response.text
    return response.json()


def submit_case(
    web: WebSystem, association_id: str = "sidr", *, expired_card: bool = False
) -> dict[str, Any]:
    """A complete, attested request taken by the front desk: {case_id, case_ref,
    applicant}. With `expired_card`, its ID card had expired (discrepancies)."""
    template = TEMPLATES[association_id]
    applicant = simulated_applicant()
    documents = [
        EXPIRED_ID_CARD if expired_card and d is ID_CARD else d for d in template.documents
    ]
    answer = as_staff(
        web,
        FRONT_DESK,
        "intake",
        "/submissions",
        {
            "association_id": association_id,
            "channel": random.choice([c for c in template.channels if c != "website"]),
            "channel_ref": f"web-verify-{uuid4()}",
            "service_code": template.service_code,
            "applicant": applicant,
            "fields": dict(template.fields),
            "documents": documents,
            "attestation": {
                "attested": True,
                "method": "in_person",
                "attested_by": applicant["name"],
            },
        },
    )
    return {"case_id": answer["case_id"], "case_ref": answer["case_ref"], "applicant": applicant}


def refer(web: WebSystem, case_id: str, reason: str, questions: list[str]) -> None:
    """The front desk refers the case to the social researcher."""
    as_staff(
        web,
        FRONT_DESK,
        "intake",
        f"/cases/{case_id}/referral",
        {"reason": reason, "questions": questions},
    )


def correct_card(web: WebSystem, case: dict[str, Any], wait_seconds: float = 30.0) -> None:
    """The front desk sends the valid ID card verification asked for, once intake has
    heard of the discrepancies (until then it answers 409 no_corrections_asked)."""
    url = f"{web.system.services['intake'].url}/cases/{case['case_id']}/corrections"
    body = {
        "fields": {},
        "documents": [ID_CARD],
        "attestation": {
            "attested": True,
            "method": "in_person",
            "attested_by": case["applicant"]["name"],
        },
    }
    headers = {"Authorization": f"Bearer {staff_token(web, FRONT_DESK)}"}
    deadline = time.monotonic() + wait_seconds
    while True:
        response = httpx.post(url, json=body, headers=headers, timeout=30)
        if response.is_success or time.monotonic() > deadline or response.status_code != 409:
            break
        time.sleep(0.2)  # polling the API for the outcome to reach intake
    assert response.is_success, response.text


def erase(web: WebSystem, association_id: str, national_id: str) -> None:
    """The data protection officer erases the applicant (their keys are destroyed)."""
    as_staff(
        web,
        PRIVACY_OFFICER,
        "privacy",
        f"/associations/{association_id}/erasures",
        {
            "national_id": national_id,
            "reason": "The applicant asked to be erased",
            "legal_basis": "PDPL article 18",
        },
    )
