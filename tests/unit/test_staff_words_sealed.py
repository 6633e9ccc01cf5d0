"""Staff's words about an applicant are sealed under the applicant's key (issue 10,
decision 24): a referral's reason and questions (intake, the stream, the committee)
and an officer's reason for overriding a verification (verification, the stream).

Each is in the stores and read models only as ciphertext, is published sealed with
the key id, is shown opened where staff read it (the researcher's queue, the case
files, the audit's timeline), and shows "erased" once the applicant's key is
destroyed. Events of the version before (plain strings) still read and show.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.utils import get_topic

from audit.personal import Opener, close_keyrings
from audit.settings import AuditSettings
from audit.timeline import case_timeline
from services.intake.domain import Case
from services.intake.integration import translators as intake_translators
from services.verification.domain import Verification
from services.verification.integration import translators as verification_translators
from services.verification.views import VERIFICATIONS
from shared.events import (
    POLICY_VERSIONS_SCHEMA_VERSION,
    SEALED_WORDS_SCHEMA_VERSION,
    Applicant,
    DataVerified,
    ReferredToResearcher,
    decode_event,
)
from shared.personal.sealing import ERASED_TEXT, is_sealed
from shared.roles import COMMITTEE_MEMBER, FRONT_DESK, RESEARCHER, VERIFIER
from tests import builders
from tests.auth import as_adapter, as_role
from tests.in_process import InProcessService
from tests.personal_data import assert_no_plaintext, erase, keyring_of, sealed_request

pytestmark = pytest.mark.unit

Start = Callable[..., Awaitable[InProcessService]]

NATIONAL_ID = "1098765437"
NAME = "عائشة بنت سعيد القحطاني"
# What staff wrote about her: each a marker of its own, to be found nowhere at rest.
REASON = "REFERRAL-REASON-7Q2 الأسرة تعيش في غرفة واحدة"
QUESTION = "REFERRAL-QUESTION-9K4 كم عدد الأطفال في المدرسة؟"
OVERRIDE = "OVERRIDE-REASON-3M8 شهادة الوفاة وصلت ورقيًا إلى الفرع"
MARKERS = ["REFERRAL-REASON-7Q2", "REFERRAL-QUESTION-9K4", "OVERRIDE-REASON-3M8", "غرفة واحدة"]


def audit_of(folder: Path) -> AuditSettings:
    close_keyrings()  # each test's own keyring, opened afresh
    return AuditSettings(data_dir=folder)


# Intake: the referral ---------------------------------------------------------------


async def referred_case(intake: InProcessService) -> str:
    body = {
        "association_id": "sidr",
        "channel": "website",
        "channel_ref": "form-words-1",
        "service_code": "seedlings",
        "applicant": {"national_id": NATIONAL_ID, "name": NAME},
        "fields": {"seedling_count": 5},
    }
    submitted = await intake.client.post(
        "/submissions", json=body, headers=as_adapter(["website"], ["sidr"])
    )
    assert submitted.status_code == 201, submitted.text
    case_id = str(submitted.json()["case_id"])
    referred = await intake.client.post(
        f"/cases/{case_id}/referral",
        json={"reason": REASON, "questions": [QUESTION]},
        headers=as_role(FRONT_DESK),
    )
    assert referred.status_code == 202, referred.text
    await intake.settle()
    return case_id


def published_referral(intake: InProcessService, case_id: str) -> ReferredToResearcher:
    """What intake's outbox publishes of the referral (its translators and sealer)."""
    translate = intake_translators(intake.app.sealer)
    [event] = [
        e for e in intake.app.events.get(UUID(case_id)) if isinstance(e, Case.ReferredToResearcher)
    ]
    published = translate[get_topic(Case.ReferredToResearcher)](event)
    assert isinstance(published, ReferredToResearcher)
    return published


