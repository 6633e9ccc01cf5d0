"""Surveys' boundary: the applicant's answer becomes the `SurveyAnswered` integration event."""

from __future__ import annotations

from typing import Any

from eventsourcing.utils import get_topic

from services.surveys.domain import Survey
from shared.events import (
    Actor,
    IntegrationEvent,
    Ratings,
    SurveyAnswered,
    SurveyAnsweredPayload,
)
from shared.outbox import carried_envelope

ANONYMOUS = "anonymous"


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


TRANSLATORS = {
    get_topic(Survey.Answered): survey_answered,
}
