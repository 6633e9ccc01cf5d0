"""Surveys' boundary: the applicant's answer becomes the `SurveyAnswered` integration event.

A named answer is published on its case. An anonymous answer is published under
its own id, as a case of one event: `case_id` and `correlation_id` are the
answer's id, `case_ref` is "anonymous" and there is no `causation_id`, so that
nothing on the stream leads from it to the case or the person (decision 16).
"""

from __future__ import annotations

import functools
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
from shared.personal import Sealer, is_sealed
from shared.personal.mapper import is_erased_value

ANONYMOUS = "anonymous"
# The case reference of an anonymous answer on the stream: it names no case.
ANONYMOUS_CASE_REF = "anonymous"


def _comment(event: Any, sealer: Sealer | None) -> dict[str, Any]:
    """The named answer's comment as published: sealed under the applicant's key when
    its event has one (as stored; the audit translates without a sealer), else plain."""
    comment, key_id = event.comment, getattr(event, "personal_key", None)
    if is_erased_value(comment):
        return {"comment": None}
    if comment is None or not key_id:
        return {"comment": comment}
    if sealer is not None and not is_sealed(comment):
        comment = sealer.seal(key_id, comment)
    return {"comment": comment, "personal_key": key_id}


def survey_answered(event: Any, sealer: Sealer | None = None) -> IntegrationEvent:
    actor_id = ANONYMOUS if event.anonymous else event.case_ref
    return SurveyAnswered(
        **carried_envelope(event),
        occurred_at=event.answered_at,
        actor=Actor(kind="applicant", id=actor_id),
        payload=SurveyAnsweredPayload(
            ratings=Ratings(**event.ratings),
            **_comment(event, sealer),
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


def translators(sealer: Sealer | None) -> dict[str, Any]:
    """The outbox's translators; a named answer's comment sealed with `sealer`."""
    return {
        **TRANSLATORS,
        get_topic(Survey.Answered): functools.partial(survey_answered, sealer=sealer),
    }