async def test_intake_keeps_and_publishes_a_referrals_reason_and_questions_sealed(
    in_process: Start, tmp_path: Path
) -> None:
    intake = await in_process("intake")
    case_id = await referred_case(intake)

    [stored] = intake.app.read_notifications(0, 100, [get_topic(Case.ReferredToResearcher)])
    state = json.loads(stored.state)
    key_id = state["personal_key"]
    assert key_id == intake.app.sealer.keys.key_for("sidr", NATIONAL_ID)
    assert is_sealed(state["reason"]) and is_sealed(state["questions"])
    assert_no_plaintext(tmp_path / "intake", MARKERS)

    published = published_referral(intake, case_id)
    assert published.schema_version == SEALED_WORDS_SCHEMA_VERSION
    wire = json.loads(published.model_dump_json())["payload"]
    assert wire["personal_key"] == key_id and wire["referred_by"]
    assert is_sealed(wire["reason"]) and is_sealed(wire["questions"])
    assert "REFERRAL" not in json.dumps(wire, ensure_ascii=False)
    sealer = intake.app.sealer
    assert sealer.open(wire["reason"]) == REASON and sealer.open(wire["questions"]) == [QUESTION]

    # The audit reads intake's store and opens them; after the erasure, "erased".
    settings = audit_of(tmp_path / "intake")
    [referral] = [
        e for e in timeline_entries(settings, case_id) if e.event_type == "ReferredToResearcher"
    ]
    assert referral.data["reason"] == REASON and referral.data["questions"] == [QUESTION]
    erase(sealer, "sidr", NATIONAL_ID)
    [referral] = [
        e for e in timeline_entries(settings, case_id) if e.event_type == "ReferredToResearcher"
    ]
    assert referral.data["reason"] == ERASED_TEXT == referral.data["questions"]
    # The stream's copy opens as erased too, and a new referral is refused.
    assert Opener(keyring_of(tmp_path / "intake")).shown(wire)["reason"] == ERASED_TEXT
    again = await intake.client.post(
        f"/cases/{case_id}/referral", json={"reason": "again"}, headers=as_role(FRONT_DESK)
    )
    assert again.status_code == 409 and again.json()["error"] == "personal_data_erased"


def timeline_entries(settings: AuditSettings, case_id: str) -> list[Any]:
    timeline = case_timeline(settings, case_id)
    assert timeline is not None
    return list(timeline.entries)


# The committee: the researcher's queue and the case file ----------------------------


def sealed_referral(committee: InProcessService, request: Any) -> ReferredToResearcher:
    """A referral as intake publishes it now: reason and questions sealed."""
    sealer = committee.app.sealer
    key_id = request.payload.personal_key
    plain = builders.referred_to_researcher(request)
    wire = plain.model_dump(mode="json")
    wire["payload"].update(
        reason={**sealer.seal(key_id, REASON), "shape": "string"},
        questions={**sealer.seal(key_id, [QUESTION]), "shape": "array"},
        personal_key=key_id,
    )
    return ReferredToResearcher.model_validate(wire)


async def queue(committee: InProcessService) -> list[dict[str, Any]]:
    response = await committee.client.get("/researcher/queue", headers=as_role(RESEARCHER))
    assert response.status_code == 200, response.text
    return list(response.json())


