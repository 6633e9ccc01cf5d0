"""Surveys' boundary: the applicant's answer becomes the `SurveyAnswered` integration event.

A named answer is published on its case. An anonymous answer is published under
its own id, as a case of one event: `case_id` and `correlation_id` are the
answer's id, `case_ref` is "anonymous" and there is no `causation_id`, so that
nothing on the stream leads from it to the case or the person (decision 16).
"""

from __future__ import annotations

from typing import Any

from eventsourcing.utils import get_topic

from services.surveys.domain import AnonymousAnswer, Survey
from shared.events import (
    Actor,
    IntegrationEvent,
    Ratings,
    SurveyAnswered,
    SurveyAnsweredPayload,
)
from shared.outbox import carried_envelope

ANONYMOUS = "anonymous"
# The case reference of an anonymous answer on the stream: it names no case.
ANONYMOUS_CASE_REF = "anonymous"


def survey_answered(event: Any) -> IntegrationEvent:
    actor_id = ANONYMOUS if event.anonymous else event.case_ref
    return SurveyAnswered(
        **carried_envelope(event),
        occurred_at=event.answered_at,
        actor=Actor(kind="applicant", id=actor_id),
        payload=SurveyAnsweredPayload(
            ratings=Ratings(**event.ratings),
            comment=event.comment,
            anonymous=event.anonymous,
            stage=event.stage,
            service_code=event.service_code,
            channel=event.channel,
        ),
    )


def survey_answered_anonymously(event: Any) -> IntegrationEvent:
    return SurveyAnswered(
        event_id=event.event_id,
        association_id=event.association_id,
        case_id=event.originator_id,
        case_ref=ANONYMOUS_CASE_REF,
        correlation_id=event.originator_id,
        causation_id=None,
        occurred_at=event.answered_at,
        actor=Actor(kind="applicant", id=ANONYMOUS),
        payload=SurveyAnsweredPayload(
            ratings=Ratings(**event.ratings),
            comment=event.comment,
            anonymous=True,
            stage=event.stage,
            service_code=event.service_code,
            channel=event.channel,
        ),
    )


TRANSLATORS = {
    get_topic(Survey.Answered): survey_answered,
    get_topic(AnonymousAnswer.Recorded): survey_answered_anonymously,
}
