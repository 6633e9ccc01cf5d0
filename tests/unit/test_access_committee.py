"""Who may call the committee, and who its records say acted.

The committee's API in process (its real application, routes and read model on
a SQLite store, no NATS), called with the tests' issuer's tokens: the access
matrix over every route, members voting with their own tokens (a seat of the
association's committee, present at the sitting), the chair's commands, the
researcher's closure, the lists narrowed to the associations held, and the
access log of the case file.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from services.committee.integration import TRANSLATORS, committee_decided
from shared.access_log import CASE_FILE
from shared.events import Applicant, Attestation, CommitteeDecided, RequestReceived
from shared.roles import (
    AUDITOR,
    COMMITTEE_CHAIR,
    COMMITTEE_MEMBER,
    FRONT_DESK,
    RESEARCHER,
    VERIFIER,
)
from tests import builders
from tests.access_matrix import Route, assert_every_route_declared, check_matrix
from tests.auth import as_role, as_roles, as_seat
from tests.in_process import InProcessService

pytestmark = pytest.mark.unit

Start = Callable[..., Awaitable[InProcessService]]

READERS = (COMMITTEE_MEMBER, COMMITTEE_CHAIR, AUDITOR)
VOTERS = (COMMITTEE_MEMBER, COMMITTEE_CHAIR)
PRESENT = ["chair", "member-2", "member-3"]


def chair(association_id: str = "sidr") -> dict[str, str]:
    """The chair's seat: a member of the committee and its chair."""
    return as_seat("chair", association_id)


def member(seat: str, association_id: str = "sidr") -> dict[str, str]:
    """A seat's member, signed in with the seat's id (a seat of no pack: a stranger)."""
    return as_seat(seat, association_id)


def ready_request(association_id: str = "sidr", case_ref: str | None = None) -> RequestReceived:
    return builders.request_received(
        association_id=association_id,
        case_ref=case_ref or f"SDR-1448-{uuid4().int % 1_000_000:06d}",
        applicant=Applicant(national_id="1000000001", name="Applicant"),
        attestation=Attestation(
            attested=True,
            attested_by="Applicant",
            attested_at=datetime.now(UTC),
            data_hash="ef" * 32,
        ),
    )


async def ready_case(committee: InProcessService, association_id: str = "sidr") -> RequestReceived:
    """An attested, verified request on the agenda of the association's committee."""
    request = ready_request(association_id)
    await committee.deliver(request, builders.data_verified(request))
    await committee.settle()
    return request


async def convene(committee: InProcessService, present: list[str] = PRESENT) -> str:
    response = await committee.client.post(
        "/sittings",
        json={"association_id": "sidr", "members_present": present},
        headers=chair(),
    )
    assert response.status_code == 201, response.text
    return str(response.json()["sitting_id"])


def stored(committee: InProcessService, topic_part: str) -> list[Any]:
    """The committee's stored domain events whose topic contains `topic_part`."""
    app = committee.app
    return [
        app.mapper.to_domain_event(n)
        for n in app.read_notifications(0, 10_000)
        if topic_part in n.topic
    ]


# The access matrix --------------------------------------------------------------------


