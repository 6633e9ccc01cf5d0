"""Verification keeps personal data sealed (issue 10, decision 24): the request as
received and a member's national id and name are in its store only as ciphertext
under the data subject's key, its read model holds none, members are found by the
blind index, and after an erasure (the key destroyed) the case file and the member
record show "erased", the views rebuild, and old plaintext events still read."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from services.verification.domain import Verification
from services.verification.integration import TRANSLATORS, data_verified
from services.verification.members import Member, legacy_member_id, member_id
from services.verification.views import VERIFICATIONS, project
from shared.events import Applicant, Attestation, Document, RequestReceived
from shared.personal import Sealer
from shared.personal.sealing import ERASED_TEXT, is_sealed
from shared.roles import ADMIN, VERIFIER
from shared.views import ProjectionRunner, ViewStore
from tests import builders
from tests.auth import as_role
from tests.in_process import InProcessService
from tests.personal_data import encodings

pytestmark = pytest.mark.unit

Start = Callable[..., Awaitable[InProcessService]]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "v1"

# An applicant who is also a member, and one who is not.
FATIMA_ID = "1012345672"
FATIMA_NAME = "فاطمة بنت سعيد الزهراني"
FATIMA_PHONE = "0551234567"
FATIMA_EMAIL = "fatima.zahrani@example.org"
OMAR_ID = "2000000006"
OMAR_NAME = "عمر بن خالد القحطاني"
OMAR_PHONE = "0567654321"
OMAR_EMAIL = "omar.qahtani@example.org"
CARD_NUMBER = "NID-77441199"
PLANTING_SITE = "مزرعة الوادي الأخضر"

MEMBER_ENTRY = {
    "name": FATIMA_NAME,
    "joined_on": "2020-01-01",
    "status": "suspended",
    "status_since": "2024-06-01",
}


def plaintexts_in(folder: Path, secrets: list[str]) -> list[tuple[str, str]]:
    """(file, secret) for every secret found, in any encoding, in any file of the folder."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        for secret in secrets:
            if any(form in raw for form in encodings(secret)):
                found.append((path.name, secret))
    return found


PERSONAL = [
    FATIMA_ID,
    FATIMA_NAME,
    "551234567",  # the phone, as typed and in E.164
    FATIMA_EMAIL,
    OMAR_ID,
    OMAR_NAME,
    "567654321",
    OMAR_EMAIL,
    CARD_NUMBER,
    PLANTING_SITE,
]


def plain_request(
    national_id: str, name: str, phone: str, email: str, **overrides: Any
) -> RequestReceived:
    """A request as intake published it before sealing: the personal fields plain."""
    given: dict[str, Any] = {
        "service_code": "member-service",
        "applicant": Applicant(national_id=national_id, name=name, phone=phone, email=email),
        "fields": {"request_details": PLANTING_SITE},
        "documents": [
            Document(code="national_id_card", number=CARD_NUMBER, expires_on=date(2030, 1, 1))
        ],
        "attestation": Attestation(attested=True, attested_by=name),
        "submitted_at": datetime(2025, 3, 1, 9, 30, tzinfo=UTC),
    }
    return builders.request_received(**{**given, **overrides})


def sealed_request(service: InProcessService, plain: RequestReceived) -> RequestReceived:
    """The same request as intake publishes it now: its personal fields sealed under
    the applicant's key, with the key's id and the blind index (the wire form)."""
    keyring = service.app.sealer.keys
    sealer = Sealer(keyring)  # over the keyring the service uses
    payload = plain.payload
    assert isinstance(payload.applicant, Applicant)
    national_id = payload.applicant.national_id
    key = keyring.key_for(plain.association_id, national_id)
    wire = plain.model_dump(mode="json")
    for name in ("applicant", "fields", "documents", "attestation"):
        wire["payload"][name] = sealer.seal(key, wire["payload"][name])
    wire["payload"]["personal_key"] = key
    wire["payload"]["subject_index"] = keyring.subject_index(plain.association_id, national_id)
    return RequestReceived.model_validate(wire)


