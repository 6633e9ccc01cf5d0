from datetime import datetime, timezone
from uuid import uuid4

import pytest

from services.intake.domain import Case, ChannelRef, channel_ref_id
from shared.errors import Refused

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 22, tzinfo=timezone.utc)


def received_case() -> Case:
    case_id = uuid4()
    return Case(
        case_id=case_id,
        event_id=uuid4(),
        association_id="sidr",
        case_ref="SID-1",
        channel="website",
        channel_ref="form-1",
        service_code="food-basket",
        applicant={"national_id": "1000000008", "name": "Ali"},
        fields={},
        attestation=None,
        actor={"kind": "adapter", "id": "website"},
        received_at=datetime(2026, 11, 21, tzinfo=timezone.utc),
    )


def test_a_received_case_is_identified_by_its_case_id():
    case = received_case()
    assert case.status == "received"
    assert case.correlation_id == case.received_event_id


def test_referral_is_caused_by_the_request():
    case = received_case()
    case.refer_to_researcher(event_id=uuid4(), at=NOW, reason="unclear", questions=["q"], referred_by="o1")
    referred = case.collect_events()[-1]
    assert isinstance(referred, Case.ReferredToResearcher)
    assert referred.causation_id == case.received_event_id
    assert referred.correlation_id == case.correlation_id
    assert case.referred


def test_delivery_before_approval_is_refused():
    case = received_case()
    with pytest.raises(Refused) as refused:
        case.deliver(event_id=uuid4(), at=NOW, delivered="x", delivered_by="o1")
    assert refused.value.code == "not_approved"
    assert refused.value.ar and refused.value.en


def test_delivery_after_rejection_is_refused():
    case = received_case()
    case.note_decision(source_event_id=uuid4(), decision="rejected")
    with pytest.raises(Refused):
        case.deliver(event_id=uuid4(), at=NOW, delivered="x", delivered_by="o1")


def test_delivery_after_approval_is_caused_by_the_decision():
    case = received_case()
    decision_id = uuid4()
    case.note_verification(source_event_id=uuid4(), outcome="verified")
    case.note_decision(source_event_id=decision_id, decision="approved")
    case.deliver(event_id=uuid4(), at=NOW, delivered="food basket", delivered_by="o1")
    delivered = case.collect_events()[-1]
    assert isinstance(delivered, Case.ServiceDelivered)
    assert delivered.causation_id == decision_id
    assert case.status == "delivered"


def test_a_service_is_delivered_once():
    case = received_case()
    case.note_decision(source_event_id=uuid4(), decision="approved")
    case.deliver(event_id=uuid4(), at=NOW, delivered="x", delivered_by="o1")
    with pytest.raises(Refused) as refused:
        case.deliver(event_id=uuid4(), at=NOW, delivered="x", delivered_by="o1")
    assert refused.value.code == "already_delivered"


def test_the_same_upstream_event_is_noted_once():
    case = received_case()
    source = uuid4()
    case.note_verification(source_event_id=source, outcome="verified")
    case.note_verification(source_event_id=source, outcome="verified")
    noted = [e for e in case.collect_events() if isinstance(e, Case.VerificationNoted)]
    assert len(noted) == 1


def test_a_late_verification_does_not_hide_the_decision():
    case = received_case()
    case.note_decision(source_event_id=uuid4(), decision="approved")
    case.note_verification(source_event_id=uuid4(), outcome="verified")
    assert case.status == "approved"


def test_the_channel_reference_index_is_derived_from_channel_and_reference():
    index = ChannelRef(association_id="sidr", channel="website", channel_ref="f1", case_id=uuid4())
    assert index.id == channel_ref_id("sidr", "website", "f1")
    assert index.id != channel_ref_id("sidr", "phone", "f1")