async def test_every_committee_route_needs_its_role_in_the_records_association(
    in_process: Start,
) -> None:
    committee = await in_process("committee")
    request = await ready_case(committee)
    referred = builders.referred_to_researcher(ready_request())
    await committee.deliver(referred)
    sitting_id, closing_id = await convene(committee), await convene(committee)
    case_id, referred_id = request.case_id, referred.case_id
    in_sitting = f"/sittings/{sitting_id}/cases/{case_id}"
    routes = [
        Route("GET", "/agenda", "/agenda", READERS, lists=True),
        Route("GET", "/awaiting-correction", "/awaiting-correction", READERS, lists=True),
        Route("GET", "/deadlines", "/deadlines", READERS, lists=True),
        Route("GET", "/researcher/queue", "/researcher/queue", (RESEARCHER,), lists=True),
        Route(
            "GET",
            f"/cases/{case_id}",
            "/cases/{case_id}",
            (COMMITTEE_MEMBER, COMMITTEE_CHAIR, RESEARCHER, AUDITOR),
        ),
        Route(
            "GET",
            f"/cases/{case_id}/file",
            "/cases/{case_id}/file",
            (COMMITTEE_MEMBER, COMMITTEE_CHAIR, RESEARCHER),
        ),
        Route(
            "POST",
            f"/referrals/{referred_id}/closure",
            "/referrals/{case_id}/closure",
            (RESEARCHER,),
            json={"answers": ["the ID card"], "note": "explained"},
        ),
        Route(
            "POST",
            "/sittings",
            "/sittings",
            (COMMITTEE_CHAIR,),
            json={"association_id": "sidr", "members_present": PRESENT},
        ),
        Route("GET", "/sittings", "/sittings", READERS, lists=True),
        Route("GET", f"/sittings/{sitting_id}", "/sittings/{sitting_id}", READERS),
        Route("GET", f"/sittings/{sitting_id}/agenda", "/sittings/{sitting_id}/agenda", READERS),
        Route("GET", f"/sittings/{sitting_id}/minutes", "/sittings/{sitting_id}/minutes", READERS),
        Route(
            "POST",
            f"{in_sitting}/votes",
            "/sittings/{sitting_id}/cases/{case_id}/votes",
            VOTERS,
            json={"vote": "approve"},
            subject="member-2",
        ),
        Route(
            "POST",
            f"{in_sitting}/recusals",
            "/sittings/{sitting_id}/cases/{case_id}/recusals",
            VOTERS,
            json={"reason": "a relative"},
            subject="member-3",
        ),
        Route(
            "POST",
            f"{in_sitting}/decision",
            "/sittings/{sitting_id}/cases/{case_id}/decision",
            (COMMITTEE_CHAIR,),
            json={"decision": "approved", "reasons": ["complete"]},
        ),
        Route(
            "POST",
            f"/sittings/{closing_id}/close",
            "/sittings/{sitting_id}/close",
            (COMMITTEE_CHAIR,),
        ),
    ]
    assert_every_route_declared(committee.api, routes)
    assert await check_matrix(committee.client, routes) == []


# Members vote with their own tokens ----------------------------------------------------


async def test_three_members_vote_each_with_their_own_token_and_the_chair_decides(
    in_process: Start,
) -> None:
    committee = await in_process("committee")
    request = await ready_case(committee)
    sitting_id = await convene(committee)
    in_sitting = f"/sittings/{sitting_id}/cases/{request.case_id}"
    for seat in PRESENT:
        headers = chair() if seat == "chair" else member(seat)
        response = await committee.client.post(
            f"{in_sitting}/votes", json={"vote": "approve"}, headers=headers
        )
        assert response.status_code == 201, response.text
    votes = response.json()["votes"]
    assert [v["member"] for v in votes] == PRESENT

    decided = await committee.client.post(
        f"{in_sitting}/decision",
        json={"decision": "approved", "reasons": ["complete"]},
        headers=chair(),
    )
    assert decided.status_code == 202, decided.text
    closed = await committee.client.post(f"/sittings/{sitting_id}/close", headers=chair())
    assert closed.status_code == 200 and closed.json()["closed"] is True

    cast = stored(committee, "Sitting.VoteCast")
    assert [(e.member, e.actor["id"], e.actor["role"]) for e in cast] == [
        ("chair", "chair", COMMITTEE_MEMBER),
        ("member-2", "member-2", COMMITTEE_MEMBER),
        ("member-3", "member-3", COMMITTEE_MEMBER),
    ]
    assert cast[1].actor == {
        "kind": "committee",
        "id": "member-2",
        "name": "Seat member-2",
        "role": COMMITTEE_MEMBER,
    }
    # The chair opened the sitting, recorded the decision and closed the sitting.
    for topic in ("Sitting.Convened", "Sitting.DecisionRecorded", "Sitting.Closed"):
        (event, *_) = stored(committee, topic)
        assert event.actor["id"] == "chair" and event.actor["role"] == COMMITTEE_CHAIR, topic
    (published,) = [
        committee_decided(committee.app.mapper.to_domain_event(n))
        for n in committee.app.read_notifications(0, 1000, tuple(TRANSLATORS))
    ]
    assert isinstance(published, CommitteeDecided)
    assert (published.actor.kind, published.actor.id, published.actor.role) == (
        "committee",
        "chair",
        COMMITTEE_CHAIR,
    )
    assert [v.member for v in published.payload.votes] == PRESENT


