"""Surveys' domain: one survey per case, from the invitation to the answer.

Rating the service is the applicant's right (policy step 8). The applicant is
invited once the service was delivered, or once the committee rejected the
request, and may answer once, with the token of the invitation. The invitation
is recorded first and sent afterwards, through the applicant's channel, by a
dispatcher outside the command; the survey then records that it was sent, so
that it is sent once, or that it could not be sent to the contact it holds.
A request corrected by the applicant is published again with the next
revision: the survey takes the new contact, channel and service from it, and
ignores an earlier or repeated revision. The results are for improving the
service, never for judging staff: a survey knows the case's channel and
service, never who served the applicant.

The applicant's contact is personal data: the events that hold it declare it
(`personal_attributes`) with the id of the applicant's key (`personal_key`), and
the store keeps it sealed (decision 24). An anonymous answer is not recorded on
the survey at all (decision 16): the survey records only that it was answered,
and the answer is an `AnonymousAnswer` of its own, with the association,
service, channel, stage and ratings, and nothing of the case or the person.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate, event

from shared.errors import Gone, NotFound, Refused
from shared.events import Ratings

# The suppression rule (the minimum group size, the reasons) is one rule with the
# board report's: decision 19.
from shared.suppression import MINIMUM_GROUP_SIZE, hidden_groups, suppression_reason

STAGES = ("delivered", "rejected")

LANGUAGES = ("ar", "en")
DEFAULT_LANGUAGE = "ar"


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


class SurveyClosed(Gone):
    """The link of an answered survey: it worked once and is gone."""


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
    """The survey of one case; its id is the case id.

    Its events are declared with their fields: a field's name is how a stored
    event holds it, and a default lets an event stored before the field existed
    replay.
    """

    class Registered(Aggregate.Created):
        """The request arrived: the case's channel, service and how to reach the applicant."""

        case_id: UUID
        association_id: str
        case_ref: str
        correlation_id: UUID
        channel: str
        service_code: str
        phone: str | None = None
        email: str | None = None
        language: str = DEFAULT_LANGUAGE
        revision: int = 1
        # The applicant's key id: the contact is sealed under it at rest. Surveys
        # registered before encryption have none (and their contact is plain).
        personal_key: str | None = None

        personal_attributes: ClassVar[tuple[str, ...]] = ("phone", "email")

    @staticmethod
    def create_id(case_id: UUID, **_: Any) -> UUID:
        return case_id

    @event(Registered)
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
        revision: int = 1,
        personal_key: str | None = None,
    ):
        self.association_id = association_id
        self.case_ref = case_ref
        self.correlation_id = correlation_id
        self.channel = channel
        self.service_code = service_code
        # The defaults let a Registered event stored before these existed replay
        # (a replayed event passes only the fields it holds).
        # How to reach the applicant with the invitation: never part of the
        # answer, the results or the published event.
        self.phone = phone
        self.email = email
        self.language = language if language in LANGUAGES else DEFAULT_LANGUAGE
        # The request's revision these details come from (RequestReceived.payload.revision).
        self.revision = revision
        self.personal_key = personal_key
        self.stage: str | None = None
        self.token: str | None = None
        self.invitation_cause: UUID | None = None
        self.invited_at: datetime | None = None
        self.sent_at: datetime | None = None
        # Why the invitation could not be sent to the contact the survey holds
        # (a code of invitations.UNDELIVERABLE); cleared when the contact changes.
        self.undeliverable: str | None = None
        self.answered = False

    @property
    def invited(self) -> bool:
        return self.token is not None

    @property
    def sent(self) -> bool:
        return self.sent_at is not None

    @property
    def awaiting_sending(self) -> bool:
        return self.invited and not self.sent and self.undeliverable is None

    # A corrected request -----------------------------------------------------------

    def revise(
        self,
        *,
        revision: int,
        channel: str,
        service_code: str,
        phone: str | None,
        email: str | None,
        language: str,
        personal_key: str | None = None,
    ) -> None:
        """Takes the applicant's contact, channel and service from a later revision.

        The request is published again, whole, after each correction; an earlier
        revision or the same one again (a redelivery) changes nothing.
        """
        if revision <= self.revision:
            return
        self.trigger_event(
            self.RequestRevised,
            revision=revision,
            channel=channel,
            service_code=service_code,
            phone=phone,
            email=email,
            language=language if language in LANGUAGES else DEFAULT_LANGUAGE,
            contact_changed=(phone, email) != (self.phone, self.email),
            personal_key=personal_key or self.personal_key,
        )

    class RequestRevised(Aggregate.Event):
        """The applicant corrected the request: its contact, channel and service now."""

        personal_attributes: ClassVar[tuple[str, ...]] = ("phone", "email")

        revision: int
        channel: str
        service_code: str
        phone: str | None
        email: str | None
        language: str
        contact_changed: bool
        personal_key: str | None = None

        def apply(self, aggregate: Survey) -> None:
            aggregate.revision = self.revision
            aggregate.personal_key = self.personal_key or aggregate.personal_key
            aggregate.channel = self.channel
            aggregate.service_code = self.service_code
            aggregate.phone = self.phone
            aggregate.email = self.email
            aggregate.language = self.language
            if self.contact_changed:
                aggregate.undeliverable = None  # worth trying the new contact

    # Invitation ------------------------------------------------------------------

    def invite(self, *, stage: str, causation_id: UUID, token: str, invited_at: datetime) -> None:
        """Invites the applicant to rate the service; a case is invited only once."""
        if stage not in STAGES:
            raise ValueError(f"no survey is sent at stage {stage!r}")
        if not token:
            raise ValueError("an invitation needs a token")
        if self.invited:
            return
        self.trigger_event(
            self.Invited,
            association_id=self.association_id,
            case_ref=self.case_ref,
            channel=self.channel,
            service_code=self.service_code,
            stage=stage,
            causation_id=causation_id,
            token=token,
            invited_at=invited_at,
        )

    class Invited(Aggregate.Event):
        """The applicant is invited to rate the service; the token answers the survey once."""

        association_id: str
        case_ref: str
        channel: str
        service_code: str
        stage: str
        causation_id: UUID
        token: str
        invited_at: datetime

        def apply(self, aggregate: Survey) -> None:
            aggregate.stage = self.stage
            aggregate.token = self.token
            aggregate.invitation_cause = self.causation_id
            aggregate.invited_at = self.invited_at

    # Sending ---------------------------------------------------------------------

    def record_sent(self, *, message_id: str, sent_at: datetime) -> None:
        """Records that the invitation went out through the outbound port; once."""
        if not self.invited:
            raise ValueError("an invitation must be recorded before it is sent")
        if self.sent:
            return
        self.trigger_event(
            self.InvitationSent,
            association_id=self.association_id,
            channel=self.channel,
            message_id=message_id,
            sent_at=sent_at,
        )

    class InvitationSent(Aggregate.Event):
        association_id: str
        channel: str
        message_id: str
        sent_at: datetime

        def apply(self, aggregate: Survey) -> None:
            aggregate.sent_at = self.sent_at

    def record_undeliverable(self, *, reason: str, noted_at: datetime) -> None:
        """Records that the invitation cannot go to the contact held, instead of sending it.

        Once per contact: a later revision with another contact makes it
        worth sending again.
        """
        if not self.invited:
            raise ValueError("an invitation must be recorded before it is sent")
        if self.sent or self.undeliverable is not None:
            return
        self.trigger_event(
            self.InvitationUndeliverable,
            association_id=self.association_id,
            channel=self.channel,
            reason=reason,
            noted_at=noted_at,
        )

    class InvitationUndeliverable(Aggregate.Event):
        association_id: str
        channel: str
        reason: str  # a code of invitations.UNDELIVERABLE
        noted_at: datetime

        def apply(self, aggregate: Survey) -> None:
            aggregate.undeliverable = self.reason

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
    ) -> AnonymousAnswer | None:
        """Records the applicant's answer; the invitation's token works once.

        A named answer is the survey's (`Answered`, published on the case). An
        anonymous one is returned as an `AnonymousAnswer` to save with the survey:
        the survey records only that it was answered (`AnsweredAnonymously`), and
        the answer holds nothing of the case or the person (decision 16).
        """
        if not self.invited or token != self.token:
            # The same refusal as an unknown token: a wrong token reveals nothing.
            raise survey_not_found()
        if self.answered:
            raise already_answered()
        assert self.invitation_cause is not None and self.stage is not None
        if anonymous:
            self.trigger_event(self.AnsweredAnonymously, answered_at=answered_at)
            return AnonymousAnswer.record(
                event_id=event_id,
                association_id=self.association_id,
                channel=self.channel,
                service_code=self.service_code,
                stage=self.stage,
                ratings=ratings,
                comment=comment,
                answered_at=answered_at,
            )
        self.trigger_event(
            self.Answered,
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
            anonymous=False,
            answered_at=answered_at,
            personal_key=self.personal_key,
        )
        return None

    class Answered(Aggregate.Event):
        """The applicant's answer in their name: published as SurveyAnswered on the case.

        Answers recorded before anonymous answers had their own record are
        stored here too, with `anonymous` true.
        """

        # The applicant's own words, in their name: sealed at rest under their key.
        personal_attributes: ClassVar[tuple[str, ...]] = ("comment",)

        event_id: UUID
        causation_id: UUID
        association_id: str
        case_ref: str
        correlation_id: UUID
        channel: str
        service_code: str
        stage: str
        ratings: dict[str, Any]
        comment: str | None
        anonymous: bool
        answered_at: datetime
        personal_key: str | None = None

        def apply(self, aggregate: Survey) -> None:
            aggregate.answered = True

    class AnsweredAnonymously(Aggregate.Event):
        """The applicant answered anonymously: the link is spent; the answer is not here."""

        answered_at: datetime

        def apply(self, aggregate: Survey) -> None:
            aggregate.answered = True


