"""The privacy service in process: erasure (crypto-shredding), legal holds, retention.

Each test plays intake's part itself: it makes the applicant's key in the
service's keyring, seals the request under it and delivers `RequestReceived`
with the key id and the blind index, as intake publishes it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from services.privacy.domain import Subject, subject_id
from services.privacy.integration import personal_data_erased
from services.privacy.retention import sweep
from services.privacy.views import ERASURES
from shared.clock import FrozenClock
from shared.events import Applicant, RequestReceived, Sealed, encode_event
from shared.personal.sealing import ERASED
from shared.roles import FRONT_DESK, PRIVACY_OFFICER
from tests import builders
from tests.auth import as_role
from tests.in_process import InProcessService

pytestmark = pytest.mark.unit

Start = Callable[..., Awaitable[InProcessService]]
OFFICER = as_role(PRIVACY_OFFICER, "sidr")
NATIONAL_ID = "1029384756"
NAME = "Nura Al-Qahtani"
ERASURE = {"reason": "the applicant asked", "legal_basis": "PDPL article 18"}


def request_of(
    privacy: InProcessService,
    *,
    national_id: str = NATIONAL_ID,
    association_id: str = "sidr",
    occurred_at: datetime | None = None,
) -> RequestReceived:
    """A request as intake publishes it: its personal part sealed under the applicant's key."""
    keyring = privacy.app.keyring
    key = keyring.key_for(association_id, national_id)
    applicant = Applicant(national_id=national_id, name=NAME, phone="0551234567")
    sealed = Sealed(**privacy.app.sealer.seal(key, applicant.model_dump(mode="json")))
    return builders.request_received(
        association_id=association_id,
        case_ref=f"SDR-1448-{uuid4().int % 1_000_000:06d}",
        occurred_at=occurred_at or datetime.now(UTC),
        applicant=sealed,
        personal_key=key,
        subject_index=keyring.subject_index(association_id, national_id),
    )


def subject_of(privacy: InProcessService, request: RequestReceived) -> Subject:
    assert request.payload.subject_index is not None
    subject: Subject = privacy.app.repository.get(
        subject_id(request.association_id, request.payload.subject_index)
    )
    return subject


def history(privacy: InProcessService, request: RequestReceived) -> list[Any]:
    subject = subject_of(privacy, request)
    return list(privacy.app.repository.event_store.get(subject.id))


async def erase(privacy: InProcessService, **body: Any) -> Any:
    return await privacy.client.post(
        "/associations/sidr/erasures",
        json={"national_id": NATIONAL_ID, **ERASURE, **body},
        headers=OFFICER,
    )


async def test_an_erasure_destroys_the_subjects_keys_and_records_the_events(
    in_process: Start,
) -> None:
    privacy = await in_process("privacy")
    request = request_of(privacy)
    await privacy.deliver(request)
    key = request.payload.personal_key
    assert key and privacy.app.keyring.key(key) is not None

    response = await erase(privacy)

    assert response.status_code == 201, response.text
    done = response.json()
    assert done["status"] == "completed" and done["key_ids"] == [key]
    assert done["case_refs"] == [request.case_ref]
    # The key is gone: the request's personal part, wherever it is kept, reads as erased.
    assert privacy.app.keyring.key(key) is None
    assert privacy.app.sealer.open(request.payload.applicant.model_dump()) is ERASED
    [record] = privacy.app.keyring.records(subject_index=request.payload.subject_index)
    assert record.destroyed_at and record.erasure_id == done["erasure_id"]
    # Both steps are events of the subject's history, the request with who and why.
    events = history(privacy, request)
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Registered", "CaseOpened", "ErasureRequested", "KeysDestroyed"]
    requested, destroyed = events[2], events[3]
    assert requested.reason == ERASURE["reason"]
    assert requested.legal_basis == ERASURE["legal_basis"]
    assert requested.actor["role"] == PRIVACY_OFFICER and requested.reason_code == "request"
    assert destroyed.key_ids == [key] and str(destroyed.erasure_id) == done["erasure_id"]
    # The integration event: association, key ids, erasure id, reason code; nothing personal.
    published = personal_data_erased(destroyed)
    assert published.event_type == "PersonalDataErased"
    assert published.association_id == "sidr"
    assert published.payload.key_ids == [key]
    assert str(published.payload.erasure_id) == done["erasure_id"]
    assert published.payload.reason_code == "request"
    assert published.payload.case_ids == [request.case_id]
    wire = encode_event(published)
    assert NATIONAL_ID.encode() not in wire and NAME.encode() not in wire
    # The erasure is listed for the privacy officer.
    await privacy.settle()
    listed = await privacy.client.get("/associations/sidr/erasures", headers=OFFICER)
    assert [e["erasure_id"] for e in listed.json()] == [done["erasure_id"]]
    assert listed.json()[0]["status"] == "completed"
    assert listed.json()[0]["key_ids"] == [key]


