"""Subjects and the stream name of the wire format.

`khidma.<association_id>.<case_id>.<EventType>` carries events; consumers filter
on the last token and an auditor fetches one case with `khidma.*.<case_id>.*`.
"""

from __future__ import annotations

from uuid import UUID

from shared.events import EVENT_TYPES

STREAM_NAME = "KHIDMA"
ROOT = "khidma"
SUBMISSIONS = f"{ROOT}.submissions"
DEAD_LETTERS = f"{ROOT}.deadletter"


def event_subject(association_id: str, case_id: UUID | str, event_type: str) -> str:
    return f"{ROOT}.{association_id}.{case_id}.{event_type}"


def event_type_filter(event_type: str) -> str:
    return f"{ROOT}.*.*.{event_type}"


def case_filter(case_id: UUID | str) -> str:
    return f"{ROOT}.*.{case_id}.*"


def submission_subject(association_id: str, channel: str) -> str:
    return f"{SUBMISSIONS}.{association_id}.{channel}"


SUBMISSIONS_WILDCARD = f"{SUBMISSIONS}.*.*"


def dead_letter_subject(service: str) -> str:
    return f"{DEAD_LETTERS}.{service}"


# The stream captures the event subjects and the dead letters, not all of
# `khidma.>`: a stream over `khidma.>` would also capture the request/reply
# submissions, and its publish ack would answer the adapter before intake does.
STREAM_SUBJECTS: tuple[str, ...] = tuple(
    event_type_filter(event_type) for event_type in EVENT_TYPES
) + (f"{DEAD_LETTERS}.*",)