def day_of(moment: datetime) -> datetime:
    """The start (UTC) of the day of `moment`: when an anonymous answer is dated."""
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


class AnonymousAnswer(Aggregate):
    """An anonymous answer: what the results count, and nothing that leads back to the
    case or the applicant (no case id or reference, no contact, no token, no key id).

    Its id is its own, random. It is dated by the day only, so that the moment a
    survey was answered does not pick out its answer among the day's. Published
    as SurveyAnswered under its own id (decision 16).
    """

    class Recorded(Aggregate.Created):
        event_id: UUID
        association_id: str
        channel: str
        service_code: str
        stage: str
        ratings: dict[str, Any]
        comment: str | None
        answered_at: datetime

    @classmethod
    def record(
        cls,
        *,
        event_id: UUID,
        association_id: str,
        channel: str,
        service_code: str,
        stage: str,
        ratings: Ratings,
        comment: str | None,
        answered_at: datetime,
    ) -> AnonymousAnswer:
        return cls._create(
            cls.Recorded,
            id=uuid4(),
            event_id=event_id,
            association_id=association_id,
            channel=channel,
            service_code=service_code,
            stage=stage,
            ratings=ratings.model_dump(mode="json"),
            comment=comment,
            answered_at=day_of(answered_at),
        )

    @event(Recorded)
    def __init__(
        self,
        *,
        event_id: UUID,
        association_id: str,
        channel: str,
        service_code: str,
        stage: str,
        ratings: dict[str, Any],
        comment: str | None,
        answered_at: datetime,
    ):
        self.association_id = association_id
        self.channel = channel
        self.service_code = service_code
        self.stage = stage
        self.ratings = dict(ratings)
        self.answered_at = answered_at


