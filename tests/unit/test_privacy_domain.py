"""The data subject's rules, without any infrastructure: holds, erasure, retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from services.privacy.domain import Subject, subject_id
from shared.errors import Invalid, Refused

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OFFICER = {"kind": "officer", "id": "dpo", "role": "privacy_officer"}


def subject_with_case() -> tuple[Subject, object]:
    subject = Subject(association_id="sidr", subject_index="ab" * 20)
    case_id = uuid4()
    subject.open_case(case_id=case_id, case_ref="SDR-1", personal_key="sk-1", opened_at=T0)
    return subject, case_id


def request(subject: Subject) -> str:
    return subject.request_erasure(
        erasure_id=uuid4(),
        reason_code="request",
        reason="asked",
        legal_basis="PDPL 18",
        actor=OFFICER,
        requested_at=T0,
    )


def test_a_subjects_id_is_derived_from_the_association_and_the_index() -> None:
    assert Subject(association_id="sidr", subject_index="a" * 40).id == subject_id("sidr", "a" * 40)
    assert subject_id("sidr", "a" * 40) != subject_id("elites", "a" * 40)


def test_a_held_case_refuses_the_erasure_with_the_legal_hold_code() -> None:
    subject, case_id = subject_with_case()
    subject.place_hold(case_id=case_id, reason="court", actor=OFFICER, placed_at=T0)
    with pytest.raises(Refused) as refused:
        request(subject)
    assert refused.value.code == "legal_hold" and "SDR-1" in refused.value.en
    assert subject.pending_erasure is None
    subject.release_hold(case_id=case_id, reason="lifted", actor=OFFICER, released_at=T0)
    assert request(subject) in subject.erasures


def test_a_pending_erasure_is_completed_not_requested_twice() -> None:
    subject, _ = subject_with_case()
    first = request(subject)
    assert request(subject) == first and len(subject.erasures) == 1
    subject.record_keys_destroyed(event_id=uuid4(), erasure_id=first, key_ids=["sk-1"], destroyed_at=T0)
    subject.record_keys_destroyed(event_id=uuid4(), erasure_id=first, key_ids=["sk-1"], destroyed_at=T0)
    destroyed = [e for e in subject.collect_events() if isinstance(e, Subject.KeysDestroyed)]
    assert len(destroyed) == 1 and subject.live_cases == []


def test_an_erasure_without_reason_or_legal_basis_is_invalid() -> None:
    subject, _ = subject_with_case()
    for reason, basis in (("", "PDPL"), ("asked", " ")):
        with pytest.raises(Invalid):
            subject.request_erasure(
                erasure_id=uuid4(), reason_code="request", reason=reason,
                legal_basis=basis, actor=OFFICER, requested_at=T0,
            )


def test_retention_counts_from_the_latest_closure_of_every_case() -> None:
    subject, first = subject_with_case()
    second = uuid4()
    subject.open_case(case_id=second, case_ref="SDR-2", personal_key="sk-1", opened_at=T0)
    subject.close_case(case_id=first, outcome="rejected", closed_at=T0, source_event_id=uuid4())
    assert subject.retention_from() is None  # the second is still open
    later = T0 + timedelta(days=100)
    subject.close_case(case_id=second, outcome="delivered", closed_at=later, source_event_id=uuid4())
    assert subject.retention_from() == later
    assert not subject.retention_due(later + timedelta(days=364), 365)
    assert subject.retention_due(later + timedelta(days=365), 365)
    subject.place_hold(case_id=first, reason="audit", actor=OFFICER, placed_at=later)
    assert not subject.retention_due(later + timedelta(days=9999), 365)
    assert not subject.erase_for_retention(erasure_id=uuid4(), now=later + timedelta(days=9999), retention_days=365)
