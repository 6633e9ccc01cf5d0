"""The committee as a real process against a real JetStream server.

Events are crafted here as the other services would publish them; the
committee's answers are read over HTTP and from the stream. The service runs
on a copy of the policy packs in which sidr's decision window is 7 days (not
the 14 of the fallback setting), and on a clock file the tests can move.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import nats
import pytest

from khidma.nats_server import NatsServer
from khidma.processes import PROJECT_ROOT, ServiceProcess
from shared.events import (
    Applicant,
    Attestation,
    Correction,
    DataVerified,
    DataVerifiedPayload,
    Explanation,
    IntegrationEvent,
    ReferredToResearcher,
    RequestReceived,
    encode_event,
)
from shared.policy_loader import DEFAULT_POLICIES_DIR
from shared.subjects import event_subject
from tests import builders
from tests.auth import as_caller_of, as_staff
from tests.helpers import stream_messages_sync, wait_for

pytestmark = pytest.mark.integration

SIDR_WINDOW = 7
PRESENT = ["chair", "member-2", "member-3", "member-4"]


# Crafted events ------------------------------------------------------------------------


def request_received(
    attested: bool = True, occurred_at: datetime | None = None
) -> RequestReceived:
    now = occurred_at or datetime.now(UTC)
    return builders.request_received(
        occurred_at=now,
        case_ref=f"SDR-1448-{uuid4().int % 1_000_000:06d}",
        service_code="seedlings",
        applicant=Applicant(national_id="1000000001", name="Applicant"),
        attestation=Attestation(
            attested=attested,
            attested_by="Applicant",
            attested_at=now,
            method="in_person",
            data_hash=("ef" * 32) if attested else None,
        ),
    )


def data_verified(request: RequestReceived, outcome: str = "verified") -> DataVerified:
    return builders.data_verified(request, outcome=outcome, checks=[], officer="verifier-1")


def referred(request: RequestReceived) -> ReferredToResearcher:
    return builders.referred_to_researcher(
        request,
        reason="the procedures are unclear to the applicant",
        questions=["which documents are needed?"],
        referred_by="officer-7",
    )


def publish(nats_url: str, *events: IntegrationEvent, msg_id_suffix: str = "") -> None:
    """Publishes as a producing service's relay does: Nats-Msg-Id = event id."""

    async def go() -> None:
        connection = await nats.connect(nats_url)
        try:
            js = connection.jetstream()
            for event in events:
                await js.publish(
                    event_subject(event.association_id, event.case_id, event.event_type),
                    encode_event(event),
                    headers={"Nats-Msg-Id": f"{event.event_id}{msg_id_suffix}"},
                )
        finally:
            await connection.close()

    asyncio.run(go())


# The service ---------------------------------------------------------------------------------


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    folder = tmp_path / "policies"
    shutil.copytree(DEFAULT_POLICIES_DIR, folder)
    sidr = folder / "sidr.toml"
    text = sidr.read_text(encoding="utf-8")
    assert "decision_window_days = 14" in text
    sidr.write_text(
        text.replace("decision_window_days = 14", f"decision_window_days = {SIDR_WINDOW}"),
        encoding="utf-8",
    )
    return folder


@pytest.fixture
def clock_file(tmp_path: Path) -> Path:
    return tmp_path / "clock-offset"


@pytest.fixture
def committee(
    nats_server: NatsServer, tmp_path: Path, policies: Path, clock_file: Path
) -> Iterator[ServiceProcess]:
    service = ServiceProcess(
        "committee",
        nats_server.url,
        tmp_path / "data",
        # Redelivery of an event that came before its request must not dead-letter it.
        env={
            "KHIDMA_MAX_DELIVERIES": "50",
            "KHIDMA_POLL_INTERVAL_SECONDS": "0.05",
            "KHIDMA_POLICIES_DIR": str(policies),
            "KHIDMA_CLOCK_FILE": str(clock_file),
            "KHIDMA_DECISION_WINDOW_DAYS": "14",
            "KHIDMA_DEADLINE_SCAN_SECONDS": "0.1",
            "KHIDMA_DEADLINE_WARNING_DAYS": "3",
        },
    )
    service.start()
    try:
        yield service
    finally:
        service.stop()


def get_json(url: str) -> Any:
    response = httpx.get(url, timeout=5.0, headers=as_staff())
    response.raise_for_status()
    return response.json()