def erase(service: InProcessService, national_id: str, association_id: str = "sidr") -> None:
    """What an erasure does to verification's data: the subject's keys destroyed."""
    keyring = service.app.sealer.keys
    keyring.destroy(keyring.subject_index(association_id, national_id), f"erasure-{uuid4()}")


async def register_fatima(service: InProcessService) -> None:
    response = await service.client.put(
        f"/members/sidr/{FATIMA_ID}", json=MEMBER_ENTRY, headers=as_role(ADMIN)
    )
    assert response.status_code == 200, response.text


def data_dir(service: InProcessService) -> Path:
    return Path(service.runtime.settings.data_dir)


def rebuilt_views(service: InProcessService, folder: Path) -> ViewStore:
    """The read model built again from the store, in a new file."""
    views = ViewStore(folder / "rebuilt-views.sqlite")
    ProjectionRunner(service.app, service.runtime.store, views, project).catch_up()
    return views


# No plaintext at rest ------------------------------------------------------------------


async def test_the_store_and_views_files_hold_no_plaintext_of_an_applicant_or_a_member(
    in_process: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    verification = await in_process("verification")
    await register_fatima(verification)
    # One request as published before sealing, one sealed: both are kept sealed here.
    old = plain_request(FATIMA_ID, FATIMA_NAME, FATIMA_PHONE, FATIMA_EMAIL)
    new = sealed_request(verification, plain_request(OMAR_ID, OMAR_NAME, OMAR_PHONE, OMAR_EMAIL))
    await verification.deliver(old, new)
    confirmed = await verification.client.post(
        f"/verifications/{new.case_id}/confirmation", json={}, headers=as_role(VERIFIER)
    )
    assert confirmed.status_code == 202, confirmed.text
    read = await verification.client.get(f"/members/sidr/{FATIMA_ID}", headers=as_role(VERIFIER))
    assert read.status_code == 200 and read.json()["name"] == FATIMA_NAME
    await verification.settle()

    folder = data_dir(verification)
    assert (folder / "verification.sqlite").exists()
    assert (folder / "verification-views.sqlite").exists()
    assert plaintexts_in(folder, PERSONAL) == []
    # Nor in the service's log lines (the member routes' path names the national id;
    # the test's own HTTP client, which logs the URL it calls, is not the service).
    logged = [str(r.__dict__) for r in caplog.records if r.name.split(".")[0] != "httpx"]
    assert logged and [s for s in PERSONAL if any(s in line for line in logged)] == []


async def test_the_request_as_received_is_stored_sealed_under_the_applicants_key(
    in_process: Start,
) -> None:
    verification = await in_process("verification")
    plain = plain_request(FATIMA_ID, FATIMA_NAME, FATIMA_PHONE, FATIMA_EMAIL)
    await verification.deliver(plain)
    keyring = verification.app.sealer.keys
    [opened] = verification.app.events.get(plain.case_id)
    # The store's mapper opens it for the domain; the stored record is ciphertext.
    assert opened.received["applicant"]["name"] == FATIMA_NAME
    assert opened.personal_key == keyring.key_for("sidr", FATIMA_ID)
    [notification] = verification.app.read_notifications(0, 10, ["services.verification.domain:Verification.Opened"])
    stored = json.loads(notification.state)
    assert is_sealed(stored["received"]) and stored["received"]["key"] == opened.personal_key


# Members by the blind index -----------------------------------------------------------


async def test_a_members_standing_is_still_found_by_the_blind_index(in_process: Start) -> None:
    verification = await in_process("verification")
    await register_fatima(verification)
    stored = verification.app.repository.get(
        member_id("sidr", verification.app.sealer.keys.subject_index("sidr", FATIMA_ID))
    )
    assert stored.national_id == FATIMA_ID and stored.subject_index is not None

    fatima = sealed_request(
        verification, plain_request(FATIMA_ID, FATIMA_NAME, FATIMA_PHONE, FATIMA_EMAIL)
    )
    omar = sealed_request(verification, plain_request(OMAR_ID, OMAR_NAME, OMAR_PHONE, OMAR_EMAIL))
    await verification.deliver(fatima, omar)
    await verification.settle()

    def standing(request: RequestReceived) -> dict[str, Any]:
        doc = verification.runtime.views.get(VERIFICATIONS, str(request.case_id))
        return {c["name"]: c for c in doc["checks"]}["membership_standing"]

    # Suspended on the day she submitted: found, and judged on her standing.
    assert not standing(fatima)["passed"]
    assert "suspended" in standing(fatima)["detail"]
    assert standing(omar)["detail"].startswith("Not a ")  # no member: not found


async def test_a_member_registered_before_sealing_keeps_their_id_and_is_still_found(
    in_process: Start,
) -> None:
    verification = await in_process("verification")
    # As the older version stored them: id from the national id, everything plain.
    old = Member._create(
        Member.Registered,
        id=legacy_member_id("sidr", FATIMA_ID),
        association_id="sidr",
        national_id=FATIMA_ID,
        name=FATIMA_NAME,
        joined_on="2020-01-01",
        status="good",
        status_since="2020-01-01",
    )
    verification.app.save(old)

    shown = await verification.client.get(f"/members/sidr/{FATIMA_ID}", headers=as_role(ADMIN))
    assert shown.status_code == 200
    assert shown.json()["member_id"] == str(legacy_member_id("sidr", FATIMA_ID))
    assert shown.json()["name"] == FATIMA_NAME
    # An update is recorded on the same member (no second one), the new name sealed.
    updated = await verification.client.put(
        f"/members/sidr/{FATIMA_ID}",
        json={**MEMBER_ENTRY, "name": "فاطمة الزهراني"},
        headers=as_role(ADMIN),
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["member_id"] == str(legacy_member_id("sidr", FATIMA_ID))
    assert updated.json()["status"] == "suspended"
    renamed = verification.app.read_notifications(0, 10, ["services.verification.members:Member.Renamed"])
    assert [is_sealed(json.loads(n.state)["name"]) for n in renamed] == [True]


# Erasure -----------------------------------------------------------------------------


async def test_after_erasure_the_case_file_and_member_record_show_erased_and_views_rebuild(
    in_process: Start, tmp_path: Path
) -> None:
    verification = await in_process("verification")
    await register_fatima(verification)
    request = sealed_request(
        verification, plain_request(FATIMA_ID, FATIMA_NAME, FATIMA_PHONE, FATIMA_EMAIL)
    )
    await verification.deliver(request)
    await verification.settle()
    before = verification.runtime.views.get(VERIFICATIONS, str(request.case_id))

    erase(verification, FATIMA_ID)

    verifier = as_role(VERIFIER)
    file = await verification.client.get(f"/verifications/{request.case_id}/file", headers=verifier)
    assert file.status_code == 200, file.text
    [revision] = file.json()["revisions"]
    assert revision["received"] == ERASED_TEXT
    assert revision["checks"] and revision["suggested_outcome"] == "ineligible"  # the checks stand
    member = await verification.client.get(f"/members/sidr/{FATIMA_ID}", headers=verifier)
    assert member.status_code == 200, member.text
    assert member.json()["name"] == ERASED_TEXT and member.json()["national_id"] == ERASED_TEXT
    assert member.json()["status"] == "suspended"  # the standing names no one: it stays
    # The verification can still be confirmed, and the views rebuild as they were.
    confirmed = await verification.client.post(
        f"/verifications/{request.case_id}/confirmation", json={}, headers=verifier
    )
    assert confirmed.status_code == 202, confirmed.text
    rebuilt = rebuilt_views(verification, tmp_path)
    doc = rebuilt.get(VERIFICATIONS, str(request.case_id))
    assert doc is not None and doc["status"] == "confirmed"
    assert {k: v for k, v in doc.items() if k not in ROUND_CHANGES} == {
        k: v for k, v in before.items() if k not in ROUND_CHANGES
    }
    # A later request of the erased applicant is opened under a new key.
    again = sealed_request(
        verification, plain_request(FATIMA_ID, FATIMA_NAME, FATIMA_PHONE, FATIMA_EMAIL)
    )
    await verification.deliver(again)
    again_file = await verification.client.get(
        f"/verifications/{again.case_id}/file", headers=verifier
    )
    assert again_file.json()["revisions"][0]["received"]["applicant"]["name"] == FATIMA_NAME


# What the confirmation changes in the document (everything else must rebuild the same).
ROUND_CHANGES = {
    "status",
    "outcome",
    "officer",
    "actor",
    "reason",
    "confirmed_at",
    "confirmed_at_display",
    "data_verified_event_id",
    "checks",
    "corrections",
    "ineligible_rule",
    "ineligible_reason",
    "override_reason",
}


async def test_a_request_erased_before_it_arrives_is_not_verified(in_process: Start) -> None:
    verification = await in_process("verification")
    request = sealed_request(
        verification, plain_request(OMAR_ID, OMAR_NAME, OMAR_PHONE, OMAR_EMAIL)
    )
    erase(verification, OMAR_ID)
    await verification.deliver(request)  # consumed, nothing recorded, no failure
    assert request.case_id not in verification.app.repository


# Old plaintext events ----------------------------------------------------------------


async def test_events_stored_before_sealing_still_replay_and_show(
    in_process: Start, tmp_path: Path
) -> None:
    # An older version's store (tests/fixtures/v1): plaintext, phones in the checks.
    folder = tmp_path / "verification"
    folder.mkdir()
    shutil.copy(FIXTURES / "verification.sqlite", folder / "verification.sqlite")
    verification = await in_process("verification")
    # And a round whose data was kept before it was sealed (no personal_key).
    plain = plain_request(FATIMA_ID, FATIMA_NAME, FATIMA_PHONE, FATIMA_EMAIL)
    payload = plain.payload
    assert isinstance(payload.applicant, Applicant)
    kept = Verification.open(
        case_id=plain.case_id,
        request_event_id=plain.event_id,
        association_id="sidr",
        case_ref=plain.case_ref,
        correlation_id=plain.correlation_id,
        service_code=payload.service_code,
        channel=payload.channel,
        submitted_at=plain.occurred_at,
        applicant=payload.applicant.model_dump(mode="json"),
        attestation=None,
        fields={"request_details": PLANTING_SITE},
    )
    verification.app.save(kept)
    await verification.settle()

    docs = verification.runtime.views.find(VERIFICATIONS, limit=100)
    assert len(docs) == 9  # the fixture's eight, and the one kept plain
    file = await verification.client.get(
        f"/verifications/{plain.case_id}/file", headers=as_role(VERIFIER)
    )
    assert file.json()["revisions"][0]["received"]["applicant"]["name"] == FATIMA_NAME
    old_case = next(d for d in docs if d["case_id"] != str(plain.case_id))
    old_file = await verification.client.get(
        f"/verifications/{old_case['case_id']}/file", headers=as_role(VERIFIER, old_case["association_id"])
    )
    assert old_file.status_code == 200, old_file.text
    # The views show the old phone checks in today's words: no number in the read model.
    phone_checks = [c for d in docs for c in d["checks"] if c["name"] == "phone_format"]
    assert phone_checks and not any("+966" in c["detail"] for c in phone_checks)
    assert b"+966500000000" not in (folder / "verification-views.sqlite").read_bytes()
    # An old round confirmed now records (and publishes) no number either.
    [waiting] = [d for d in docs if d["status"] == "pending" and d["case_id"] != str(plain.case_id)]
    confirmed = await verification.client.post(
        f"/verifications/{waiting['case_id']}/confirmation",
        json={},
        headers=as_role(VERIFIER, waiting["association_id"]),
    )
    assert confirmed.status_code == 202, confirmed.text
    [recorded] = verification.app.read_notifications(
        verification.app.max_notification_id() - 1, 1, list(TRANSLATORS)
    )
    assert recorded.originator_id == UUID(waiting["case_id"])
    assert b"+966" not in recorded.state
    assert "+966" not in str(data_verified(verification.app.mapper.to_domain_event(recorded)))