# Results -------------------------------------------------------------------------
#
# The rule, for every breakdown reported (by service, by channel, by stage, and the
# total, which is the breakdown by association):
#
# 1. A group with fewer than MINIMUM_GROUP_SIZE answers is hidden ("too_few_answers").
# 2. Hidden groups must not be recoverable by subtraction: the total minus the shown
#    groups is the sum of the hidden ones. While that sum covers fewer than
#    MINIMUM_GROUP_SIZE answers, the smallest shown group is hidden too
#    ("protects_a_smaller_group"). A breakdown therefore hides no group or hides
#    groups of MINIMUM_GROUP_SIZE answers or more together; when the total itself is
#    too small, every group and the total are hidden by rule 1.
# 3. Across associations, a group is hidden when it is hidden in any one
#    association's own results ("hidden_in_an_association"): otherwise the sum over
#    associations minus the other associations' figures would give it back. Rules 1
#    and 2 then apply to the sums.
# 4. The "would recommend" figures of a shown group follow rules 1 to 3 on their own
#    count (the question is optional, so fewer applicants may have answered it).


@dataclass(frozen=True)
class GroupTally:
    """The answers of one group (a service, a channel, a stage) of one association."""

    value: str
    answers: int
    satisfaction_sum: int
    recommend_answers: int = 0
    recommend_sum: int = 0
    promoters: int = 0  # recommend 9 or 10
    detractors: int = 0  # recommend 0 to 6
    association_id: str = ""

    def __add__(self, other: GroupTally) -> GroupTally:
        return GroupTally(
            value=self.value,
            answers=self.answers + other.answers,
            satisfaction_sum=self.satisfaction_sum + other.satisfaction_sum,
            recommend_answers=self.recommend_answers + other.recommend_answers,
            recommend_sum=self.recommend_sum + other.recommend_sum,
            promoters=self.promoters + other.promoters,
            detractors=self.detractors + other.detractors,
            association_id=self.association_id,
        )


