"""The committee's routes as every kind of caller; members vote with their own token."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.events import Applicant, Attestation
from tests import builders
from tests.access_matrix import Route, assert_every_route_declared, check_matrix
from tests.auth import as_role, as_roles, as_seat
from tests.in_process import InProcessService

pytestmark = pytest.mark.unit

Start = Callable[..., Awaitable[InProcessService]]
PRESENT = ["chair", "member-2", "member-3"]


async def a_case_on_the_agenda(committee: InProcessService) -> Any:
    now = datetime.now(UTC)
    signed = builders.request_received(
        case_ref="SDR-1448-000001",
        applicant=Applicant(national_id="1000000001", name="Applicant"),
        attestation=Attestation(
            attested=True, attested_by="Applicant", attested_at=now, data_hash="ef" * 32
        ),
    )
    await committee.deliver(signed, builders.data_verified(signed))
    await committee.settle()
    return signed


async def convene(committee: InProcessService) -> str:
    opened = await committee.client.post(
        "/sittings",
        json={"association_id": "sidr", "members_present": PRESENT},
        headers=as_seat("chair"),
    )
    assert opened.status_code == 201, opened.text
    return str(opened.json()["sitting_id"])


async def test_every_committee_route_declares_its_role_and_refuses_every_other_caller(
    in_process: Start,
) -> None:
    committee = await in_process("committee")
    case = (await a_case_on_the_agenda(committee)).case_id
    sitting = await convene(committee)
    on_case = f"/sittings/{sitting}/cases/{case}"
    readers = ("committee_member", "committee_chair", "auditor")
    member = ("committee_member", "committee_chair")
    routes = [
        Route("GET", "/agenda", "/agenda", readers, lists=True),
        Route("GET", "/awaiting-correction", "/awaiting-correction", readers, lists=True),
        Route("GET", "/deadlines", "/deadlines", readers, lists=True),
        Route("GET", "/researcher/queue", "/researcher/queue", ("researcher",), lists=True),
        Route("GET", f"/cases/{case}", "/cases/{case_id}", (*readers, "researcher")),
        Route(
            "POST", f"/referrals/{case}/closure", "/referrals/{case_id}/closure", ("researcher",),
            json={"answers": [], "note": ""},
        ),
        Route(
            "POST", "/sittings", "/sittings", ("committee_chair",),
            json={"association_id": "sidr", "members_present": PRESENT},
        ),
        Route("GET", f"/sittings/{sitting}", "/sittings/{sitting_id}", readers),
        Route("GET", f"/sittings/{sitting}/agenda", "/sittings/{sitting_id}/agenda", readers),
        Route("GET", f"/sittings/{sitting}/minutes", "/sittings/{sitting_id}/minutes", readers),
        Route(
            "POST", f"{on_case}/recusals", "/sittings/{sitting_id}/cases/{case_id}/recusals",
            member, json={"reason": "a relative"},
        ),
        Route(
            "POST", f"{on_case}/votes", "/sittings/{sitting_id}/cases/{case_id}/votes", member,
            json={"vote": "abstain"},
        ),
        Route(
            "POST", f"{on_case}/decision", "/sittings/{sitting_id}/cases/{case_id}/decision",
            ("committee_chair",), json={"decision": "rejected", "reasons": ["matrix"]},
        ),
        Route("POST", f"/sittings/{sitting}/close", "/sittings/{sitting_id}/close", ("committee_chair",)),
    ]
    assert_every_route_declared(committee.api, routes)
    assert await check_matrix(committee.client, routes) == []


async def test_three_members_vote_each_with_their_own_token_and_the_body_names_no_one(
    in_process: Start,
) -> None:
    committee = await in_process("committee")
    case = (await a_case_on_the_agenda(committee)).case_id
    sitting = await convene(committee)
    votes = f"/sittings/{sitting}/cases/{case}/votes"
    for seat in PRESENT:
        # The body names another member: it has no effect, the token decides who votes.
        cast = await committee.client.post(
            votes, json={"member": "member-4", "vote": "approve"}, headers=as_seat(seat)
        )
        assert cast.status_code == 201, cast.text
    status = (
        await committee.client.get(f"/sittings/{sitting}", headers=as_seat("chair"))
    ).json()
    [on_this_case] = [c for c in status["cases"] if c["case_id"] == str(case)]
    assert sorted(v["member"] for v in on_this_case["votes"]) == sorted(PRESENT)

    absent = await committee.client.post(votes, json={"vote": "approve"}, headers=as_seat("member-4"))
    assert absent.status_code == 409 and absent.json()["message"]["ar"]
    stranger = await committee.client.post(
        votes, json={"vote": "approve"}, headers=as_role("committee_member", subject="someone")
    )
    assert stranger.status_code in (403, 409) and stranger.json()["message"]["ar"]
    elsewhere = await committee.client.post(
        votes,
        json={"vote": "approve"},
        headers=as_roles({"health-coop": ["committee_member"]}, subject="member-2"),
    )
    assert elsewhere.status_code == 403
    not_chair = await committee.client.post(
        f"/sittings/{sitting}/cases/{case}/decision",
        json={"decision": "approved", "reasons": ["votes"]},
        headers=as_seat("member-2"),
    )
    assert not_chair.status_code == 403
    decided = await committee.client.post(
        f"/sittings/{sitting}/cases/{case}/decision",
        json={"decision": "approved", "reasons": ["votes"]},
        headers=as_seat("chair"),
    )
    assert decided.status_code == 202, decided.text
