"""Surveys: the applicant's right to rate the service, once, and results that shame no one."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import ProcessingEvent
from eventsourcing.persistence import Tracking

from services.surveys.application import SurveysApplication
from services.surveys.domain import GroupTally, Survey, group_results
from services.surveys.integration import survey_answered
from shared.clock import FrozenClock
from shared.consumer import RetryLater
from shared.errors import NotFound, Refused
from shared.events import (
    Actor,
    Applicant,
    CommitteeDecided,
    CommitteeDecidedPayload,
    Ratings,
    RequestReceived,
    RequestReceivedPayload,
    ServiceDelivered,
    ServiceDeliveredPayload,
)

pytestmark = pytest.mark.unit

NOW = datetime(2025, 3, 1, 9, 0, tzinfo=timezone.utc)


def registered_survey() -> Survey:
    return Survey(
        case_id=uuid4(),
        association_id="sidr",
        case_ref="SID-0000ABCD",
        correlation_id=uuid4(),
        channel="website",
        service_code="food-basket",
        phone="+966500000001",
        email=None,
        language="ar",
    )


def invited_survey(token: str = "the-token", stage: str = "delivered") -> Survey:
    survey = registered_survey()
    survey.invite(stage=stage, causation_id=uuid4(), token=token, invited_at=NOW)
    return survey


def answer(survey: Survey, token: str = "the-token", **overrides: object) -> None:
    arguments: dict[str, object] = dict(
        token=token,
        event_id=uuid4(),
        ratings=Ratings(satisfaction=4, recommend=9),
        comment="Quick and kind.",
        anonymous=True,
        answered_at=NOW + timedelta(days=1),
    )
    arguments.update(overrides)
    survey.answer(**arguments)  # type: ignore[arg-type]


# The aggregate ------------------------------------------------------------------


def test_invitation_records_the_token_the_stage_the_cause_and_the_time() -> None:
    survey = registered_survey()
    cause = uuid4()

    survey.invite(stage="delivered", causation_id=cause, token="abc", invited_at=NOW)

    invited = survey.collect_events()[-1]
    assert isinstance(invited, Survey.Invited)
    assert (invited.stage, invited.token, invited.causation_id, invited.invited_at) == (
        "delivered",
        "abc",
        cause,
        NOW,
    )
    assert (invited.channel, invited.service_code) == ("website", "food-basket")


def test_a_case_is_invited_only_once() -> None:
    survey = invited_survey(token="first")
    survey.collect_events()

    survey.invite(stage="rejected", causation_id=uuid4(), token="second", invited_at=NOW)

    assert survey.collect_events() == []
    assert survey.token == "first"
    assert survey.stage == "delivered"


def test_no_invitation_at_any_other_stage() -> None:
    survey = registered_survey()
    with pytest.raises(ValueError):
        survey.invite(stage="approved", causation_id=uuid4(), token="t", invited_at=NOW)
    assert not survey.invited


def test_answer_carries_what_the_public_event_needs() -> None:
    survey = registered_survey()
    cause = uuid4()
    survey.invite(stage="rejected", causation_id=cause, token="t", invited_at=NOW)

    answer(survey, token="t", anonymous=False)

    answered = survey.collect_events()[-1]
    assert isinstance(answered, Survey.Answered)
    assert answered.causation_id == cause
    assert answered.correlation_id == survey.correlation_id
    assert answered.stage == "rejected"
    assert answered.ratings == {"satisfaction": 4, "recommend": 9}
    assert answered.anonymous is False
    assert survey.answered


def test_second_answer_with_the_same_token_is_refused() -> None:
    survey = invited_survey()
    answer(survey)

    with pytest.raises(Refused) as refused:
        answer(survey)

    assert refused.value.code == "already_answered"
    assert refused.value.status == 409
    assert refused.value.en and refused.value.ar


def test_a_wrong_token_is_refused_as_if_unknown() -> None:
    survey = invited_survey(token="right")

    with pytest.raises(NotFound) as refused:
        answer(survey, token="wrong")

    assert refused.value.code == "survey_not_found"
    assert refused.value.en and refused.value.ar
    assert not survey.answered


def test_a_survey_cannot_be_answered_before_the_invitation() -> None:
    survey = registered_survey()
    with pytest.raises(NotFound):
        answer(survey, token="")


# The results ---------------------------------------------------------------------


def test_groups_with_fewer_than_five_answers_are_suppressed_without_figures() -> None:
    results = group_results(
        "channel",
        [GroupTally("website", 5, 20), GroupTally("phone", 4, 20)],
    )

    assert results == [
        {"channel": "phone", "suppressed": True},
        {
            "channel": "website",
            "suppressed": False,
            "answers": 5,
            "average_satisfaction": 4.0,
        },
    ]


def test_tallies_of_the_same_group_are_added_before_the_rule_applies() -> None:
    results = group_results(
        "service_code", [GroupTally("rent", 3, 15), GroupTally("rent", 2, 5)]
    )
    assert results == [
        {"service_code": "rent", "suppressed": False, "answers": 5, "average_satisfaction": 4.0}
    ]


# The published event ---------------------------------------------------------------


def test_an_anonymous_answer_is_published_without_the_applicants_reference() -> None:
    survey = invited_survey()
    answer(survey, anonymous=True)
    published = survey_answered(survey.collect_events()[-1])
    assert published.actor == Actor(kind="applicant", id="anonymous")
    assert published.occurred_at == NOW + timedelta(days=1)


def test_a_named_answer_is_published_with_the_case_reference() -> None:
    survey = invited_survey()
    answer(survey, anonymous=False)
    published = survey_answered(survey.collect_events()[-1])
    assert published.actor == Actor(kind="applicant", id="SID-0000ABCD")
    assert published.payload.ratings == Ratings(satisfaction=4, recommend=9)


# The application, on the in-memory store ---------------------------------------------


@pytest.fixture
def app() -> SurveysApplication:
    return SurveysApplication(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=FrozenClock(NOW)
    )


_positions = itertools.count(1)


def handle(app: SurveysApplication, handler: object, event: object) -> None:
    processing = ProcessingEvent(tracking=Tracking("nats:KHIDMA", next(_positions)))
    handler(event, processing)  # type: ignore[operator]
    app.record_processing(processing)


def envelope(case_id: UUID, correlation_id: UUID) -> dict[str, object]:
    return dict(
        event_id=uuid4(),
        occurred_at=NOW,
        association_id="sidr",
        case_id=case_id,
        case_ref="SID-0000ABCD",
        correlation_id=correlation_id,
    )


def request_received(case_id: UUID) -> RequestReceived:
    event_id = uuid4()
    return RequestReceived(
        **{**envelope(case_id, event_id), "event_id": event_id},  # type: ignore[arg-type]
        actor=Actor(kind="adapter", id="http:website"),
        payload=RequestReceivedPayload(
            channel="website",
            channel_ref="form-1",
            service_code="food-basket",
            applicant=Applicant(national_id="1000000001", name="Applicant"),
        ),
    )


def service_delivered(received: RequestReceived) -> ServiceDelivered:
    return ServiceDelivered(
        **envelope(received.case_id, received.correlation_id),  # type: ignore[arg-type]
        causation_id=uuid4(),
        actor=Actor(kind="officer", id="officer-1"),
        payload=ServiceDeliveredPayload(
            service_code="food-basket", delivered="one basket", delivered_by="officer-1"
        ),
    )


def committee_decided(received: RequestReceived, decision: str) -> CommitteeDecided:
    return CommitteeDecided(
        **envelope(received.case_id, received.correlation_id),  # type: ignore[arg-type]
        causation_id=uuid4(),
        actor=Actor(kind="committee", id="committee"),
        payload=CommitteeDecidedPayload(
            decision=decision,  # type: ignore[arg-type]
            reasons=["policy"],
            votes=[],
            window_days=14,
            within_window=True,
        ),
    )


def survey_of(app: SurveysApplication, case_id: UUID) -> Survey:
    return app.repository.get(case_id)  # type: ignore[no-any-return]


def test_delivery_invites_the_applicant_caused_by_the_delivery(
    app: SurveysApplication,
) -> None:
    received = request_received(uuid4())
    delivered = service_delivered(received)
    handle(app, app.on_request_received, received)
    handle(app, app.on_service_delivered, delivered)

    survey = survey_of(app, received.case_id)
    assert survey.stage == "delivered"
    assert survey.invitation_cause == delivered.event_id
    assert survey.invited_at == NOW
    assert survey.token and len(survey.token) >= 16
    assert survey.correlation_id == received.correlation_id


def test_rejection_invites_the_applicant_and_approval_does_not(
    app: SurveysApplication,
) -> None:
    approved = request_received(uuid4())
    rejected = request_received(uuid4())
    for received in (approved, rejected):
        handle(app, app.on_request_received, received)

    handle(app, app.on_committee_decided, committee_decided(approved, "approved"))
    decision = committee_decided(rejected, "rejected")
    handle(app, app.on_committee_decided, decision)

    assert not survey_of(app, approved.case_id).invited
    assert survey_of(app, rejected.case_id).stage == "rejected"
    assert survey_of(app, rejected.case_id).invitation_cause == decision.event_id


def test_the_same_request_received_twice_registers_the_case_once(
    app: SurveysApplication,
) -> None:
    received = request_received(uuid4())
    handle(app, app.on_request_received, received)
    handle(app, app.on_request_received, received)

    assert survey_of(app, received.case_id).version == 1


def test_a_delivery_before_the_request_is_retried_later(app: SurveysApplication) -> None:
    received = request_received(uuid4())
    with pytest.raises(RetryLater):
        handle(app, app.on_service_delivered, service_delivered(received))


def test_a_second_delivery_keeps_the_first_invitation(app: SurveysApplication) -> None:
    received = request_received(uuid4())
    handle(app, app.on_request_received, received)
    handle(app, app.on_service_delivered, service_delivered(received))
    token = survey_of(app, received.case_id).token

    handle(app, app.on_service_delivered, service_delivered(received))

    assert survey_of(app, received.case_id).token == token
    assert survey_of(app, received.case_id).version == 2


def test_the_applicant_answers_once_through_the_application(
    app: SurveysApplication,
) -> None:
    received = request_received(uuid4())
    handle(app, app.on_request_received, received)
    handle(app, app.on_service_delivered, service_delivered(received))
    token = survey_of(app, received.case_id).token
    assert token is not None
    ratings = Ratings(satisfaction=5)

    app.answer(received.case_id, token=token, ratings=ratings, comment=None, anonymous=True)
    with pytest.raises(Refused) as refused:
        app.answer(
            received.case_id, token=token, ratings=ratings, comment=None, anonymous=True
        )

    assert refused.value.code == "already_answered"
    with pytest.raises(NotFound):
        app.answer(uuid4(), token=token, ratings=ratings, comment=None, anonymous=True)