def post(url: str, body: dict[str, Any]) -> httpx.Response:
    """As the member the body names (a vote, a recusal), or as staff."""
    return httpx.post(url, json=body, timeout=5.0, headers=as_caller_of(body))


def case_ids(url: str) -> set[str]:
    return {doc["case_id"] for doc in get_json(url)}


def committee_decided(nats_url: str) -> list[dict[str, Any]]:
    return stream_messages_sync(nats_url, "khidma.*.*.CommitteeDecided")


def convene(url: str, present: list[str] = PRESENT) -> str:
    response = post(f"{url}/sittings", {"association_id": "sidr", "members_present": present})
    assert response.status_code == 201, response.text
    return str(response.json()["sitting_id"])


# Tests --------------------------------------------------------------------------------------


def test_a_sitting_decides_a_referred_case_and_publishes_committee_decided(
    nats_server: NatsServer, committee: ServiceProcess
) -> None:
    url = committee.url
    request = request_received()
    referral = referred(request)
    publish(nats_server.url, request, referral)
    # The same request re-published beyond the duplicate window opens one case.
    publish(nats_server.url, request, msg_id_suffix=":again")
    case_id = str(request.case_id)

    wait_for(lambda: case_id in case_ids(f"{url}/researcher/queue"), what="queue")
    doc = get_json(f"{url}/cases/{case_id}")
    assert doc["referral"]["open"] is True and doc["on_agenda"] is False
    received = datetime.fromisoformat(doc["received_at"])
    # The window is the pack's (7 days), not the fallback setting (14).
    assert datetime.fromisoformat(doc["deadline"]) == received + timedelta(days=SIDR_WINDOW)
    assert doc["deadline_display"]["hijri"] and doc["deadline_display"]["ar"]

    closure = post(
        f"{url}/referrals/{case_id}/closure",
        {"researcher": "researcher-1", "answers": ["the ID card"], "note": "six in the family"},
    )
    assert closure.status_code == 202, closure.text
    wait_for(lambda: case_id not in case_ids(f"{url}/researcher/queue"), what="closed")

    verification = data_verified(request)
    publish(nats_server.url, verification)
    wait_for(lambda: case_id in case_ids(f"{url}/agenda"), what="agenda")
    # One case found by its reference.
    assert case_ids(f"{url}/agenda?case_ref={request.case_ref}") == {case_id}
    assert case_ids(f"{url}/agenda?case_ref=SDR-0000-000000") == set()

    sitting_id = convene(url)
    sitting = get_json(f"{url}/sittings/{sitting_id}")
    assert sitting["quorum"] == 3 and sitting["quorate"] is True
    assert sitting["held_at_display"]["hijri"]
    assert case_id in {d["case_id"] for d in get_json(f"{url}/sittings/{sitting_id}/agenda")}

    cases_url = f"{url}/sittings/{sitting_id}/cases/{case_id}"
    recusal = post(f"{cases_url}/recusals", {"member": "member-4", "reason": "a relative"})
    assert recusal.status_code == 201, recusal.text
    refused = post(f"{cases_url}/votes", {"member": "member-4", "vote": "approve"})
    assert refused.status_code == 409 and refused.json()["error"] == "member_recused"
    for member, vote in (("chair", "approve"), ("member-2", "approve")):
        assert post(f"{cases_url}/votes", {"member": member, "vote": vote}).status_code == 201
    dissent = {"member": "member-3", "vote": "reject", "dissent_note": "need not shown"}
    assert post(f"{cases_url}/votes", dissent).status_code == 201

    decision = {"decision": "approved", "reasons": ["the file is complete and the need is shown"]}
    response = post(f"{cases_url}/decision", decision)
    assert response.status_code == 202, response.text
    result = response.json()
    assert result["decision"] == "approved" and result["within_window"] is True
    assert result["deadline_display"]["gregorian"]
    twice = post(f"{cases_url}/decision", decision)
    assert twice.status_code == 409 and twice.json()["error"] == "already_decided"

    wait_for(lambda: committee_decided(nats_server.url), what="CommitteeDecided")
    wait_for(lambda: get_json(f"{url}/ready").get("outbox_lag") == 0, what="outbox drained")
    published = committee_decided(nats_server.url)
    assert len(published) == 1
    message = published[0]
    event = message["event"]
    assert message["subject"] == f"khidma.sidr.{case_id}.CommitteeDecided"
    assert message["headers"]["Nats-Msg-Id"] == event["event_id"]
    assert event["causation_id"] == str(verification.event_id)
    assert event["correlation_id"] == str(request.correlation_id)
    # The decision's actor is the signed-in chair who recorded it (as_staff's subject).
    assert (event["actor"]["id"], event["actor"]["role"]) == ("staff-1", "committee_chair")
    payload = event["payload"]
    assert payload["decision"] == "approved"
    assert payload["window_days"] == SIDR_WINDOW and payload["within_window"] is True
    assert datetime.fromisoformat(payload["deadline"]) == received + timedelta(days=SIDR_WINDOW)
    assert payload["sitting_id"] == sitting_id
    assert payload["members_present"] == PRESENT and payload["quorum"] == 3
    assert payload["recusals"] == ["member-4"]
    assert payload["dissent_notes"] == ["member-3: need not shown"]
    assert len(payload["votes"]) == 3

    doc = wait_for(
        lambda: (d := get_json(f"{url}/cases/{case_id}"))["decision"] and d,
        what="decision in the read model",
    )
    # The read model keeps that the researcher answered; the words are in the case file.
    assert doc["on_agenda"] is False and doc["referral"]["answered"] is True
    assert "six in the family" not in str(doc)
    file = get_json(f"{url}/cases/{case_id}/file")
    assert file["referrals"][0]["note"] == "six in the family"

    closed = httpx.post(f"{url}/sittings/{sitting_id}/close", headers=as_staff())
    assert closed.status_code == 200 and closed.json()["closed"] is True
    minutes = httpx.get(f"{url}/sittings/{sitting_id}/minutes", headers=as_staff())
    assert minutes.status_code == 200
    assert minutes.headers["content-type"].startswith("text/html")
    assert 'dir="rtl"' in minutes.text and request.case_ref in minutes.text
    assert "need not shown" in minutes.text and "@media print" in minutes.text
    english = httpx.get(f"{url}/sittings/{sitting_id}/minutes", params={"lang": "en"}, headers=as_staff())
    assert 'dir="ltr"' in english.text and "within the window" in english.text
    assert get_json(f"{url}/ready")["dead_letters"] == 0