async def test_the_national_id_of_an_erasure_request_is_not_kept_anywhere(
    in_process: Start, tmp_path: Path
) -> None:
    privacy = await in_process("privacy")
    await privacy.deliver(request_of(privacy))
    assert (await erase(privacy)).status_code == 201
    await privacy.settle()
    for path in (tmp_path / "privacy").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert NATIONAL_ID.encode() not in data, path
            assert NATIONAL_ID.encode("utf-16-le") not in data, path


async def test_an_erasure_needs_a_reason_and_a_legal_basis(in_process: Start) -> None:
    privacy = await in_process("privacy")
    await privacy.deliver(request_of(privacy))
    for missing, code in (("reason", "reason_required"), ("legal_basis", "legal_basis_required")):
        response = await erase(privacy, **{missing: "  "})
        assert response.status_code == 422, response.text
        assert response.json()["error"] == code
        assert response.json()["message"]["ar"] and response.json()["message"]["en"]
    response = await erase(privacy, national_id="")
    assert response.status_code == 422 and response.json()["error"] == "national_id_required"


async def test_a_held_case_refuses_erasure_until_the_hold_is_released(
    in_process: Start,
) -> None:
    privacy = await in_process("privacy")
    request = request_of(privacy)
    await privacy.deliver(request)
    key = request.payload.personal_key
    assert key
    hold = f"/associations/sidr/cases/{request.case_id}/hold"

    placed = await privacy.client.post(hold, json={"reason": "court order 77"}, headers=OFFICER)
    assert placed.status_code == 200, placed.text
    assert placed.json()["held"] is True

    refused = await erase(privacy)
    assert refused.status_code == 409
    assert refused.json()["error"] == "legal_hold"
    assert request.case_ref in refused.json()["message"]["en"]
    assert "حجز قانوني" in refused.json()["message"]["ar"]
    assert privacy.app.keyring.key(key) is not None  # nothing was destroyed
    await privacy.settle()
    holds = await privacy.client.get("/associations/sidr/holds", headers=OFFICER)
    assert [h["case_id"] for h in holds.json()] == [str(request.case_id)]

    released = await privacy.client.post(
        f"{hold}/release", json={"reason": "the court lifted it"}, headers=OFFICER
    )
    assert released.status_code == 200 and released.json()["held"] is False
    erased = await erase(privacy)
    assert erased.status_code == 201, erased.text
    assert privacy.app.keyring.key(key) is None


async def test_a_hold_needs_a_reason_and_a_case_of_the_association(in_process: Start) -> None:
    privacy = await in_process("privacy")
    request = request_of(privacy)
    await privacy.deliver(request)
    hold = f"/associations/sidr/cases/{request.case_id}/hold"
    no_reason = await privacy.client.post(hold, json={"reason": ""}, headers=OFFICER)
    assert no_reason.status_code == 422 and no_reason.json()["error"] == "reason_required"
    unknown = await privacy.client.post(
        f"/associations/sidr/cases/{uuid4()}/hold", json={"reason": "x"}, headers=OFFICER
    )
    assert unknown.status_code == 404 and unknown.json()["error"] == "case_not_found"
    elsewhere = await privacy.client.post(
        f"/associations/health-coop/cases/{request.case_id}/hold",
        json={"reason": "x"},
        headers=as_role(PRIVACY_OFFICER, "health-coop"),
    )
    assert elsewhere.status_code == 404  # another association's officer learns nothing
    not_held = await privacy.client.post(f"{hold}/release", json={"reason": "x"}, headers=OFFICER)
    assert not_held.status_code == 409 and not_held.json()["error"] == "not_held"


async def closed_case(
    privacy: InProcessService, clock: FrozenClock, national_id: str = NATIONAL_ID
) -> RequestReceived:
    request = request_of(privacy, national_id=national_id, occurred_at=clock.now())
    delivered = builders.service_delivered(request, occurred_at=clock.now())
    await privacy.deliver(request, delivered)
    await privacy.settle()
    return request


async def swept(privacy: InProcessService) -> int:
    assert privacy.runtime.views is not None
    done = await privacy.runtime.store.run(sweep, privacy.app, privacy.runtime.views)
    await privacy.settle()
    return done


