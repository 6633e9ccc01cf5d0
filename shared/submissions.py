"""What a channel adapter submits to intake, over HTTP or NATS request/reply."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shared.events import ASSOCIATION_ID_PATTERN, Applicant, Attestation, Contract, Document

# The channels named by the seed policies; each association enables a subset.
CHANNELS: tuple[str, ...] = (
    "interview",
    "phone",
    "social_media",
    "letter",
    "help_request",
    "volunteering",
    "website",
    "branch_office",
)
CHANNEL_PATTERN = "^(" + "|".join(CHANNELS) + ")$"


class Submission(Contract):
    """A request as an adapter hands it over. `(channel, channel_ref)` identifies it."""

    association_id: str = Field(pattern=ASSOCIATION_ID_PATTERN)
    channel: str = Field(pattern=CHANNEL_PATTERN)
    channel_ref: str = Field(min_length=1, max_length=200)
    service_code: str = Field(min_length=1, max_length=64)
    applicant: Applicant
    fields: dict[str, Any] = Field(default_factory=dict)
    documents: list[Document] = Field(default_factory=list)
    attestation: Attestation | None = None


class SubmissionBody(Contract):
    """The body on `khidma.submissions.<association_id>.<channel>`: the rest is in the subject."""

    channel_ref: str = Field(min_length=1, max_length=200)
    service_code: str = Field(min_length=1, max_length=64)
    applicant: Applicant
    fields: dict[str, Any] = Field(default_factory=dict)
    documents: list[Document] = Field(default_factory=list)
    attestation: Attestation | None = None


class SubmissionAccepted(Contract):
    case_id: str
    case_ref: str
    duplicate: bool