def test_the_sittings_are_listed_latest_first_open_or_closed(committee: ServiceProcess) -> None:
    url = committee.url
    first, second = convene(url), convene(url, PRESENT[:3])
    listed = wait_for(
        lambda: (found := [s["sitting_id"] for s in get_json(f"{url}/sittings?association_id=sidr")])
        and second in found and found,
        what="the sittings listed",
    )
    assert listed.index(second) < listed.index(first)
    doc = next(s for s in get_json(f"{url}/sittings") if s["sitting_id"] == second)
    assert doc["members_present"] == PRESENT[:3] and doc["quorum"] == 3
    assert doc["closed"] is False and doc["held_at_display"]["hijri"]
    assert httpx.post(f"{url}/sittings/{first}/close", headers=as_staff()).status_code == 200
    wait_for(
        lambda: first in {s["sitting_id"] for s in get_json(f"{url}/sittings?closed=true")},
        what="the closed sitting listed as closed",
    )
    still_open = {s["sitting_id"] for s in get_json(f"{url}/sittings?closed=false")}
    assert second in still_open and first not in still_open
    nowhere = httpx.get(f"{url}/sittings?association_id=nowhere", headers=as_staff())
    assert nowhere.status_code in (403, 404)


def test_a_referral_before_its_request_is_queued_and_merged(
    nats_server: NatsServer, committee: ServiceProcess
) -> None:
    request = request_received()
    case_id = str(request.case_id)
    publish(nats_server.url, referred(request))
    queue = wait_for(
        lambda: [d for d in get_json(f"{committee.url}/researcher/queue") if d["case_id"] == case_id],
        what="the referral in the queue",
    )
    assert queue[0]["association_id"] == "sidr" and queue[0]["case_ref"] == request.case_ref
    assert queue[0]["deadline"] is None
    publish(nats_server.url, request, data_verified(request))
    doc = wait_for(
        lambda: (d := get_json(f"{committee.url}/cases/{case_id}")).get("verification_outcome") and d,
        what="the request and its verification merged into the referred case",
    )
    assert doc["received"] is True and doc["referral_open"] is True and doc["deadline"]
    # The committee waits for the researcher's note: off the agenda until then.
    assert case_id not in case_ids(f"{committee.url}/agenda")
    closed = httpx.post(
        f"{committee.url}/referrals/{case_id}/closure",
        json={"researcher": "researcher-1", "answers": ["explained"], "note": "ready"}, headers=as_staff(),
    )
    assert closed.status_code in (200, 202), closed.text
    wait_for(lambda: case_id in case_ids(f"{committee.url}/agenda"), what="agenda")
    assert get_json(f"{committee.url}/ready")["dead_letters"] == 0


