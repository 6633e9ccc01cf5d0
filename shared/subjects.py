"""Subjects and the stream name of the wire format.

`khidma.<association_id>.<case_id>.<EventType>` carries events; consumers filter
on the last token and an auditor fetches one case with `khidma.*.<case_id>.*`.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import NamedTuple
from uuid import UUID

from shared.events import EVENT_TYPES, IntegrationEvent

STREAM_NAME = "KHIDMA"
ROOT = "khidma"
SUBMISSIONS = f"{ROOT}.submissions"
DEAD_LETTERS = f"{ROOT}.deadletter"
# An operator's replay of a dead letter, for the one service that set it aside,
# and that service's notice that the replay was applied (shared/deadletters.py).
REPLAY = f"{ROOT}.replay"
REPLAYED = f"{ROOT}.replayed"


def event_subject(association_id: str, case_id: UUID | str, event_type: str) -> str:
    return f"{ROOT}.{association_id}.{case_id}.{event_type}"


class SubjectParts(NamedTuple):
    association_id: str
    case_id: str
    event_type: str


def parse_event_subject(subject: str) -> SubjectParts | None:
    """The three tokens of an event subject; None for any other subject."""
    tokens = subject.split(".")
    if len(tokens) != 4 or tokens[0] != ROOT:
        return None
    return SubjectParts(tokens[1], tokens[2], tokens[3])


def subject_mismatch(
    subject: str, event: IntegrationEvent, associations: Collection[str] = ()
) -> str | None:
    """Why an event cannot be taken as sent on this subject; None when it can.

    A body that names another case, association or type than its subject would
    be filed under the wrong case (or a case nobody filters for). `associations`
    are the ones the service serves (its packs); empty means any.
    """
    parts = parse_event_subject(subject)
    if parts is None:
        return f"subject {subject} is not an event subject"
    if parts.event_type != event.event_type:
        return f"subject says {parts.event_type}, body is a {event.event_type}"
    if parts.association_id != event.association_id:
        return f"subject says association {parts.association_id}, body says {event.association_id}"
    if parts.case_id != str(event.case_id):
        return f"subject says case {parts.case_id}, body says {event.case_id}"
    if associations and event.association_id not in associations:
        return f"association {event.association_id} is not served here"
    return None


def event_type_filter(event_type: str) -> str:
    return f"{ROOT}.*.*.{event_type}"


def case_filter(case_id: UUID | str) -> str:
    return f"{ROOT}.*.{case_id}.*"


def submission_subject(association_id: str, channel: str) -> str:
    return f"{SUBMISSIONS}.{association_id}.{channel}"


SUBMISSIONS_WILDCARD = f"{SUBMISSIONS}.*.*"


def dead_letter_subject(service: str) -> str:
    return f"{DEAD_LETTERS}.{service}"


def replay_subject(service: str) -> str:
    return f"{REPLAY}.{service}"


def replayed_subject(service: str) -> str:
    return f"{REPLAYED}.{service}"


# What a service watching every service's dead letters (intake) filters on.
DEAD_LETTER_FILTERS: tuple[str, ...] = (f"{DEAD_LETTERS}.*", f"{REPLAYED}.*")


# The stream captures the event subjects and the dead letters, not all of
# `khidma.>`: a stream over `khidma.>` would also capture the request/reply
# submissions, and its publish ack would answer the adapter before intake does.
STREAM_SUBJECTS: tuple[str, ...] = tuple(
    event_type_filter(event_type) for event_type in EVENT_TYPES
) + (f"{DEAD_LETTERS}.*", f"{REPLAY}.*", f"{REPLAYED}.*")