async def test_retention_erases_a_subject_on_the_moved_clock_and_not_before(
    in_process: Start,
) -> None:
    clock = FrozenClock(datetime(2026, 1, 1, 9, tzinfo=UTC))
    privacy = await in_process("privacy", clock=clock)
    retention = privacy.app.packs["sidr"].retention_days
    request = await closed_case(privacy, clock)
    key = request.payload.personal_key
    assert key

    clock.advance(timedelta(days=retention) - timedelta(hours=1))
    assert await swept(privacy) == 0
    assert privacy.app.keyring.key(key) is not None

    clock.advance(timedelta(hours=2))
    assert await swept(privacy) == 1
    assert privacy.app.keyring.key(key) is None
    events = history(privacy, request)
    requested = next(e for e in events if isinstance(e, Subject.ErasureRequested))
    assert requested.reason_code == "retention" and requested.actor["kind"] == "system"
    assert requested.legal_basis and str(retention) in requested.reason
    assert any(isinstance(e, Subject.KeysDestroyed) for e in events)
    assert privacy.runtime.views is not None
    [doc] = privacy.runtime.views.find(ERASURES, association_id="sidr")
    assert doc["reason_code"] == "retention" and doc["status"] == "completed"
    assert await swept(privacy) == 0  # once


async def test_retention_spares_an_open_case_and_a_held_one(in_process: Start) -> None:
    clock = FrozenClock(datetime(2026, 1, 1, 9, tzinfo=UTC))
    privacy = await in_process("privacy", clock=clock)
    retention = privacy.app.packs["sidr"].retention_days
    held = await closed_case(privacy, clock, national_id="1111111111")
    opened = request_of(privacy, national_id="2222222222", occurred_at=clock.now())
    await privacy.deliver(opened)
    # The same person's second request, still open, keeps the first one's data too.
    first = await closed_case(privacy, clock, national_id="3333333333")
    await privacy.deliver(request_of(privacy, national_id="3333333333", occurred_at=clock.now()))
    placed = await privacy.client.post(
        f"/associations/sidr/cases/{held.case_id}/hold", json={"reason": "audit"}, headers=OFFICER
    )
    assert placed.status_code == 200

    clock.advance(timedelta(days=retention * 3))
    assert await swept(privacy) == 0
    for request in (held, opened, first):
        assert privacy.app.keyring.key(str(request.payload.personal_key)) is not None

    released = await privacy.client.post(
        f"/associations/sidr/cases/{held.case_id}/hold/release",
        json={"reason": "audit done"},
        headers=OFFICER,
    )
    assert released.status_code == 200
    await privacy.settle()
    assert await swept(privacy) == 1
    assert privacy.app.keyring.key(str(held.payload.personal_key)) is None


async def test_an_erasure_interrupted_before_the_keys_were_destroyed_is_completed(
    in_process: Start,
) -> None:
    privacy = await in_process("privacy")
    request = request_of(privacy)
    await privacy.deliver(request)
    key = str(request.payload.personal_key)
    # The first step recorded, then the process stopped (a crash before destroy).
    subject = subject_of(privacy, request)
    erasure_id = subject.request_erasure(
        erasure_id=uuid4(),
        reason_code="request",
        reason="asked",
        legal_basis="PDPL article 18",
        actor={"kind": "officer", "id": "dpo"},
        requested_at=datetime.now(UTC),
    )
    privacy.app.save(subject)
    await privacy.settle()
    assert privacy.app.keyring.key(key) is not None

    assert await swept(privacy) == 1  # what the service runs at start and on each sweep

    assert privacy.app.keyring.key(key) is None
    done = subject_of(privacy, request)
    assert done.erasures[erasure_id].completed and done.pending_erasure is None
    assert privacy.runtime.views is not None
    assert privacy.runtime.views.get(ERASURES, erasure_id)["status"] == "completed"
    assert await swept(privacy) == 0


async def test_a_person_who_applies_again_after_an_erasure_gets_a_new_key_kept_by_it(
    in_process: Start,
) -> None:
    privacy = await in_process("privacy")
    await privacy.deliver(request_of(privacy))
    first = (await erase(privacy)).json()
    again = request_of(privacy)  # a new live key: the old one was destroyed
    await privacy.deliver(again)
    await privacy.settle()
    assert again.payload.personal_key not in first["key_ids"]
    # Completing the first erasure again (a sweep) does not destroy the new key.
    privacy.app.complete_erasure(subject_of(privacy, again).id, first["erasure_id"])
    assert privacy.app.keyring.key(str(again.payload.personal_key)) is not None


async def test_a_closure_before_its_request_waits_for_it(in_process: Start) -> None:
    from shared.consumer import RetryLater

    privacy = await in_process("privacy")
    request = request_of(privacy)
    with pytest.raises(RetryLater):
        await privacy.deliver(builders.service_delivered(request))
    await privacy.deliver(request)
    await privacy.deliver(builders.service_delivered(request))
    assert subject_of(privacy, request).cases[str(request.case_id)].outcome == "delivered"


async def test_erasure_is_the_privacy_officers(in_process: Start) -> None:
    privacy = await in_process("privacy")
    await privacy.deliver(request_of(privacy))
    front_desk = await privacy.client.post(
        "/associations/sidr/erasures",
        json={"national_id": NATIONAL_ID, **ERASURE},
        headers=as_role(FRONT_DESK, "sidr"),
    )
    assert front_desk.status_code == 403