def test_a_verification_published_before_its_request_is_recorded(
    nats_server: NatsServer, committee: ServiceProcess
) -> None:
    request = request_received()
    publish(nats_server.url, data_verified(request))
    # The committee sees the verification and cannot place it yet: it naks it.
    log = committee.data_dir / "committee.log"
    wait_for(lambda: "RetryLater" in log.read_text(errors="replace"), what="a RetryLater")
    publish(nats_server.url, request)
    case_id = str(request.case_id)
    wait_for(lambda: case_id in case_ids(f"{committee.url}/agenda"), what="agenda")
    assert get_json(f"{committee.url}/cases/{case_id}")["verification_outcome"] == "verified"
    wait_for(lambda: get_json(f"{committee.url}/ready")["consumer_pending"] == 0, what="drained")
    assert get_json(f"{committee.url}/ready")["dead_letters"] == 0


def test_a_case_without_the_declaration_never_reaches_a_decision(
    nats_server: NatsServer, committee: ServiceProcess
) -> None:
    request = request_received(attested=False)
    publish(nats_server.url, request, data_verified(request))
    case_id = str(request.case_id)
    wait_for(
        lambda: get_json(f"{committee.url}/cases/{case_id}")["verification_outcome"] == "verified",
        what="verified",
    )
    assert get_json(f"{committee.url}/cases/{case_id}")["attested"] is False
    assert case_id not in case_ids(f"{committee.url}/agenda")
    sitting_id = convene(committee.url)
    assert case_id not in case_ids(f"{committee.url}/sittings/{sitting_id}/agenda")
    cases_url = f"{committee.url}/sittings/{sitting_id}/cases/{case_id}"
    for member in PRESENT[:3]:
        post(f"{cases_url}/votes", {"member": member, "vote": "reject"})
    response = post(f"{cases_url}/decision", {"decision": "rejected", "reasons": ["x"]})
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "attestation_missing"
    assert body["message"]["en"] and body["message"]["ar"]


def test_the_scheduler_flags_cases_approaching_and_past_their_deadline(
    nats_server: NatsServer, committee: ServiceProcess, clock_file: Path
) -> None:
    # Received 5 days ago with a 7-day window: 2 days left, within the 3-day warning.
    request = request_received(occurred_at=datetime.now(UTC) - timedelta(days=5))
    publish(nats_server.url, request, data_verified(request))
    case_id = str(request.case_id)
    approaching = wait_for(
        lambda: [d for d in get_json(f"{committee.url}/deadlines") if d["case_id"] == case_id],
        what="the approaching flag",
    )
    assert approaching[0]["deadline_flag"] == "approaching"
    assert approaching[0]["deadline_display"]["hijri"]
    assert approaching[0]["days_left"] in (1, 2)  # by the committee's clock
    assert case_id in case_ids(f"{committee.url}/deadlines?status=approaching")
    assert case_id not in case_ids(f"{committee.url}/deadlines?status=overdue")

    clock_file.write_text(str(3 * 86400))  # the services' clock moves three days on
    wait_for(
        lambda: case_id in case_ids(f"{committee.url}/deadlines?status=overdue"),
        what="the overdue flag",
    )
    late = [d for d in get_json(f"{committee.url}/deadlines") if d["case_id"] == case_id]
    assert late[0]["days_left"] < 0
    # A decision now is past the window; the case leaves the deadline list.
    sitting_id = convene(committee.url)
    cases_url = f"{committee.url}/sittings/{sitting_id}/cases/{case_id}"
    for member in PRESENT[:3]:
        assert post(f"{cases_url}/votes", {"member": member, "vote": "reject"}).status_code == 201
    response = post(f"{cases_url}/decision", {"decision": "rejected", "reasons": ["late"]})
    assert response.status_code == 202, response.text
    assert response.json()["within_window"] is False
    wait_for(lambda: case_id not in case_ids(f"{committee.url}/deadlines"), what="off the list")
    wait_for(lambda: committee_decided(nats_server.url), what="CommitteeDecided")
    assert committee_decided(nats_server.url)[0]["event"]["payload"]["within_window"] is False


