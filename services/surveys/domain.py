"""Surveys' domain: one survey per case, from the invitation to the answer.

Rating the service is the applicant's right (policy step 8). The applicant is
invited once the service was delivered, or once the committee rejected the
request, and may answer once, with the token of the invitation. The invitation
is recorded first and sent afterwards, through the applicant's channel, by a
dispatcher outside the command; the survey then records that it was sent, so
that it is sent once. The results are for improving the service, never for
judging staff: a survey knows the case's channel and service, never who served
the applicant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from shared.errors import NotFound, Refused
from shared.events import Ratings

STAGES = ("delivered", "rejected")

LANGUAGES = ("ar", "en")
DEFAULT_LANGUAGE = "ar"

# A group of answers smaller than this is reported as suppressed, without figures,
# so that no one can read an individual applicant's or officer's rating from it.
MINIMUM_GROUP_SIZE = 5


def survey_not_found() -> NotFound:
    return NotFound(
        "survey_not_found",
        "No survey matches this link; check it or ask the association for a new one.",
        "لا يوجد استبيان يطابق هذا الرابط؛ تحقق منه أو اطلب رابطًا جديدًا من الجمعية.",
    )


def already_answered() -> Refused:
    return Refused(
        "already_answered",
        "This survey was already answered; thank you.",
        "تمت الإجابة على هذا الاستبيان من قبل؛ شكرًا لك.",
    )


class SurveyClosed(Refused):
    """The link of an answered survey: it worked once and is gone."""

    status = 410


def survey_closed() -> SurveyClosed:
    return SurveyClosed(
        "already_answered",
        "This survey was already answered and its link no longer works; thank you.",
        "تمت الإجابة على هذا الاستبيان ولم يعد رابطه صالحًا؛ شكرًا لك.",
    )


def preferred_language(fields: Mapping[str, Any]) -> str:
    """The language the applicant asked to be addressed in, Arabic unless said otherwise."""
    value = str(fields.get("language") or fields.get("preferred_language") or "").lower()
    return value if value in LANGUAGES else DEFAULT_LANGUAGE


class Survey(Aggregate):
    @staticmethod
    def create_id(case_id: UUID, **_: Any) -> UUID:
        return case_id

    @event("Registered")
    def __init__(
        self,
        *,
        case_id: UUID,
        association_id: str,
        case_ref: str,
        correlation_id: UUID,
        channel: str,
        service_code: str,
        phone: str | None = None,
        email: str | None = None,
        language: str = DEFAULT_LANGUAGE,
    ):
        self.association_id = association_id
        self.case_ref = case_ref
        self.correlation_id = correlation_id
        self.channel = channel
        self.service_code = service_code
        # The defaults let a Registered event stored before these existed replay;
        # eventsourcing still asks for them when a survey is created.
        # How to reach the applicant with the invitation: never part of the
        # answer, the results or the published event.
        self.phone = phone
        self.email = email
        self.language = language if language in LANGUAGES else DEFAULT_LANGUAGE
        self.stage: str | None = None
        self.token: str | None = None
        self.invitation_cause: UUID | None = None
        self.invited_at: datetime | None = None
        self.sent_at: datetime | None = None
        self.answered = False

    @property
    def invited(self) -> bool:
        return self.token is not None

    @property
    def sent(self) -> bool:
        return self.sent_at is not None

    @property
    def awaiting_sending(self) -> bool:
        return self.invited and not self.sent

    # Invitation ------------------------------------------------------------------

    def invite(
        self, *, stage: str, causation_id: UUID, token: str, invited_at: datetime
    ) -> None:
        """Invites the applicant to rate the service; a case is invited only once."""
        if stage not in STAGES:
            raise ValueError(f"no survey is sent at stage {stage!r}")
        if not token:
            raise ValueError("an invitation needs a token")
        if self.invited:
            return
        self._invited(
            association_id=self.association_id,
            case_ref=self.case_ref,
            channel=self.channel,
            service_code=self.service_code,
            stage=stage,
            causation_id=causation_id,
            token=token,
            invited_at=invited_at,
        )

    @event("Invited")
    def _invited(
        self,
        *,
        association_id: str,
        case_ref: str,
        channel: str,
        service_code: str,
        stage: str,
        causation_id: UUID,
        token: str,
        invited_at: datetime,
    ) -> None:
        self.stage = stage
        self.token = token
        self.invitation_cause = causation_id
        self.invited_at = invited_at

    # Sending ---------------------------------------------------------------------

    def record_sent(self, *, message_id: str, sent_at: datetime) -> None:
        """Records that the invitation went out through the outbound port; once."""
        if not self.invited:
            raise ValueError("an invitation must be recorded before it is sent")
        if self.sent:
            return
        self._invitation_sent(
            association_id=self.association_id,
            channel=self.channel,
            message_id=message_id,
            sent_at=sent_at,
        )

    @event("InvitationSent")
    def _invitation_sent(
        self, *, association_id: str, channel: str, message_id: str, sent_at: datetime
    ) -> None:
        self.sent_at = sent_at

    # The applicant's answer ---------------------------------------------------------

    def answer(
        self,
        *,
        token: str,
        event_id: UUID,
        ratings: Ratings,
        comment: str | None,
        anonymous: bool,
        answered_at: datetime,
    ) -> None:
        """Records the applicant's answer; the invitation's token works once."""
        if not self.invited or token != self.token:
            # The same refusal as an unknown token: a wrong token reveals nothing.
            raise survey_not_found()
        if self.answered:
            raise already_answered()
        assert self.invitation_cause is not None and self.stage is not None
        self._answered(
            event_id=event_id,
            causation_id=self.invitation_cause,
            association_id=self.association_id,
            case_ref=self.case_ref,
            correlation_id=self.correlation_id,
            channel=self.channel,
            service_code=self.service_code,
            stage=self.stage,
            ratings=ratings.model_dump(mode="json"),
            comment=comment,
            anonymous=anonymous,
            answered_at=answered_at,
        )

    @event("Answered")
    def _answered(
        self,
        *,
        event_id: UUID,
        causation_id: UUID,
        association_id: str,
        case_ref: str,
        correlation_id: UUID,
        channel: str,
        service_code: str,
        stage: str,
        ratings: dict[str, Any],
        comment: str | None,
        anonymous: bool,
        answered_at: datetime,
    ) -> None:
        self.answered = True


# Results -------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupTally:
    """The answers of one group (a service or a channel) counted so far."""

    value: str
    answers: int
    satisfaction_sum: int


def group_results(
    dimension: str, tallies: Iterable[GroupTally], minimum: int = MINIMUM_GROUP_SIZE
) -> list[dict[str, Any]]:
    """Each group's count and average satisfaction, or only `suppressed` below `minimum`.

    Tallies of the same group (e.g. from several associations) are added first.
    """
    merged: dict[str, list[int]] = {}
    for tally in tallies:
        totals = merged.setdefault(tally.value, [0, 0])
        totals[0] += tally.answers
        totals[1] += tally.satisfaction_sum
    results: list[dict[str, Any]] = []
    for value in sorted(merged):
        answers, satisfaction_sum = merged[value]
        if answers < minimum:
            results.append({dimension: value, "suppressed": True})
        else:
            results.append(
                {
                    dimension: value,
                    "suppressed": False,
                    "answers": answers,
                    "average_satisfaction": round(satisfaction_sum / answers, 2),
                }
            )
    return results