async def test_three_members_vote_each_with_their_own_token_and_the_body_names_no_one(
    in_process: Start,
) -> None:
    committee = await in_process("committee")
    case = (await ready_case(committee)).case_id
    sitting = await convene(committee)
    votes = f"/sittings/{sitting}/cases/{case}/votes"
    for seat in PRESENT:
        # The body names another member: it has no effect, the token decides who votes.
        cast = await committee.client.post(
            votes, json={"member": "member-4", "vote": "approve"}, headers=as_seat(seat)
        )
        assert cast.status_code == 201, cast.text
    status = (await committee.client.get(f"/sittings/{sitting}", headers=as_seat("chair"))).json()
    [on_this_case] = [c for c in status["cases"] if c["case_id"] == str(case)]
    assert sorted(v["member"] for v in on_this_case["votes"]) == sorted(PRESENT)

    absent = await committee.client.post(
        votes, json={"vote": "approve"}, headers=as_seat("member-4")
    )
    assert absent.status_code == 409 and absent.json()["message"]["ar"]
    assert absent.json()["error"] == "not_present"
    stranger = await committee.client.post(
        votes, json={"vote": "approve"}, headers=as_role("committee_member", subject="someone")
    )
    assert stranger.status_code == 403 and stranger.json()["message"]["ar"]
    assert stranger.json()["error"] == "not_a_committee_member"
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


async def test_a_body_naming_another_member_has_no_effect(in_process: Start) -> None:
    committee = await in_process("committee")
    request = await ready_case(committee)
    sitting_id = await convene(committee)
    in_sitting = f"/sittings/{sitting_id}/cases/{request.case_id}"
    voted = await committee.client.post(
        f"{in_sitting}/votes",
        json={"member": "member-3", "vote": "reject"},
        headers=member("member-2"),
    )
    assert voted.status_code == 201, voted.text
    assert voted.json()["votes"] == [{"member": "member-2", "vote": "reject", "dissent_note": None}]
    recused = await committee.client.post(
        f"{in_sitting}/recusals",
        json={"member": "chair", "reason": "a relative"},
        headers=member("member-3"),
    )
    assert recused.status_code == 201, recused.text
    assert recused.json()["recusals"] == [{"member": "member-3", "reason": "a relative"}]
    assert [e.actor["id"] for e in stored(committee, "Sitting.MemberRecused")] == ["member-3"]


async def test_a_vote_by_someone_without_a_seat_is_refused(in_process: Start) -> None:
    committee = await in_process("committee")
    request = await ready_case(committee)
    sitting_id = await convene(committee)
    in_sitting = f"/sittings/{sitting_id}/cases/{request.case_id}"
    # The role in the association, but no seat on its committee.
    for path, body in (("votes", {"vote": "approve"}), ("recusals", {"reason": "x"})):
        response = await committee.client.post(
            f"{in_sitting}/{path}", json=body, headers=member("stranger")
        )
        assert response.status_code == 403, response.text
        assert response.json()["error"] == "not_a_committee_member"
        assert response.json()["message"]["ar"] and response.json()["message"]["en"]
    assert stored(committee, "Sitting.VoteCast") == []
    assert stored(committee, "Sitting.MemberRecused") == []


async def test_a_seat_not_present_at_the_sitting_is_refused(in_process: Start) -> None:
    committee = await in_process("committee")
    request = await ready_case(committee)
    sitting_id = await convene(committee, PRESENT)  # member-4 is absent
    in_sitting = f"/sittings/{sitting_id}/cases/{request.case_id}"
    for path, body in (("votes", {"vote": "approve"}), ("recusals", {"reason": "x"})):
        response = await committee.client.post(
            f"{in_sitting}/{path}", json=body, headers=member("member-4")
        )
        assert response.status_code == 409, response.text
        assert response.json()["error"] == "not_present"
        assert response.json()["message"]["ar"] and response.json()["message"]["en"]
    assert stored(committee, "Sitting.VoteCast") == []