def test_malformed_or_misdirected_requests_are_answered_clearly(
    committee: ServiceProcess,
) -> None:
    url = committee.url
    sitting_id = convene(url, ["chair", "member-2", "member-3"])
    case_id = str(uuid4())
    decision_url = f"{url}/sittings/{sitting_id}/cases/{case_id}/decision"

    def problem_fields(target: str, body: dict[str, Any]) -> list[list[Any]]:
        response = post(target, body)
        assert response.status_code == 422, response.text
        assert response.json()["message"]["ar"]
        return [problem["loc"] for problem in response.json()["detail"]]

    valid = {"decision": "approved", "reasons": ["ok"]}
    assert ["body", "decision"] in problem_fields(decision_url, {**valid, "decision": "maybe"})
    assert ["body", "reasons"] in problem_fields(decision_url, {"decision": "approved"})
    votes_url = f"{url}/sittings/{sitting_id}/cases/{case_id}/votes"
    assert ["body", "vote"] in problem_fields(votes_url, {"member": "chair", "vote": "yes"})
    assert ["body", "members_present"] in problem_fields(
        f"{url}/sittings", {"association_id": "sidr", "members_present": []}
    )

    unknown = post(decision_url, valid)
    assert unknown.status_code == 404 and unknown.json()["error"] == "case_not_found"
    assert unknown.json()["message"]["ar"]
    stranger = post(f"{url}/sittings", {"association_id": "sidr", "members_present": ["stranger"]})
    assert stranger.status_code == 409 and stranger.json()["error"] == "unknown_member"
    nowhere = post(f"{url}/sittings", {"association_id": "nowhere", "members_present": ["chair"]})
    assert nowhere.status_code == 404 and nowhere.json()["error"] == "unknown_association"
    missing = httpx.get(f"{url}/sittings/{uuid4()}", headers=as_staff())
    assert missing.status_code == 404 and missing.json()["error"] == "sitting_not_found"
    assert httpx.get(f"{url}/cases/{case_id}", headers=as_staff()).status_code == 404
    # Decisions are taken in sittings: the old direct route is gone.
    assert post(f"{url}/cases/{case_id}/decision", valid).status_code in (404, 405)
    # The researcher is the signed-in one, not a field: a misspelt field is still refused.
    closure = post(f"{url}/referrals/{case_id}/closure", {"answer": ["misspelt"]})
    assert closure.status_code == 422
    assert ["body", "answer"] in [p["loc"] for p in closure.json()["detail"]]


