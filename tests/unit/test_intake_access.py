"""Who may call intake, who intake records as having acted, and the applicant's
secret code: intake's HTTP API in process (real application, routes and read
model on a temporary SQLite store), called with the tests' tokens."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from services.intake.domain import Case
from services.intake.integration import TRANSLATORS, translators
from shared.access_log import CASE_FILE, Access
from shared.events import Correction
from shared.roles import (
    AUDITOR,
    COMMITTEE_CHAIR,
    COMMITTEE_MEMBER,
    FRONT_DESK,
    RESEARCHER,
    SURVEYS_OFFICER,
    VERIFIER,
)
from tests import builders
from tests.access_matrix import Route, assert_every_route_declared, check_matrix
from tests.auth import as_adapter, as_role, as_roles, as_staff
from tests.in_process import InProcessService

pytestmark = pytest.mark.unit

Start = Callable[..., Awaitable[InProcessService]]

CASE_READERS = (FRONT_DESK, VERIFIER, RESEARCHER, COMMITTEE_MEMBER, COMMITTEE_CHAIR, AUDITOR)
ADAPTER = as_adapter(["website"], ["sidr"])
STAFF = as_staff()
SUBMISSION: dict[str, Any] = {
    "association_id": "sidr",
    "channel": "website",
    "channel_ref": "form-1",
    "service_code": "seedlings",
    "applicant": {"national_id": "1000000008", "name": "علي", "phone": "0500000000"},
    "fields": {"planting_site": "وادي حنيفة", "seedling_count": 20},
    "documents": [{"code": "national_id_card", "number": "1000000008", "expires_on": "2030-01-01"}],
    "attestation": {"attested": True, "method": "one_time_code"},
}
INCOMPLETE = {**SUBMISSION, "channel_ref": "form-2", "documents": [], "attestation": None}


def submission(**overrides: Any) -> dict[str, Any]:
    return {**SUBMISSION, "channel_ref": f"form-{uuid4().hex[:8]}", **overrides}


async def submit(intake: InProcessService, body: dict[str, Any], headers=ADAPTER) -> dict[str, Any]:
    response = await intake.client.post("/submissions", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def stored(intake: InProcessService, case_id: str, kind: type) -> list[Any]:
    return [e for e in intake.app.events.get(UUID(case_id)) if isinstance(e, kind)]


def positions(intake: InProcessService) -> int:
    return intake.app.max_notification_id()


def access_log(intake: InProcessService) -> list[Any]:
    topic = get_topic(Access.Recorded)
    return [
        intake.app.mapper.to_domain_event(n)
        for n in intake.app.read_notifications(0, 10_000, topics=[topic])
    ]


async def discrepancies_found(intake: InProcessService, case_id: str) -> None:
    """Verification (played here) asks the applicant to correct the national ID."""
    (completed,) = stored(intake, case_id, Case.Completed)
    received = translators(intake.app.sealer)[get_topic(Case.Completed)](completed)
    await intake.deliver(
        builders.data_verified(
            received,
            outcome="discrepancies",
            corrections=[Correction(field="national_id", ar="صحح رقم الهوية", en="Fix the ID")],
        )
    )


# The access matrix -------------------------------------------------------------------


async def test_every_intake_route_declares_who_may_call_it(in_process: Start) -> None:
    intake = await in_process("intake")
    case = await submit(intake, INCOMPLETE)
    await intake.settle()
    case_id, case_ref = case["case_id"], case["case_ref"]
    routes = [
        Route("POST", "/submissions", "/submissions", (FRONT_DESK,), json=submission()),
        Route(
            "POST",
            "/eligibility",
            "/eligibility",
            (),
            json={"association_id": "sidr", "service_code": "seedlings", "fields": {}},
        ),
        Route("GET", "/associations", "/associations", ()),
        Route("GET", "/associations/sidr", "/associations/{association_id}", ()),
        Route(
            "POST",
            f"/cases/{case_id}/information",
            "/cases/{case_id}/information",
            (FRONT_DESK,),
            json={"fields": {"seedling_count": 20}},
        ),
        Route(
            "POST",
            f"/cases/{case_ref}/corrections",
            "/cases/{case_key}/corrections",
            (FRONT_DESK,),
            json={"fields": {"seedling_count": 5}},
        ),
        Route("GET", f"/cases/{case_ref}/status", "/cases/{case_ref}/status", ()),
        Route("GET", f"/cases/{case_ref}", "/cases/{case_key}", CASE_READERS),
        Route("GET", "/cases", "/cases", CASE_READERS, params={"association_id": "sidr"}),
        Route("GET", "/cases", "/cases", CASE_READERS, lists=True),
        Route("GET", f"/cases/{case_id}/file", "/cases/{case_key}/file", CASE_READERS),
        Route(
            "POST",
            f"/cases/{case_id}/referral",
            "/cases/{case_id}/referral",
            (FRONT_DESK,),
            json={"reason": "unclear"},
        ),
        Route(
            "POST",
            f"/cases/{case_id}/delivery",
            "/cases/{case_id}/delivery",
            (FRONT_DESK,),
            json={"delivered": "seedlings"},
        ),
    ]
    assert_every_route_declared(intake.api, routes)
    assert await check_matrix(intake.client, routes) == []


@pytest.mark.parametrize("role", CASE_READERS)
async def test_each_staff_role_reads_a_case_of_its_association(in_process: Start, role: str) -> None:
    intake = await in_process("intake")
    case = await submit(intake, submission())
    await intake.settle()
    mine = as_role(role, "sidr")
    assert (await intake.client.get(f"/cases/{case['case_ref']}", headers=mine)).status_code == 200
    assert (await intake.client.get(f"/cases/{case['case_id']}/file", headers=mine)).status_code == 200
    elsewhere = as_role(role, "health-coop")
    refused = await intake.client.get(f"/cases/{case['case_ref']}", headers=elsewhere)
    assert refused.status_code == 403
    assert case["case_ref"] not in refused.text


async def test_an_unknown_case_is_404_for_staff_and_403_for_anyone_else(in_process: Start) -> None:
    intake = await in_process("intake")
    for path in ("/cases/SDR-1448-999999", f"/cases/{uuid4()}/file"):
        assert (await intake.client.get(path, headers=as_role(AUDITOR))).status_code == 404
        outsider = await intake.client.get(path, headers=as_role(SURVEYS_OFFICER))
        assert outsider.status_code == 403 and outsider.json()["message"]["ar"]
    unknown = f"/cases/{uuid4()}/referral"
    officer = await intake.client.post(unknown, json={"reason": "x"}, headers=as_role(FRONT_DESK))
    assert officer.status_code == 404
    verifier = await intake.client.post(unknown, json={"reason": "x"}, headers=as_role(VERIFIER))
    assert verifier.status_code == 403


async def test_an_adapter_submits_only_on_its_channels_in_its_associations(
    in_process: Start,
) -> None:
    intake = await in_process("intake")
    before = positions(intake)
    for headers in (
        as_adapter(["phone"], ["sidr"]),  # another channel
        as_adapter(["website"], ["health-coop"]),  # another association
        as_role(VERIFIER, "sidr"),  # staff who do not receive requests
    ):
        refused = await intake.client.post("/submissions", json=submission(), headers=headers)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"] == "forbidden" and refused.json()["message"]["ar"]
    assert positions(intake) == before
    by_adapter = await submit(intake, submission(), as_adapter(["website"], ["sidr"]))
    at_the_desk = await submit(
        intake,
        submission(channel="interview", applicant={"national_id": "2", "name": "B"}),
        as_role(FRONT_DESK),
    )
    assert by_adapter["case_ref"] != at_the_desk["case_ref"]


async def test_an_unserved_association_or_channel_is_still_the_packs_422(in_process: Start) -> None:
    intake = await in_process("intake")
    for override, code in (
        ({"association_id": "nowhere"}, "unknown_association"),
        ({"channel": "branch_office"}, "channel_not_enabled"),
    ):
        response = await intake.client.post(
            "/submissions", json=submission(**override), headers=STAFF
        )
        assert response.status_code == 422 and response.json()["error"] == code


# The recorded actor ------------------------------------------------------------------


async def test_the_recorded_actor_is_the_caller_whatever_the_body_names(in_process: Start) -> None:
    intake = await in_process("intake")
    officer = as_role(FRONT_DESK, subject="officer-7", name="Huda")
    expected = {"kind": "officer", "id": "officer-7", "name": "Huda", "role": FRONT_DESK}

    adapter = await submit(intake, submission(), as_adapter(["website"], ["sidr"]))
    (submitted,) = stored(intake, adapter["case_id"], Case.Submitted)
    assert submitted.actor == {
        "kind": "adapter",
        "id": "adapter-tests",
        "name": "adapter-tests",
        "role": "channel:website",
    }

    desk = {**INCOMPLETE, "channel": "interview", "applicant": {"national_id": "2", "name": "B"}}
    case = await submit(intake, desk, officer)
    case_id = case["case_id"]
    (submitted,) = stored(intake, case_id, Case.Submitted)
    assert submitted.actor == expected

    added = await intake.client.post(
        f"/cases/{case_id}/information",
        json={"documents": SUBMISSION["documents"], "added_by": "someone-else"},
        headers=officer,
    )
    assert added.status_code == 200, added.text
    referred = await intake.client.post(
        f"/cases/{case_id}/referral",
        json={"reason": "unclear", "referred_by": "intruder"},
        headers=officer,
    )
    assert referred.status_code == 202, referred.text
    done = await intake.client.post(
        f"/cases/{case_id}/information",
        json={"attestation": {"attested": True, "method": "in_person"}, "added_by": "x"},
        headers=officer,
    )
    assert done.json()["status"] == "received"
    await discrepancies_found(intake, case_id)
    corrected = await intake.client.post(
        f"/cases/{case_id}/corrections",
        json={"fields": {"seedling_count": 25}, "corrected_by": "someone-else"},
        headers=officer,
    )
    assert corrected.status_code == 200, corrected.text
    (completed,) = stored(intake, case_id, Case.Completed)
    await intake.deliver(
        builders.committee_decided(
            translators(intake.app.sealer)[get_topic(Case.Completed)](completed), decision="approved"
        )
    )
    delivered = await intake.client.post(
        f"/cases/{case_id}/delivery",
        json={"delivered": "20 seedlings", "delivered_by": "intruder"},
        headers=officer,
    )
    assert delivered.status_code == 202, delivered.text

    for kind in (Case.InformationAdded, Case.Completed, Case.Corrected):
        assert {json.dumps(e.actor, sort_keys=True) for e in stored(intake, case_id, kind)} == {
            json.dumps(expected, sort_keys=True)
        }, kind
    (referral,) = stored(intake, case_id, Case.ReferredToResearcher)
    (delivery,) = stored(intake, case_id, Case.ServiceDelivered)
    assert referral.actor == delivery.actor == expected
    assert referral.referred_by == delivery.delivered_by == "officer-7"
    # What the other services read: the officer as actor, and in the payload's field.
    published_referral = translators(intake.app.sealer)[get_topic(Case.ReferredToResearcher)](
        referral
    )
    published_delivery = TRANSLATORS[get_topic(Case.ServiceDelivered)](delivery)
    for event in (published_referral, published_delivery):
        assert event.actor.model_dump(exclude_none=True) == expected
    assert published_referral.payload.referred_by == "officer-7"
    assert published_delivery.payload.delivered_by == "officer-7"


async def test_a_referral_recorded_before_identities_still_publishes_its_named_officer() -> None:
    referral = builders.referred_to_researcher(referred_by="officer-1")
    old = Case.ReferredToResearcher(
        originator_id=referral.case_id,
        originator_version=3,
        timestamp=referral.occurred_at,
        event_id=referral.event_id,
        causation_id=referral.causation_id,
        association_id="sidr",
        case_ref=referral.case_ref,
        correlation_id=referral.correlation_id,
        at=referral.occurred_at,
        reason="unclear",
        questions=[],
        referred_by="officer-1",
    )
    published = TRANSLATORS[get_topic(Case.ReferredToResearcher)](old)
    assert published.actor.model_dump(exclude_none=True) == {"kind": "officer", "id": "officer-1"}


async def test_an_officer_of_another_association_cannot_act_on_the_case(in_process: Start) -> None:
    intake = await in_process("intake")
    case = await submit(intake, INCOMPLETE)
    before = positions(intake)
    elsewhere = as_role(FRONT_DESK, "health-coop")
    for path, body in (
        (f"/cases/{case['case_id']}/information", {"fields": {"seedling_count": 3}}),
        (f"/cases/{case['case_ref']}/corrections", {"fields": {"seedling_count": 3}}),
        (f"/cases/{case['case_id']}/referral", {"reason": "x"}),
        (f"/cases/{case['case_id']}/delivery", {"delivered": "x"}),
    ):
        response = await intake.client.post(path, json=body, headers=elsewhere)
        assert response.status_code == 403, (path, response.text)
    assert positions(intake) == before


# The applicant's secret code ---------------------------------------------------------


async def test_the_code_is_given_once_and_stored_only_as_a_digest(in_process: Start) -> None:
    intake = await in_process("intake")
    body = submission()
    first = await submit(intake, body)
    code = first["access_code"]
    assert isinstance(code, str) and len(code.replace("-", "")) == 12
    again = await intake.client.post("/submissions", json=body, headers=ADAPTER)
    assert again.status_code == 200 and again.json()["access_code"] is None
    linked = await intake.client.post(
        "/submissions", json={**body, "channel": "phone", "channel_ref": "call-1"}, headers=STAFF
    )
    assert linked.json()["linked"] is True and linked.json()["access_code"] is None

    raw = b"".join(
        n.state for n in intake.app.read_notifications(0, 10_000) if isinstance(n.state, bytes)
    )
    assert code.encode() not in raw and code.replace("-", "").encode() not in raw
    (submitted,) = stored(intake, first["case_id"], Case.Submitted)
    assert submitted.access_code_hash and len(submitted.access_code_hash) == 64
    await intake.settle()
    for path in (f"/cases/{first['case_id']}", "/cases", f"/cases/{first['case_id']}/file"):
        shown = (await intake.client.get(path, headers=STAFF)).text
        assert code not in shown and submitted.access_code_hash not in shown, path
    a_second_case = await submit(intake, submission(applicant={"national_id": "2", "name": "B"}))
    assert a_second_case["access_code"] != code


async def test_the_right_code_shows_the_applicant_where_their_request_stands(
    in_process: Start,
) -> None:
    intake = await in_process("intake")
    case = await submit(intake, submission())
    await intake.settle()
    response = await intake.client.get(
        f"/cases/{case['case_ref']}/status", headers={"X-Case-Code": case["access_code"]}
    )
    assert response.status_code == 200, response.text
    view = response.json()
    assert (view["case_ref"], view["status"]) == (case["case_ref"], "received")
    assert view["status_label"]["ar"] and view["status_label"]["en"]
    assert view["missing"] == [] and view["corrections"] == [] and view["ineligible_reason"] is None
    received = datetime.fromisoformat(view["received_at"])
    assert datetime.fromisoformat(view["decision_deadline_at"]) == received + timedelta(days=14)
    assert view["decision_deadline_at_display"]["hijri"]
    assert view["history"][0]["label"]["ar"]
    # Nothing the applicant did not give: no actor, no officer.
    assert "actor" not in response.text and "adapter-tests" not in response.text
    # Typed as a person would: lower case, without hyphens, with spaces.
    typed = case["access_code"].lower().replace("-", " ")
    again = await intake.client.get(f"/cases/{case['case_ref']}/status", headers={"X-Case-Code": typed})
    assert again.status_code == 200


async def test_what_to_correct_and_why_not_eligible_reach_the_applicant(in_process: Start) -> None:
    intake = await in_process("intake")
    case = await submit(intake, submission())
    await discrepancies_found(intake, case["case_id"])
    code = {"X-Case-Code": case["access_code"]}
    view = (await intake.client.get(f"/cases/{case['case_ref']}/status", headers=code)).json()
    assert view["status"] == "discrepancies"
    assert view["corrections"][0]["field"] == "national_id" and view["corrections"][0]["ar"]

    other = await submit(intake, submission(applicant={"national_id": "2", "name": "B"}))
    (completed,) = stored(intake, other["case_id"], Case.Completed)
    await intake.deliver(
        builders.data_verified(
            translators(intake.app.sealer)[get_topic(Case.Completed)](completed),
            outcome="ineligible",
            ineligible_rule="members_only",
        )
    )
    shown = await intake.client.get(
        f"/cases/{other['case_ref']}/status", headers={"X-Case-Code": other["access_code"]}
    )
    assert shown.json()["status"] == "ineligible"
    assert shown.json()["ineligible_reason"] == {"ar": "members_only", "en": "members_only"}
    assert shown.json()["decision_deadline_at"] is None


async def test_a_wrong_missing_or_other_cases_code_is_the_404_of_an_unknown_request(
    in_process: Start,
) -> None:
    intake = await in_process("intake")
    mine = await submit(intake, submission())
    theirs = await submit(intake, submission(applicant={"national_id": "2", "name": "B"}))
    await intake.settle()
    ref = mine["case_ref"]

    def shape(response: Any, key: str) -> tuple[int, str]:
        return response.status_code, response.text.replace(key, "<ref>")

    unknown = await intake.client.get(
        "/cases/SDR-1448-999999/status", headers={"X-Case-Code": mine["access_code"]}
    )
    assert unknown.status_code == 404 and unknown.json()["error"] == "case_not_found"
    assert unknown.json()["message"]["ar"]
    for headers in (
        {"X-Case-Code": "AAAA-BBBB-CCCC"},
        {},
        {"X-Case-Code": theirs["access_code"]},
        {"X-Case-Code": ""},
    ):
        refused = await intake.client.get(f"/cases/{ref}/status", headers=headers)
        assert shape(refused, ref) == shape(unknown, "SDR-1448-999999"), headers
    # A token is no way in here: the applicant's page needs the code.
    staff = await intake.client.get(f"/cases/{ref}/status", headers=STAFF)
    assert staff.status_code == 404


async def test_the_applicant_completes_and_corrects_with_the_code(in_process: Start) -> None:
    intake = await in_process("intake")
    case = await submit(intake, {**INCOMPLETE, "channel_ref": "form-9"})
    code = {"X-Case-Code": case["access_code"]}
    theirs = await submit(intake, submission(applicant={"national_id": "2", "name": "B"}))
    before = positions(intake)
    for headers in ({"X-Case-Code": theirs["access_code"]}, {"X-Case-Code": "WRONG"}):
        refused = await intake.client.post(
            f"/cases/{case['case_id']}/information",
            json={"documents": SUBMISSION["documents"]},
            headers=headers,
        )
        assert refused.status_code == 404 and refused.json()["error"] == "case_not_found"
    nobody = await intake.client.post(
        f"/cases/{case['case_id']}/information", json={"documents": SUBMISSION["documents"]}
    )
    assert nobody.status_code == 401 and "X-Case-Code" in nobody.json()["message"]["en"]
    assert positions(intake) == before

    added = await intake.client.post(
        f"/cases/{case['case_id']}/information",
        json={
            "documents": SUBMISSION["documents"],
            "attestation": {"attested": True, "method": "one_time_code"},
            "added_by": "officer-9",
        },
        headers=code,
    )
    assert added.status_code == 200 and added.json()["status"] == "received", added.text
    await discrepancies_found(intake, case["case_id"])
    corrected = await intake.client.post(
        f"/cases/{case['case_ref']}/corrections",
        json={"applicant": {"name": "علي حسن"}, "corrected_by": "officer-9"},
        headers=code,
    )
    assert corrected.status_code == 200, corrected.text
    applicant = {"kind": "applicant", "id": "applicant"}
    (information,) = stored(intake, case["case_id"], Case.InformationAdded)
    (correction,) = stored(intake, case["case_id"], Case.Corrected)
    (completed,) = stored(intake, case["case_id"], Case.Completed)
    assert information.actor == correction.actor == completed.actor == applicant
    # The declaration the applicant gave is theirs.
    assert completed.attestation["attested_by"] == "علي"


async def test_a_case_from_before_codes_is_reachable_by_staff_only(in_process: Start) -> None:
    intake = await in_process("intake")
    case = await submit(intake, submission())
    # A Submitted stored before codes existed holds no digest: it replays without one.
    (first,) = intake.app.recorder.select_events(UUID(case["case_id"]), limit=1)
    state = json.loads(first.state)
    del state["access_code_hash"]
    replayed = intake.app.mapper.to_domain_event(
        StoredEvent(
            originator_id=first.originator_id,
            originator_version=first.originator_version,
            topic=first.topic,
            state=json.dumps(state).encode(),
        )
    ).mutate(None)
    assert replayed.access_code_hash is None and replayed.case_ref == case["case_ref"]
    assert not replayed.opened_by(case["access_code"]) and not replayed.opened_by("")

    older = Case(
        case_id=uuid4(),
        received_event_id=uuid4(),
        association_id="sidr",
        case_ref="SDR-1447-000001",
        channel="website",
        channel_ref="form-old",
        service_code="seedlings",
        applicant={"national_id": "1000000008", "name": "علي"},
        fields={},
        documents=[],
        attestation=None,
        actor={"kind": "adapter", "id": "http:website"},
        submitted_at=datetime.now(UTC),
        access_code_hash=None,
        personal_key=None,
        subject_index=None,
        policy_version=None,
    )
    intake.app.save(older)
    await intake.settle()
    for headers in ({"X-Case-Code": "AAAA-BBBB-CCCC"}, {"X-Case-Code": ""}, {}):
        refused = await intake.client.get(f"/cases/{older.id}/status", headers=headers)
        assert refused.status_code == 404 and refused.json()["error"] == "case_not_found"
    shown = await intake.client.get(f"/cases/{older.id}", headers=as_role(FRONT_DESK))
    assert shown.status_code == 200 and shown.json()["case_ref"] == "SDR-1447-000001"


# Listing, the case file --------------------------------------------------------------


async def test_the_list_shows_only_the_callers_associations(in_process: Start) -> None:
    intake = await in_process("intake")
    sidr = await submit(intake, submission())
    health = await submit(
        intake,
        submission(association_id="health-coop", service_code="volunteering", fields={}),
        as_adapter(["website"], ["health-coop"]),
    )
    await intake.settle()

    async def listed(headers: dict[str, str], **params: str) -> set[str]:
        response = await intake.client.get("/cases", headers=headers, params=params)
        assert response.status_code == 200, response.text
        return {doc["case_ref"] for doc in response.json()}

    assert await listed(as_role(VERIFIER, "sidr")) == {sidr["case_ref"]}
    assert await listed(as_role(AUDITOR, "health-coop")) == {health["case_ref"]}
    both = as_roles({"sidr": [RESEARCHER], "health-coop": [AUDITOR]}, subject="both")
    assert await listed(both) == {sidr["case_ref"], health["case_ref"]}
    assert await listed(both, association_id="health-coop") == {health["case_ref"]}
    assert await listed(both, limit="1") == {sidr["case_ref"]}
    assert await listed(both, limit="1", offset="1") == {health["case_ref"]}
    refused = await intake.client.get(
        "/cases", headers=as_role(VERIFIER, "sidr"), params={"association_id": "health-coop"}
    )
    assert refused.status_code == 403


async def test_the_case_file_shows_the_request_and_logs_each_read(in_process: Start) -> None:
    intake = await in_process("intake")
    case = await submit(intake, submission())
    await discrepancies_found(intake, case["case_id"])
    code = {"X-Case-Code": case["access_code"]}
    await intake.client.post(
        f"/cases/{case['case_id']}/corrections",
        json={
            "applicant": {"name": "علي حسن"},
            "attestation": {"attested": True, "method": "one_time_code"},
        },
        headers=code,
    )
    assert access_log(intake) == []
    reader = as_role(RESEARCHER, subject="researcher-3", name="Salma")
    response = await intake.client.get(f"/cases/{case['case_ref']}/file", headers=reader)
    assert response.status_code == 200, response.text
    file = response.json()
    assert file["applicant"]["name"] == "علي حسن" and file["applicant"]["national_id"] == "1000000008"
    assert file["fields"] == SUBMISSION["fields"]
    assert file["documents"][0]["code"] == "national_id_card"
    assert file["attestation"]["attested"] is True and file["attestation"]["data_hash"]
    assert [r["revision"] for r in file["revisions"]] == [1, 2]
    assert file["revisions"][0]["applicant"]["name"] == "علي"
    assert file["revisions"][1]["actor"] == {"kind": "applicant", "id": "applicant"}
    assert [e["what"] for e in file["entries"]][:2] == ["submitted", "received"]
    assert file["entries"][0]["actor"]["role"] == "channel:website"
    assert file["submitted_at_display"]["hijri"]

    (read,) = access_log(intake)
    assert read.actor == {"kind": "researcher", "id": "researcher-3", "name": "Salma", "role": RESEARCHER}
    assert (read.association_id, read.what, read.record_id) == ("sidr", CASE_FILE, case["case_id"])
    await intake.client.get(f"/cases/{case['case_id']}/file", headers=STAFF)
    assert len(access_log(intake)) == 2
    # A refused read is not a read.
    refused = await intake.client.get(
        f"/cases/{case['case_id']}/file", headers=as_role(RESEARCHER, "health-coop")
    )
    assert refused.status_code == 403 and len(access_log(intake)) == 2


# The channel reference ---------------------------------------------------------------


async def test_another_persons_request_with_the_same_channel_reference_is_a_409(
    in_process: Start,
) -> None:
    intake = await in_process("intake")
    body = submission()
    first = await submit(intake, body)
    before = positions(intake)
    for other in (
        {**body, "applicant": {"national_id": "1000000016", "name": "سارة"}},
        {**body, "service_code": "volunteering"},
    ):
        refused = await intake.client.post("/submissions", json=other, headers=ADAPTER)
        assert refused.status_code == 409 and refused.json()["error"] == "channel_ref_conflict"
        assert refused.json()["message"]["ar"] and refused.json()["message"]["en"]
        for secret in (first["case_id"], first["case_ref"], first["access_code"], "1000000008"):
            assert secret not in refused.text
    assert positions(intake) == before
    again = await intake.client.post("/submissions", json=body, headers=ADAPTER)
    assert again.status_code == 200 and again.json()["case_id"] == first["case_id"]
