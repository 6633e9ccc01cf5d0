"""Cases for the oversight screens' tests, made through the services' APIs as the
staff who make them (each signed in with their own password), not through screens."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import uuid4

import httpx

from khidma.signin import STAFF, IdentityStaff
from khidma.simulate import EXPIRED_ID_CARD, TEMPLATES, CaseDriver, CaseRun, Endpoints, Scenario
from khidma.simulate import simulated_applicant
from shared.roles import FRONT_DESK, VERIFIER
from tests.web import WebSystem


def url(web: WebSystem, service: str) -> str:
    return web.system.services[service].url


def headers(web: WebSystem, role: str) -> dict[str, str]:
    username = STAFF[role]
    answer = httpx.post(
        url(web, "identity") + "/oauth/token",
        data={"grant_type": "password", "username": username, "password": web.passwords[username]},
    )
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def submit_case(web: WebSystem, association: str = "sidr", *, expired_card: bool = False) -> dict[str, Any]:
    """A complete request from the front desk; its case id and reference."""
    template = TEMPLATES[association]
    applicant = simulated_applicant()
    body = {
        "association_id": association,
        "channel": template.channels[0],
        "channel_ref": f"oversight-{uuid4()}",
        "service_code": template.service_code,
        "applicant": applicant,
        "fields": dict(template.fields),
        "documents": [EXPIRED_ID_CARD if expired_card else d for d in template.documents],
        "attestation": {"attested": True, "method": "in_person", "attested_by": applicant["name"]},
    }
    answer = httpx.post(url(web, "intake") + "/submissions", json=body, headers=headers(web, FRONT_DESK))
    assert answer.status_code == 201, answer.text
    return answer.json()


def override_verification(web: WebSystem, case_id: str, reason: str) -> None:
    """The verifier confirms a request whose checks failed, overriding them with a reason."""
    verifier = headers(web, VERIFIER)
    deadline = time.monotonic() + 30
    while True:
        found = httpx.get(url(web, "verification") + f"/verifications/{case_id}", headers=verifier)
        if found.status_code == 200:
            break
        assert time.monotonic() < deadline, f"no verification of {case_id}: {found.text}"
        time.sleep(0.2)
    answer = httpx.post(
        url(web, "verification") + f"/verifications/{case_id}/confirmation",
        json={"outcome": "verified", "reason": reason},
        headers=verifier,
    )
    assert answer.status_code in (200, 202), answer.text


def drive_cases(web: WebSystem, kinds: list[str], association: str = "sidr") -> list[CaseRun]:
    """Whole cases, as the simulator lives them (to the applicant's survey answer)."""

    async def drive() -> list[CaseRun]:
        async with httpx.AsyncClient(timeout=30) as client:
            endpoints = Endpoints.from_mapping(web.system.endpoints())
            staff = IdentityStaff(f"{endpoints.identity}/oauth/token", web.passwords, client)
            driver = CaseDriver(client, endpoints, step_timeout=30, staff=staff)
            return list(await asyncio.gather(*(driver.run(Scenario(k, association)) for k in kinds)))

    # In a thread of its own: the browser's sync API holds this thread's event loop.
    with ThreadPoolExecutor(1) as pool:
        runs = pool.submit(asyncio.run, drive()).result()
    for run in runs:
        assert run.error is None, run.error
    return runs
