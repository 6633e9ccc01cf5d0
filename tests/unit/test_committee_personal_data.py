"""The committee keeps personal data sealed: the applicant's declaration (who attested)
is sealed at rest under the applicant's key, its read model holds none of it, and
after an erasure the case file says "erased" and the views rebuild (decision 24).

The committee's API in process (its real application, store, read model and
keyring on SQLite files), fed requests sealed as intake publishes them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.events import Applicant, Attestation, RequestReceived
from shared.personal.sealing import ERASED_TEXT
from shared.roles import COMMITTEE_MEMBER
from tests import builders
from tests.auth import as_role
from tests.in_process import InProcessService
from tests.personal_data import assert_no_plaintext, erase, plaintext_found, sealed_request

pytestmark = pytest.mark.unit

Start = Callable[..., Awaitable[InProcessService]]

MEMBER = as_role(COMMITTEE_MEMBER, "sidr")
NATIONAL_ID = "1098765432"
NAME = "عبدالله بن سعد الحربي"
PHONE = "+966512345678"
EMAIL = "abdullah.harbi@example.org"
PERSONAL = [NATIONAL_ID, NAME, "الحربي", PHONE, "512345678", EMAIL]


def attested_request(committee: InProcessService) -> RequestReceived:
    return sealed_request(
        committee.app.sealer,
        association_id="sidr",
        case_ref="SDR-1448-000777",
        applicant=Applicant(national_id=NATIONAL_ID, name=NAME, phone=PHONE, email=EMAIL),
        fields={"address": "حي النخيل"},
        attestation=Attestation(
            attested=True,
            attested_by=NAME,
            attested_at=datetime.now(UTC),
            method="in_person",
            data_hash="ef" * 32,
        ),
    )


async def received(committee: InProcessService) -> RequestReceived:
    request = attested_request(committee)
    await committee.deliver(request, builders.data_verified(request))
    await committee.settle()
    return request


async def case_file(committee: InProcessService, request: RequestReceived) -> dict:  # type: ignore[type-arg]
    response = await committee.client.get(f"/cases/{request.case_id}/file", headers=MEMBER)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def agenda_entry(committee: InProcessService, request: RequestReceived) -> dict:  # type: ignore[type-arg]
    response = await committee.client.get("/agenda", headers=MEMBER)
    assert response.status_code == 200, response.text
    [entry] = [doc for doc in response.json() if doc["case_id"] == str(request.case_id)]
    return dict(entry)


async def rebuild_views(committee: InProcessService) -> None:
    """Drops the read model and builds it again from the store, as an upgrade does."""
    runtime = committee.runtime
    assert runtime.views is not None and runtime.projections is not None
    runtime.views.reset_if_changed(runtime.projections.name, "a rebuild")
    await committee.settle()


async def test_the_committee_store_and_views_hold_no_plaintext_attester_or_applicant(
    in_process: Start, tmp_path: Path
) -> None:
    committee = await in_process("committee")
    request = await received(committee)

    # What a member reads: the declaration, opened, with who attested.
    file = await case_file(committee, request)
    assert file["request"]["attested"] is True
    assert file["request"]["attestation"]["attested_by"] == NAME
    # The agenda (the read model) keeps whether and when, never who.
    entry = agenda_entry(committee, request)
    attestation = (await entry)["attestation"]
    assert attestation["data_hash"] == "ef" * 32 and "attested_by" not in attestation

    # The raw bytes of every file the committee keeps: store, views, keyring.
    assert_no_plaintext(tmp_path / "committee", PERSONAL)


def test_the_search_for_plaintext_finds_utf8_arabic_and_json_escapes(tmp_path: Path) -> None:
    # The test above can fail: the search finds a name written plainly or escaped.
    (tmp_path / "utf8.json").write_text(f'{{"n": "{NAME}"}}', encoding="utf-8")
    (tmp_path / "escaped.json").write_text('{"n": "\\u0627\\u0644\\u062d\\u0631\\u0628\\u064a"}')
    hits = plaintext_found([tmp_path], ["الحربي"])
    assert any("utf8.json" in hit for hit in hits) and any("escaped.json" in hit for hit in hits)


async def test_after_erasure_the_case_file_and_agenda_show_erased_and_the_views_rebuild(
    in_process: Start,
) -> None:
    committee = await in_process("committee")
    request = await received(committee)

    assert erase(committee.app.sealer, "sidr", NATIONAL_ID) == [request.payload.personal_key]

    file = await case_file(committee, request)
    assert file["request"]["attestation"] == ERASED_TEXT
    # What is not personal stays: the case was attested, and can still be decided.
    assert file["request"]["attested"] is True and file["case_ref"] == request.case_ref

    await rebuild_views(committee)
    entry = await agenda_entry(committee, request)
    assert entry["attested"] is True
    assert entry["attestation"] == ERASED_TEXT


async def test_the_researchers_answers_and_note_are_sealed_and_erased_with_the_applicant(
    in_process: Start, tmp_path: Path
) -> None:
    committee = await in_process("committee")
    request = attested_request(committee)
    referral = builders.referred_to_researcher(request)
    await committee.deliver(request, referral)
    await committee.settle()
    answers, note = ["نعيل ستة أطفال في حي النخيل"], "الأسرة في حاجة، عبدالله يعمل بدوام جزئي"
    await committee.runtime.store.run(
        lambda: committee.app.close_referral(
            request.case_id, researcher="researcher-1", answers=answers, note=note
        )
    )
    await committee.settle()

    file = await case_file(committee, request)
    assert file["referrals"][0]["answers"] == answers and file["referrals"][0]["note"] == note
    assert_no_plaintext(tmp_path / "committee", [*PERSONAL, answers[0], note, "بدوام جزئي"])

    erase(committee.app.sealer, "sidr", NATIONAL_ID)
    file = await case_file(committee, request)
    assert file["referrals"][0]["answers"] == ERASED_TEXT == file["referrals"][0]["note"]
    await rebuild_views(committee)