async def test_another_associations_committee_role_is_refused(in_process: Start) -> None:
    committee = await in_process("committee")
    request = await ready_case(committee)
    sitting_id = await convene(committee)
    in_sitting = f"/sittings/{sitting_id}/cases/{request.case_id}"
    # member-2's seat id, but a member of health-coop's committee only.
    elsewhere = member("member-2", "health-coop")
    vote = await committee.client.post(
        f"{in_sitting}/votes", json={"vote": "approve"}, headers=elsewhere
    )
    assert vote.status_code == 403 and vote.json()["error"] == "forbidden"
    other_chair = chair("health-coop")
    for method, path, body in (
        ("POST", "/sittings", {"association_id": "sidr", "members_present": PRESENT}),
        ("POST", f"{in_sitting}/decision", {"decision": "approved", "reasons": ["x"]}),
        ("POST", f"/sittings/{sitting_id}/close", None),
        ("GET", f"/sittings/{sitting_id}/minutes", None),
    ):
        response = await committee.client.request(method, path, json=body, headers=other_chair)
        assert response.status_code == 403, (path, response.text)
    assert stored(committee, "Sitting.VoteCast") == []
    assert len(stored(committee, "Sitting.Convened")) == 1


async def test_an_unknown_association_or_sitting_is_404_to_a_chair(in_process: Start) -> None:
    committee = await in_process("committee")
    nowhere = await committee.client.post(
        "/sittings",
        json={"association_id": "nowhere", "members_present": ["chair"]},
        headers=chair(),
    )
    assert nowhere.status_code == 404 and nowhere.json()["error"] == "unknown_association"
    missing = await committee.client.get(f"/sittings/{uuid4()}", headers=chair())
    assert missing.status_code == 404 and missing.json()["error"] == "sitting_not_found"
    # Someone with no committee role anywhere learns nothing.
    outsider = await committee.client.get(f"/sittings/{uuid4()}", headers=as_role(FRONT_DESK))
    assert outsider.status_code == 403


# The researcher --------------------------------------------------------------------------


async def test_the_researcher_recorded_is_the_caller_not_the_body(in_process: Start) -> None:
    committee = await in_process("committee")
    referral = builders.referred_to_researcher(ready_request())
    await committee.deliver(referral)
    headers = as_role(RESEARCHER, subject="researcher-9", name="Researcher Nine")
    closed = await committee.client.post(
        f"/referrals/{referral.case_id}/closure",
        json={
            "researcher": "researcher-1",
            "answers": ["the ID card"],
            "note": "six in the family",
        },
        headers=headers,
    )
    assert closed.status_code == 202, closed.text
    (event,) = stored(committee, "CommitteeCase.ReferralClosed")
    assert event.researcher == "researcher-9"
    assert event.actor == {
        "kind": "researcher",
        "id": "researcher-9",
        "name": "Researcher Nine",
        "role": RESEARCHER,
    }
    await committee.settle()
    doc = (await committee.client.get(f"/cases/{referral.case_id}", headers=headers)).json()
    assert doc["referral"]["researcher"] == "researcher-9"
    # A researcher of another association cannot close it.
    other = builders.referred_to_researcher(ready_request())
    await committee.deliver(other)
    refused = await committee.client.post(
        f"/referrals/{other.case_id}/closure",
        json={"answers": ["x"]},
        headers=as_role(RESEARCHER, "health-coop"),
    )
    assert refused.status_code == 403


# The lists -----------------------------------------------------------------------------


async def test_the_lists_show_only_the_associations_where_the_caller_holds_the_role(
    in_process: Start,
) -> None:
    committee = await in_process("committee")
    in_sidr = await ready_case(committee, "sidr")
    in_health = await ready_case(committee, "health-coop")
    for referral in (
        builders.referred_to_researcher(ready_request("sidr")),
        builders.referred_to_researcher(ready_request("health-coop")),
    ):
        await committee.deliver(referral)
    await committee.settle()

    async def listed(path: str, headers: dict[str, str], **params: Any) -> set[str]:
        response = await committee.client.get(path, headers=headers, params=params)
        assert response.status_code == 200, response.text
        return {doc["association_id"] for doc in response.json()}

    sidr_member = member("member-2")
    assert await listed("/agenda", sidr_member) == {"sidr"}
    assert await listed("/agenda", as_role(AUDITOR, "health-coop")) == {"health-coop"}
    both = as_roles({"sidr": [COMMITTEE_MEMBER], "health-coop": [AUDITOR]}, subject="both")
    agenda = (await committee.client.get("/agenda", headers=both)).json()
    assert {doc["case_id"] for doc in agenda} == {str(in_sidr.case_id), str(in_health.case_id)}
    assert await listed("/agenda", both, association_id="health-coop") == {"health-coop"}
    assert await listed("/researcher/queue", as_role(RESEARCHER)) == {"sidr"}
    forbidden = await committee.client.get(
        "/agenda", headers=sidr_member, params={"association_id": "health-coop"}
    )
    assert forbidden.status_code == 403
    # A researcher does not read the committee's agenda, nor a verifier the queue.
    assert (await committee.client.get("/agenda", headers=as_role(RESEARCHER))).status_code == 403
    queue = await committee.client.get("/researcher/queue", headers=as_role(VERIFIER))
    assert queue.status_code == 403