async def case_file(committee: InProcessService, case_id: UUID) -> dict[str, Any]:
    response = await committee.client.get(
        f"/cases/{case_id}/file", headers=as_role(COMMITTEE_MEMBER)
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_the_committee_shows_a_sealed_referral_to_the_researcher_and_erased_after(
    in_process: Start, tmp_path: Path
) -> None:
    committee = await in_process("committee")
    request = sealed_request(
        committee.app.sealer,
        association_id="sidr",
        applicant=Applicant(national_id=NATIONAL_ID, name=NAME),
    )
    await committee.deliver(request, sealed_referral(committee, request))
    await committee.settle()

    [entry] = await queue(committee)
    assert entry["referral"]["reason"] == REASON and entry["referral"]["questions"] == [QUESTION]
    file = await case_file(committee, request.case_id)
    assert file["referrals"][0]["reason"] == REASON
    assert file["referrals"][0]["questions"] == [QUESTION]
    # The read model holds who referred and that it is open, never what was written.
    doc = committee.runtime.views.get("committee_cases", str(request.case_id))
    assert "REFERRAL" not in json.dumps(doc, ensure_ascii=False)
    assert_no_plaintext(tmp_path / "committee", MARKERS)

    erase(committee.app.sealer, "sidr", NATIONAL_ID)
    [entry] = await queue(committee)
    assert entry["referral"]["reason"] == ERASED_TEXT == entry["referral"]["questions"]
    file = await case_file(committee, request.case_id)
    assert file["referrals"][0]["reason"] == ERASED_TEXT == file["referrals"][0]["questions"]
    runtime = committee.runtime
    runtime.views.reset_if_changed(runtime.projections.name, "a rebuild")
    await committee.settle()
    [entry] = await queue(committee)
    assert entry["referral"]["open"] is True and entry["referral"]["reason"] == ERASED_TEXT


async def test_a_referral_published_erased_is_recorded_erased_by_the_committee(
    in_process: Start,
) -> None:
    committee = await in_process("committee")
    request = sealed_request(
        committee.app.sealer, applicant=Applicant(national_id=NATIONAL_ID, name=NAME)
    )
    referral = sealed_referral(committee, request)
    await committee.deliver(request)
    erase(committee.app.sealer, "sidr", NATIONAL_ID)
    await committee.deliver(referral)  # arrives after the erasure: kept, as erased
    file = await case_file(committee, request.case_id)
    assert file["referrals"][0]["reason"] == ERASED_TEXT and file["referrals"][0]["open"]


async def test_a_plain_referral_of_the_version_before_still_reads_and_shows(
    in_process: Start,
) -> None:
    committee = await in_process("committee")
    request = sealed_request(
        committee.app.sealer, applicant=Applicant(national_id=NATIONAL_ID, name=NAME)
    )
    old = builders.referred_to_researcher(request, reason="unclear", questions=["how many?"])
    wire = json.loads(old.model_dump_json())
    wire["schema_version"] = 1
    decoded = decode_event(json.dumps(wire))
    assert isinstance(decoded, ReferredToResearcher) and decoded.payload.reason == "unclear"
    await committee.deliver(request, decoded)
    [entry] = await queue(committee)
    assert entry["referral"]["reason"] == "unclear"
    assert entry["referral"]["questions"] == ["how many?"]


# Verification: the officer's reason for an override ----------------------------------


async def overridden(verification: InProcessService) -> Any:
    request = sealed_request(
        verification.app.sealer,
        service_code="member-service",  # not a member: ineligible is suggested
        applicant=Applicant(national_id=NATIONAL_ID, name=NAME),
        fields={"request_details": "help"},
    )
    await verification.deliver(request)
    confirmed = await verification.client.post(
        f"/verifications/{request.case_id}/confirmation",
        json={"outcome": "verified", "reason": OVERRIDE},
        headers=as_role(VERIFIER),
    )
    assert confirmed.status_code == 202, confirmed.text
    await verification.settle()
    return request


def published_verification(verification: InProcessService) -> DataVerified:
    translate = verification_translators(verification.app.sealer)
    [notification] = verification.app.read_notifications(
        0, 100, [get_topic(Verification.Confirmed)]
    )
    event = verification.app.mapper.to_domain_event(notification)
    published = translate[notification.topic](event)
    assert isinstance(published, DataVerified)
    return published


async def test_verification_keeps_and_publishes_an_overrides_reason_sealed_and_erased_after(
    in_process: Start, tmp_path: Path
) -> None:
    verification = await in_process("verification")
    request = await overridden(verification)

    [notification] = verification.app.read_notifications(
        0, 100, [get_topic(Verification.Confirmed)]
    )
    state = json.loads(notification.state)
    assert is_sealed(state["override_reason"]) and is_sealed(state["reason"])
    assert state["personal_key"] == request.payload.personal_key
    assert_no_plaintext(tmp_path / "verification", MARKERS)

    published = published_verification(verification)
    # Sealed words (2), and since policy versions the version governing the case (3).
    assert published.schema_version == POLICY_VERSIONS_SCHEMA_VERSION
    assert published.payload.policy_version == 1
    wire = json.loads(published.model_dump_json())["payload"]
    assert is_sealed(wire["override_reason"]) and wire["personal_key"] == state["personal_key"]
    assert "OVERRIDE" not in json.dumps(wire, ensure_ascii=False)  # nor in the checks
    assert verification.app.sealer.open(wire["override_reason"]) == OVERRIDE

    doc = verification.runtime.views.get(VERIFICATIONS, str(request.case_id))
    assert doc["overridden"] is True and doc["outcome"] == "verified"
    file = await verification_file(verification, request.case_id)
    assert file["override_reason"] == OVERRIDE == file["reason"]

    settings = audit_of(tmp_path / "verification")
    [confirmed] = [
        e
        for e in timeline_entries(settings, str(request.case_id))
        if e.event_type == "DataVerified"
    ]
    assert confirmed.data["override_reason"] == OVERRIDE

    erase(verification.app.sealer, "sidr", NATIONAL_ID)
    file = await verification_file(verification, request.case_id)
    assert file["override_reason"] == ERASED_TEXT == file["reason"]
    [confirmed] = [
        e
        for e in timeline_entries(settings, str(request.case_id))
        if e.event_type == "DataVerified"
    ]
    assert confirmed.data["override_reason"] == ERASED_TEXT
    assert (
        Opener(keyring_of(tmp_path / "verification")).shown(wire)["override_reason"] == ERASED_TEXT
    )


async def verification_file(verification: InProcessService, case_id: UUID) -> dict[str, Any]:
    response = await verification.client.get(
        f"/verifications/{case_id}/file", headers=as_role(VERIFIER)
    )
    assert response.status_code == 200, response.text
    return dict(response.json()["revisions"][-1])


def test_a_plain_override_reason_of_the_version_before_still_reads() -> None:
    old = builders.data_verified(builders.request_received(), override_reason="Deceased")
    wire = json.loads(old.model_dump_json())
    wire["schema_version"] = 1
    decoded = decode_event(json.dumps(wire))
    assert isinstance(decoded, DataVerified) and decoded.payload.override_reason == "Deceased"


async def test_an_override_written_after_the_applicant_was_erased_is_kept_erased(
    in_process: Start, tmp_path: Path
) -> None:
    """Nothing of an erased person is written in plain, and nothing fails: the
    officer's words about them are kept as erased at once."""
    verification = await in_process("verification")
    request = sealed_request(
        verification.app.sealer,
        service_code="member-service",
        applicant=Applicant(national_id=NATIONAL_ID, name=NAME),
        fields={"request_details": "help"},
    )
    await verification.deliver(request)
    erase(verification.app.sealer, "sidr", NATIONAL_ID)
    confirmed = await verification.client.post(
        f"/verifications/{request.case_id}/confirmation",
        json={"outcome": "verified", "reason": OVERRIDE},
        headers=as_role(VERIFIER),
    )
    assert confirmed.status_code == 202, confirmed.text
    file = await verification_file(verification, request.case_id)
    assert file["override_reason"] == ERASED_TEXT and file["outcome"] == "verified"
    assert_no_plaintext(tmp_path / "verification", MARKERS)
    published = json.loads(published_verification(verification).model_dump_json())["payload"]
    assert Opener(keyring_of(tmp_path / "verification")).shown(published)["override_reason"] == (
        ERASED_TEXT
    )
