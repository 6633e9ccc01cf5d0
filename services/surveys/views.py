"""Surveys' read models: the invitations, their tokens, and the results' tallies.

Nothing personal: no contact, and nothing of an answer on the invitation (an
anonymous answer adds to the tallies only, which have no case).
"""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import DomainEventProtocol

from services.surveys.domain import AnonymousAnswer, GroupTally, Survey
from services.surveys.invitations import undeliverable_reason
from shared.dates import both_calendars
from shared.views import ViewTransaction

SURVEYS = "surveys"
TOKENS = "survey_tokens"
RESULTS = "survey_results"

# The groups the results are reported by: service, channel, stage (delivered or
# rejected) and association. Never by officer: a survey does not even know who
# served the applicant.
DIMENSIONS = ("service_code", "channel", "stage", "association_id")


def result_key(association_id: str, dimension: str, value: str) -> str:
    return f"{association_id}:{dimension}:{value}"


def project(event: DomainEventProtocol, views: ViewTransaction) -> None:
    key = str(event.originator_id)
    if isinstance(event, Survey.Invited):
        invited_at = event.invited_at.isoformat()
        views.put(
            SURVEYS,
            key,
            {
                "case_id": key,
                "case_ref": event.case_ref,
                "association_id": event.association_id,
                "channel": event.channel,
                "service_code": event.service_code,
                "stage": event.stage,
                "token": event.token,
                "invited_at": invited_at,
                "invited_at_display": both_calendars(event.invited_at),
                "sent": False,
                "sent_at": None,
                "sent_at_display": None,
                "undeliverable": None,
                "undeliverable_at_display": None,
                "answered": False,
                "answered_at": None,
                "answered_at_display": None,
                "sort_key": invited_at,
            },
        )
        views.put(TOKENS, event.token, {"case_id": key})
    elif isinstance(event, Survey.InvitationSent):
        doc = views.get(SURVEYS, key)
        if doc is not None:
            doc["sent"] = True
            doc["sent_at"] = event.sent_at.isoformat()
            doc["sent_at_display"] = both_calendars(event.sent_at)
            views.put(SURVEYS, key, doc)
    elif isinstance(event, Survey.InvitationUndeliverable):
        doc = views.get(SURVEYS, key)
        if doc is not None:
            doc["undeliverable"] = undeliverable_reason(event.reason)
            doc["undeliverable_at_display"] = both_calendars(event.noted_at)
            views.put(SURVEYS, key, doc)
    elif isinstance(event, Survey.RequestRevised):
        doc = views.get(SURVEYS, key)
        if doc is not None:
            doc["channel"] = event.channel
            doc["service_code"] = event.service_code
            if event.contact_changed:
                doc["undeliverable"] = None  # the new contact is tried
                doc["undeliverable_at_display"] = None
            views.put(SURVEYS, key, doc)
    elif isinstance(event, (Survey.Answered, Survey.AnsweredAnonymously)):
        doc = views.get(SURVEYS, key)
        if doc is not None:
            doc["answered"] = True
            doc["answered_at"] = event.answered_at.isoformat()
            doc["answered_at_display"] = both_calendars(event.answered_at)
            views.put(SURVEYS, key, doc)
        if isinstance(event, Survey.Answered):
            _count(event, views)
    elif isinstance(event, AnonymousAnswer.Recorded):
        _count(event, views)


def _count(event: Survey.Answered | AnonymousAnswer.Recorded, views: ViewTransaction) -> None:
    """Adds an answer to the tallies of its service, channel, stage and association."""
    satisfaction = int(event.ratings["satisfaction"])
    recommend = event.ratings.get("recommend")  # optional
    for dimension in DIMENSIONS:
        value = getattr(event, dimension)
        tally_key = result_key(event.association_id, dimension, value)
        tally = views.get(RESULTS, tally_key) or {
            "association_id": event.association_id,
            "dimension": dimension,
            "value": value,
            "answers": 0,
            "satisfaction_sum": 0,
            "sort_key": tally_key,
        }
        tally["answers"] += 1
        tally["satisfaction_sum"] += satisfaction
        if recommend is not None:
            # .get: a tally of an older version (its views are rebuilt at start
            # when this code changes, so this only guards a hand-made file).
            recommend = int(recommend)
            tally["recommend_answers"] = tally.get("recommend_answers", 0) + 1
            tally["recommend_sum"] = tally.get("recommend_sum", 0) + recommend
            tally["promoters"] = tally.get("promoters", 0) + (recommend >= 9)
            tally["detractors"] = tally.get("detractors", 0) + (recommend <= 6)
        views.put(RESULTS, tally_key, tally)


def tallies(docs: list[dict[str, Any]], dimension: str) -> list[GroupTally]:
    return [
        GroupTally(
            value=doc["value"],
            answers=doc["answers"],
            satisfaction_sum=doc["satisfaction_sum"],
            recommend_answers=doc.get("recommend_answers", 0),
            recommend_sum=doc.get("recommend_sum", 0),
            promoters=doc.get("promoters", 0),
            detractors=doc.get("detractors", 0),
            association_id=doc["association_id"],
        )
        for doc in docs
        if doc["dimension"] == dimension
    ]
