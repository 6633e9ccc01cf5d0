"""A dead letter as it sits on the stream, and the notice that its replay was applied.

The tracking consumer and the outbox relay write them (shared/consumer.py,
shared/outbox.py); intake reads them to hold the cases they concern, and the
operators' command (shared/deadletters.py) lists and replays them. This module
only reads and names them: it holds no business rule.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from shared.subjects import DEAD_LETTERS, REPLAYED, SubjectParts, parse_event_subject

REASON_HEADER = "Khidma-Dead-Letter-Reason"
SUBJECT_HEADER = "Khidma-Original-Subject"
SEQUENCE_HEADER = "Khidma-Original-Sequence"
SERVICE_HEADER = "Khidma-Service"
# On a notice an operator wrote (`resolve`): the key of the dead letter it resolves,
# and how (RESOLVED rather than REPLAYED_NOTICE).
KEY_HEADER = "Khidma-Dead-Letter-Key"
RESOLUTION_HEADER = "Khidma-Resolution"

DEAD_LETTER = "dead_letter"
REPLAYED_NOTICE = "replayed"
RESOLVED = "resolved"


@dataclass(frozen=True)
class DeadLetter:
    """One message of `khidma.deadletter.<service>` or `khidma.replayed.<service>`.

    `key` names the dead letter across its replays: the service that set it
    aside and the stream sequence of the message it set aside (the outbox's
    set-asides have no such message: their key names the notification).
    """

    kind: str
    service: str
    sequence: int
    key: str
    reason: str
    original_subject: str | None
    original_sequence: int | None
    data: bytes
    #: on a notice: REPLAYED_NOTICE (its replay was applied) or RESOLVED (an operator
    #: settled it otherwise)
    resolution: str | None = None

    @property
    def subject_parts(self) -> SubjectParts | None:
        return parse_event_subject(self.original_subject or "")

    def body(self) -> dict[str, Any] | None:
        try:
            body = json.loads(self.data)
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def case_ids(self) -> list[UUID]:
        """The cases it concerns: the one its subject names and the one its body names."""
        found: list[UUID] = []
        parts = self.subject_parts
        candidates = [parts.case_id if parts else None, (self.body() or {}).get("case_id")]
        for candidate in candidates:
            try:
                case_id = UUID(str(candidate))
            except ValueError:
                continue
            if case_id not in found:
                found.append(case_id)
        return found

    def summary(self) -> dict[str, Any]:
        body = self.body() or {}
        return {
            "key": self.key,
            "kind": self.kind,
            "service": self.service,
            "sequence": self.sequence,
            "reason": self.reason,
            "original_subject": self.original_subject,
            "original_sequence": self.original_sequence,
            "event_type": body.get("event_type"),
            "event_id": body.get("event_id"),
            "case_ids": [str(c) for c in self.case_ids()],
        }


def dead_letter_key(service: str, original_sequence: int | None, sequence: int) -> str:
    if original_sequence is None:
        return f"{service}:set-aside:{sequence}"
    return f"{service}:{original_sequence}"


def read_dead_letter(
    subject: str, data: bytes, headers: Mapping[str, str] | None, sequence: int
) -> DeadLetter | None:
    """The dead letter or replay notice a stream message is; None for any other message."""
    prefix, _, service = subject.rpartition(".")
    if prefix == DEAD_LETTERS:
        kind = DEAD_LETTER
    elif prefix == REPLAYED:
        kind = REPLAYED_NOTICE
    else:
        return None
    headers = headers or {}
    raw_sequence = headers.get(SEQUENCE_HEADER)
    original_sequence = int(raw_sequence) if raw_sequence and raw_sequence.isdigit() else None
    return DeadLetter(
        kind=kind,
        service=headers.get(SERVICE_HEADER) or service,
        sequence=sequence,
        key=headers.get(KEY_HEADER) or dead_letter_key(service, original_sequence, sequence),
        reason=headers.get(REASON_HEADER, ""),
        original_subject=headers.get(SUBJECT_HEADER),
        original_sequence=original_sequence,
        data=data,
        resolution=headers.get(RESOLUTION_HEADER, REPLAYED_NOTICE)
        if kind == REPLAYED_NOTICE
        else None,
    )