def _recommend_figures(tally: GroupTally) -> dict[str, Any]:
    answers = tally.recommend_answers
    if not answers:
        return {"suppressed": False, "answers": 0, "average": None, "net_promoter_score": None}
    return {
        "suppressed": False,
        "answers": answers,
        "average": round(tally.recommend_sum / answers, 2),
        # The share of promoters (9-10) minus the share of detractors (0-6), in points.
        "net_promoter_score": round(100 * (tally.promoters - tally.detractors) / answers, 1),
    }


def _suppressed(code: str, minimum: int) -> dict[str, Any]:
    return {"suppressed": True, "why": suppression_reason(code, minimum)}


def _hidden_per_association(
    merged: Mapping[str, Mapping[str, GroupTally]], minimum: int
) -> tuple[dict[str, str], dict[str, str]]:
    """The groups hidden (answers, recommend) in each association's own breakdown."""
    answers_hidden: dict[str, str] = {}
    recommend_hidden: dict[str, str] = {}
    for groups in merged.values():
        answers = hidden_groups({v: t.answers for v, t in groups.items()}, minimum)
        recommend = hidden_groups(
            {v: t.recommend_answers for v, t in groups.items()}, minimum, answers
        )
        answers_hidden.update(answers)
        recommend_hidden.update(recommend)
    return answers_hidden, recommend_hidden


def group_results(
    dimension: str, tallies: Iterable[GroupTally], minimum: int = MINIMUM_GROUP_SIZE
) -> list[dict[str, Any]]:
    """Each group's figures, or `suppressed` with the reason, by the rule above.

    Tallies of the same group and association are added first; tallies of several
    associations are added after each association's own breakdown was checked.
    """
    merged: dict[str, dict[str, GroupTally]] = {}
    for tally in tallies:
        groups = merged.setdefault(tally.association_id, {})
        groups[tally.value] = groups[tally.value] + tally if tally.value in groups else tally
    if len(merged) > 1:
        hidden_elsewhere, recommend_hidden_elsewhere = _hidden_per_association(merged, minimum)
    else:
        hidden_elsewhere, recommend_hidden_elsewhere = {}, {}
    totals: dict[str, GroupTally] = {}
    for groups in merged.values():
        for value, tally in groups.items():
            totals[value] = totals[value] + tally if value in totals else tally

    hidden = hidden_groups({v: t.answers for v, t in totals.items()}, minimum, hidden_elsewhere)
    recommend_hidden = hidden_groups(
        {v: t.recommend_answers for v, t in totals.items()},
        minimum,
        [*hidden, *recommend_hidden_elsewhere],
    )
    results: list[dict[str, Any]] = []
    for value in sorted(totals):
        tally = totals[value]
        if value in hidden:
            results.append({dimension: value, **_suppressed(hidden[value], minimum)})
            continue
        recommend = (
            _suppressed(recommend_hidden[value], minimum)
            if value in recommend_hidden
            else _recommend_figures(tally)
        )
        results.append(
            {
                dimension: value,
                "suppressed": False,
                "answers": tally.answers,
                "average_satisfaction": round(tally.satisfaction_sum / tally.answers, 2),
                "recommend": recommend,
            }
        )
    return results
