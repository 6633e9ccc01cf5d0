"""Surveys: the applicant's right to rate the service, once, and results that shame no one."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import ProcessingEvent
from eventsourcing.persistence import Tracking

from services.surveys.application import SurveysApplication
from services.surveys.domain import AnonymousAnswer, GroupTally, Survey, day_of, group_results
from services.surveys.integration import survey_answered, survey_answered_anonymously
from shared.clock import FrozenClock
from shared.consumer import RetryLater
from shared.errors import NotFound, Refused
from shared.events import (
    Actor,
    Applicant,
    CommitteeDecided,
    Ratings,
    RequestReceived,
    ServiceDelivered,
)
from shared.http import refusal_status
from tests import builders

pytestmark = pytest.mark.unit

NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


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
        revision=1,
        personal_key=None,
    )


def invited_survey(token: str = "the-token", stage: str = "delivered") -> Survey:
    survey = registered_survey()
    survey.invite(stage=stage, causation_id=uuid4(), token=token, invited_at=NOW)
    return survey


def answer(survey: Survey, token: str = "the-token", **overrides: object) -> AnonymousAnswer | None:
    arguments: dict[str, object] = {
        "token": token,
        "event_id": uuid4(),
        "ratings": Ratings(satisfaction=4, recommend=9),
        "comment": "Quick and kind.",
        "anonymous": True,
        "answered_at": NOW + timedelta(days=1),
    }
    arguments.update(overrides)
    return survey.answer(**arguments)  # type: ignore[arg-type]


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
    assert refusal_status(refused.value) == 409
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


def tally(
    value: str, *satisfaction: int, recommend: tuple[int, ...] = (), association: str = "sidr"
) -> GroupTally:
    """The tally of a group whose applicants gave these ratings."""
    return GroupTally(
        value=value,
        answers=len(satisfaction),
        satisfaction_sum=sum(satisfaction),
        recommend_answers=len(recommend),
        recommend_sum=sum(recommend),
        promoters=sum(1 for r in recommend if r >= 9),
        detractors=sum(1 for r in recommend if r <= 6),
        association_id=association,
    )


def by_value(results: list[dict[str, object]], dimension: str) -> dict[object, dict[str, object]]:
    return {row[dimension]: row for row in results}


def assert_says_why_in_both_languages(row: dict[str, object], code: str) -> None:
    assert row["suppressed"] is True
    assert set(row) == {next(iter(row)), "suppressed", "why"}, "no figures at all"
    why = row["why"]
    assert isinstance(why, dict)
    assert why["code"] == code and why["en"] and why["ar"]


def test_a_group_of_five_answers_or_more_shows_its_count_and_averages() -> None:
    [row] = group_results("channel", [tally("website", 5, 4, 4, 3, 4, recommend=(10, 9, 8, 6, 0))])

    assert row == {
        "channel": "website",
        "suppressed": False,
        "answers": 5,
        "average_satisfaction": 4.0,
        "recommend": {
            "suppressed": False,
            "answers": 5,
            "average": 6.6,
            # 2 promoters (9, 10) and 2 detractors (6, 0) of 5: 40% - 40%.
            "net_promoter_score": 0.0,
        },
    }


def test_the_net_promoter_score_is_the_share_of_9_and_10_minus_the_share_of_0_to_6() -> None:
    [row] = group_results("stage", [tally("delivered", 5, 5, 5, 5, 5, recommend=(10, 10, 9, 7, 3))])

    assert row["recommend"] == {
        "suppressed": False,
        "answers": 5,
        "average": 7.8,
        "net_promoter_score": 40.0,  # 3 of 5 promoters, 1 of 5 detractors
    }


def test_a_group_where_no_one_answered_would_recommend_shows_no_recommend_figures() -> None:
    [row] = group_results("stage", [tally("delivered", 4, 4, 4, 4, 4)])
    assert row["recommend"] == {
        "suppressed": False, "answers": 0, "average": None, "net_promoter_score": None
    }


def test_a_single_small_group_cannot_be_worked_out_from_the_total_and_its_sibling() -> None:
    # 5 delivered (average 4.6) and 1 rejected (rated 1): the total is 6 at 4.0, so
    # showing "delivered" would give the rejected applicant's 1 as 6 x 4.0 - 5 x 4.6.
    stages = [tally("delivered", 5, 5, 5, 4, 4), tally("rejected", 1)]
    total = group_results("association_id", [tally("sidr", 5, 5, 5, 4, 4, 1)])

    results = by_value(group_results("stage", stages), "stage")

    assert total[0]["answers"] == 6 and total[0]["average_satisfaction"] == 4.0
    assert_says_why_in_both_languages(results["rejected"], "too_few_answers")
    assert_says_why_in_both_languages(results["delivered"], "protects_a_smaller_group")


def test_with_five_five_and_one_the_smallest_other_group_is_hidden_with_the_one() -> None:
    services = [
        tally("food-basket", 4, 4, 4, 4, 4),
        tally("rent", 3, 3, 3, 3, 3),
        tally("school-bag", 1),
    ]

    results = by_value(group_results("service_code", services), "service_code")

    assert_says_why_in_both_languages(results["school-bag"], "too_few_answers")
    # Both others hold five: the first by name is hidden, so the hidden ones hold six.
    assert_says_why_in_both_languages(results["food-basket"], "protects_a_smaller_group")
    assert results["rent"]["answers"] == 5 and results["rent"]["average_satisfaction"] == 3.0


def test_the_smallest_shown_group_is_the_one_hidden_with_a_small_one() -> None:
    services = [tally("a", *[5] * 9), tally("b", *[4] * 6), tally("c", 1, 2)]

    results = by_value(group_results("service_code", services), "service_code")

    assert results["c"]["suppressed"] and results["b"]["suppressed"]
    assert results["a"]["answers"] == 9


def test_no_breakdown_leaves_fewer_than_five_hidden_answers_to_subtraction() -> None:
    for counts in itertools.product(range(8), repeat=3):
        groups = [tally(name, *[3] * count) for name, count in zip("abc", counts) if count]
        results = group_results("service_code", groups)
        hidden = sum(
            count
            for name, count in zip("abc", counts)
            if count and by_value(results, "service_code")[name]["suppressed"]
        )
        total = sum(counts)
        # Either nothing is hidden, or the hidden groups hold five or more together,
        # or the total itself is too small to be shown.
        assert hidden == 0 or hidden >= 5 or total < 5, counts


def test_the_total_below_five_is_suppressed() -> None:
    [row] = group_results("association_id", [tally("sidr", 5, 5, 5, 5)])
    assert_says_why_in_both_languages(row, "too_few_answers")


def test_a_group_hidden_in_one_association_is_hidden_in_the_sum_over_associations() -> None:
    # In sidr the single rejected answer is hidden (with delivered). Summed with
    # elites' five rejections, "rejected" would hold six: minus elites' own
    # figures it would give sidr's rejected applicant's rating back.
    tallies = [
        tally("delivered", 5, 5, 5, 4, 4, association="sidr"),
        tally("rejected", 1, association="sidr"),
        tally("delivered", 4, 4, 4, 4, 4, association="elites"),
        tally("rejected", 3, 3, 3, 3, 3, association="elites"),
    ]
    elites_alone = by_value(group_results("stage", tallies[2:]), "stage")
    assert elites_alone["rejected"]["answers"] == 5

    results = by_value(group_results("stage", tallies), "stage")

    assert_says_why_in_both_languages(results["rejected"], "hidden_in_an_association")
    assert_says_why_in_both_languages(results["delivered"], "hidden_in_an_association")


def test_groups_shown_in_every_association_are_added_over_associations() -> None:
    tallies = [
        tally("rent", 4, 4, 4, 4, 4, association="sidr"),
        tally("rent", 2, 2, 2, 2, 2, association="elites"),
    ]
    [row] = group_results("service_code", tallies)
    assert (row["answers"], row["average_satisfaction"]) == (10, 3.0)


def test_tallies_of_the_same_group_are_added_before_the_rule_applies() -> None:
    [row] = group_results("service_code", [tally("rent", 5, 5, 5), tally("rent", 2, 3)])
    assert (row["suppressed"], row["answers"], row["average_satisfaction"]) == (False, 5, 4.0)


def test_would_recommend_is_suppressed_on_its_own_count_and_by_subtraction() -> None:
    # Both stages show satisfaction, but only one rejected applicant said whether
    # they would recommend: the total's eleven minus delivered's ten would give it.
    stages = [
        tally("delivered", *[4] * 10, recommend=(9,) * 10),
        tally("rejected", 2, 2, 2, 2, 2, recommend=(0,)),
    ]

    results = by_value(group_results("stage", stages), "stage")

    assert results["rejected"]["answers"] == 5 and results["delivered"]["answers"] == 10
    rejected, delivered = results["rejected"]["recommend"], results["delivered"]["recommend"]
    assert rejected["suppressed"] and delivered["suppressed"]
    assert rejected["why"]["code"] == "too_few_answers" and rejected["why"]["ar"]
    assert delivered["why"]["code"] == "protects_a_smaller_group" and delivered["why"]["ar"]
    assert set(rejected) == {"suppressed", "why"}


# The published event ---------------------------------------------------------------


def test_an_anonymous_answer_is_published_without_the_applicants_reference() -> None:
    survey = invited_survey()
    anonymous = answer(survey, anonymous=True)
    assert anonymous is not None
    published = survey_answered_anonymously(anonymous.collect_events()[-1])
    assert published.actor == Actor(kind="applicant", id="anonymous")
    # Dated by the day only: the moment the survey was answered does not pick it out.
    assert published.occurred_at == day_of(NOW + timedelta(days=1))
    assert published.payload.anonymous and published.payload.ratings.satisfaction == 4


def test_an_anonymous_answer_is_not_recorded_on_the_survey_of_the_case() -> None:
    survey = invited_survey()
    survey.collect_events()
    anonymous = answer(survey, anonymous=True)

    [spent] = survey.collect_events()
    assert isinstance(spent, Survey.AnsweredAnonymously) and survey.answered
    assert set(vars(spent)) - {"originator_id", "originator_version", "timestamp"} == {
        "answered_at"
    }
    assert anonymous is not None and anonymous.id != survey.id
    [recorded] = anonymous.collect_events()
    held = json.dumps(vars(recorded), default=str)
    for link in (str(survey.id), survey.case_ref, str(survey.correlation_id), "the-token"):
        assert link not in held
    assert str(survey.invitation_cause) not in held


def test_an_anonymous_answer_on_the_stream_names_no_case_cause_or_correlation() -> None:
    survey = invited_survey()
    anonymous = answer(survey, anonymous=True)
    assert anonymous is not None
    published = survey_answered_anonymously(anonymous.collect_events()[-1])

    assert published.case_id == anonymous.id != survey.id
    assert published.case_ref == "anonymous"
    assert published.causation_id is None
    assert published.correlation_id == anonymous.id != survey.correlation_id
    assert survey.case_ref not in published.model_dump_json()


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


def request_received(case_id: UUID) -> RequestReceived:
    return builders.request_received(
        occurred_at=NOW,
        case_id=case_id,
        case_ref="SID-0000ABCD",
        channel_ref="form-1",
        service_code="food-basket",
        applicant=Applicant(national_id="1000000001", name="Applicant"),
    )


def service_delivered(received: RequestReceived) -> ServiceDelivered:
    return builders.service_delivered(
        received,
        occurred_at=NOW,
        service_code="food-basket",
        delivered="one basket",
        delivered_by="officer-1",
    )


def committee_decided(received: RequestReceived, decision: str) -> CommitteeDecided:
    return builders.committee_decided(
        received, occurred_at=NOW, decision=decision, reasons=["policy"]
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