def test_a_broken_policy_pack_stops_the_service_with_the_file_and_key(tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    shutil.copytree(DEFAULT_POLICIES_DIR, folder)
    sidr = folder / "sidr.toml"
    sidr.write_text(
        sidr.read_text(encoding="utf-8").replace("quorum = 3", "quorum = 9"), encoding="utf-8"
    )
    result = subprocess.run(
        [sys.executable, "-m", "services.committee"],
        check=False,  # the exit code is what is asserted
        cwd=PROJECT_ROOT,
        env={
            **os.environ,
            "KHIDMA_NATS_URL": "nats://127.0.0.1:1",
            "KHIDMA_DATA_DIR": str(tmp_path / "data"),
            "KHIDMA_POLICIES_DIR": str(folder),
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "sidr.toml" in result.stderr and "committee" in result.stderr
    assert "quorum" in result.stderr


def test_ineligible_and_discrepancies_cases_are_listed_and_a_sitting_rejects_from_its_agenda(
    nats_server: NatsServer, committee: ServiceProcess
) -> None:
    url = committee.url
    rule = Explanation(ar="يصرف من ١ إلى ٥٠٠ شتلة للطلب الواحد", en="One request may ask for 1 to 500 seedlings")
    ineligible_request, correctable = request_received(), request_received()
    ineligible = data_verified(ineligible_request, "ineligible").model_copy(
        update={
            "payload": DataVerifiedPayload(
                outcome="ineligible",
                checks=[],
                officer="verifier-1",
                ineligible_rule=rule.en,
                ineligible_reason=rule,
            )
        }
    )
    discrepancies = data_verified(correctable, "discrepancies").model_copy(
        update={
            "payload": DataVerifiedPayload(
                outcome="discrepancies",
                checks=[],
                officer="verifier-1",
                corrections=[Correction(field="seedling_count", ar="أدخل العدد", en="Give the count")],
            )
        }
    )
    publish(nats_server.url, ineligible_request, ineligible, correctable, discrepancies)
    ineligible_id, correctable_id = str(ineligible_request.case_id), str(correctable.case_id)

    listed = wait_for(
        lambda: [d for d in get_json(f"{url}/agenda") if d["case_id"] == ineligible_id],
        what="the ineligible case on the agenda",
    )[0]
    assert listed["expected_decision"] == "rejected"
    assert listed["ineligible_rule"] == rule.en
    assert listed["ineligible_reason"] == {"ar": rule.ar, "en": rule.en}
    assert case_ids(f"{url}/agenda?outcome=ineligible") == {ineligible_id}
    assert case_ids(f"{url}/agenda?outcome=verified") == set()

    waiting = wait_for(
        lambda: [d for d in get_json(f"{url}/awaiting-correction") if d["case_id"] == correctable_id],
        what="the case awaiting correction",
    )[0]
    assert waiting["corrections"][0]["field"] == "seedling_count"
    assert waiting["deadline"] and waiting["deadline_display"]["hijri"]
    assert correctable_id not in case_ids(f"{url}/agenda")
    assert ineligible_id not in case_ids(f"{url}/awaiting-correction")

    sitting_id = convene(url)
    assert case_ids(f"{url}/sittings/{sitting_id}/agenda") == {ineligible_id}
    cases_url = f"{url}/sittings/{sitting_id}/cases/{ineligible_id}"
    for member in PRESENT[:3]:
        assert post(f"{cases_url}/votes", {"member": member, "vote": "reject"}).status_code == 201
    approve = post(f"{cases_url}/decision", {"decision": "approved", "reasons": ["x"]})
    assert approve.status_code == 409
    reject = post(f"{cases_url}/decision", {"decision": "rejected", "reasons": [rule.ar]})
    assert reject.status_code == 202, reject.text
    (decided,) = wait_for(lambda: committee_decided(nats_server.url), what="CommitteeDecided")
    assert decided["event"]["causation_id"] == str(ineligible.event_id)
    assert decided["event"]["payload"]["decision"] == "rejected"
    wait_for(lambda: ineligible_id not in case_ids(f"{url}/agenda"), what="off the agenda")

    # The applicant corrects: revision 2 is not verified until its DataVerified arrives.
    corrected = correctable.model_copy(
        update={
            "event_id": uuid4(),
            "occurred_at": datetime.now(UTC),
            "payload": correctable.payload.model_copy(
                update={"revision": 2, "corrects": discrepancies.event_id}
            ),
        }
    )
    publish(nats_server.url, corrected)
    doc = wait_for(
        lambda: (d := get_json(f"{url}/cases/{correctable_id}"))["revision"] == 2 and d,
        what="revision 2 at the committee",
    )
    assert doc["awaiting_verification"] is True and doc["verification_outcome"] is None
    assert [r["revision"] for r in doc["revisions"]] == [1, 2]
    assert correctable_id not in case_ids(f"{url}/awaiting-correction")
    other_cases_url = f"{url}/sittings/{sitting_id}/cases/{correctable_id}"
    for member in PRESENT[:3]:
        post(f"{other_cases_url}/votes", {"member": member, "vote": "reject"})
    refused = post(f"{other_cases_url}/decision", {"decision": "rejected", "reasons": ["x"]})
    assert refused.status_code == 409 and refused.json()["error"] == "not_verified"

    reverified = data_verified(correctable).model_copy(
        update={
            "causation_id": corrected.event_id,
            "payload": DataVerifiedPayload(outcome="verified", checks=[], officer="verifier-1", revision=2),
        }
    )
    publish(nats_server.url, reverified)
    wait_for(lambda: correctable_id in case_ids(f"{url}/agenda"), what="the corrected case on the agenda")
    assert get_json(f"{url}/cases/{correctable_id}")["verification_outcome"] == "verified"
    assert get_json(f"{url}/ready")["dead_letters"] == 0