async def test_the_researcher_finds_one_referred_case_by_its_reference(
    in_process: Start,
) -> None:
    committee = await in_process("committee")
    first, second = ready_request(), ready_request()
    for request in (first, second):
        await committee.deliver(builders.referred_to_researcher(request))
    await committee.settle()
    queue = await committee.client.get(
        "/researcher/queue",
        headers=as_role(RESEARCHER),
        params={"case_ref": f" {second.case_ref.lower()} "},
    )
    assert queue.status_code == 200, queue.text
    assert [doc["case_id"] for doc in queue.json()] == [str(second.case_id)]


async def test_a_case_of_another_association_is_not_shown(in_process: Start) -> None:
    committee = await in_process("committee")
    request = await ready_case(committee, "health-coop")
    response = await committee.client.get(f"/cases/{request.case_id}", headers=member("member-2"))
    assert response.status_code == 403


# The case file and its access log ------------------------------------------------------


async def test_the_case_file_shows_what_the_committee_holds_and_logs_each_read(
    in_process: Start,
) -> None:
    committee = await in_process("committee")
    request = ready_request()
    referral = builders.referred_to_researcher(
        request, reason="unclear procedures", questions=["which documents are needed?"]
    )
    await committee.deliver(request, builders.data_verified(request), referral)
    researcher = as_role(RESEARCHER, subject="researcher-9", name="Researcher Nine")
    await committee.client.post(
        f"/referrals/{request.case_id}/closure",
        json={"answers": ["the ID card"], "note": "six in the family"},
        headers=researcher,
    )

    response = await committee.client.get(f"/cases/{request.case_id}/file", headers=researcher)
    assert response.status_code == 200, response.text
    file = response.json()
    assert file["case_ref"] == request.case_ref and file["association_id"] == "sidr"
    assert file["request"]["service_code"] == request.payload.service_code
    assert file["request"]["attested"] is True
    assert file["request"]["attestation"]["data_hash"] == "ef" * 32
    assert [r["revision"] for r in file["request"]["revisions"]] == [1]
    assert file["verification"]["outcome"] == "verified"
    assert file["verification"]["of_current_revision"] is True
    (referred,) = file["referrals"]
    assert referred["questions"] == ["which documents are needed?"]
    assert referred["note"] == "six in the family" and referred["researcher"] == "researcher-9"

    (read,) = stored(committee, "Access.Recorded")
    assert read.what == CASE_FILE and read.record_id == str(request.case_id)
    assert read.association_id == "sidr"
    assert read.actor == {
        "kind": "researcher",
        "id": "researcher-9",
        "name": "Researcher Nine",
        "role": RESEARCHER,
    }
    again = await committee.client.get(f"/cases/{request.case_id}/file", headers=chair())
    assert again.status_code == 200
    assert [e.actor["id"] for e in stored(committee, "Access.Recorded")] == [
        "researcher-9",
        "chair",
    ]

    # Refused reads record nothing: an auditor, another association's member, no token.
    for headers in (as_role(AUDITOR), member("member-2", "health-coop"), {}):
        refused = await committee.client.get(f"/cases/{request.case_id}/file", headers=headers)
        assert refused.status_code in (401, 403)
    unknown = await committee.client.get(f"/cases/{uuid4()}/file", headers=chair())
    assert unknown.status_code == 404
    assert len(stored(committee, "Access.Recorded")) == 2
