"""Policy packs: each association's written policy, as validated data.

This module describes a pack and what its eligibility rules mean; it reads no
file, so domain code may import it. Reading and validating the TOML files, and
stopping a service on a broken one, is shared.policy_loader's work.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from shared.dates import from_hijri, to_hijri
from shared.events import ASSOCIATION_ID_PATTERN, RESERVED_ASSOCIATION_IDS, Contract
from shared.inputs import finite_number
from shared.submissions import CHANNELS


class Text(Contract):
    """A text a person reads: Arabic first, English beside it."""

    ar: str = Field(min_length=1)
    en: str = Field(min_length=1)


class FieldRequirement(Contract):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: Text
    kind: Literal["text", "integer", "number", "date", "boolean"] = "text"


class DocumentRequirement(Contract):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: Text
    has_expiry: bool = False


class EligibilityRule(Contract):
    """A condition on one field of the request; failing it makes the applicant ineligible."""

    field: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    minimum: float | None = None
    maximum: float | None = None
    one_of: list[str] | None = None
    reason: Text

    @model_validator(mode="after")
    def _has_a_condition(self) -> EligibilityRule:
        if self.minimum is None and self.maximum is None and self.one_of is None:
            raise ValueError("an eligibility rule needs minimum, maximum or one_of")
        return self


class ServiceDefinition(Contract):
    code: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    name: Text
    members_only: bool = False
    required_fields: list[FieldRequirement] = Field(default_factory=list)
    required_documents: list[DocumentRequirement] = Field(default_factory=list)
    eligibility: list[EligibilityRule] = Field(default_factory=list)


class CommitteeMember(Contract):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: Text
    role: Literal["chair", "member", "secretary"] = "member"


class Committee(Contract):
    members: list[CommitteeMember] = Field(min_length=1)
    quorum: int = Field(ge=1)

    @model_validator(mode="after")
    def _quorum_is_reachable(self) -> Committee:
        if self.quorum > len(self.members):
            raise ValueError(f"quorum {self.quorum} is more than the {len(self.members)} members")
        ids = [member.id for member in self.members]
        if len(set(ids)) != len(ids):
            raise ValueError("committee member ids must be unique")
        return self


class SurveyDefinition(Contract):
    invitation: Text
    satisfaction_question: Text
    recommend_question: Text
    comment_question: Text


class BoardApproval(Contract):
    """The board's approval of the policy, as the policy states it."""

    body: Text
    meeting: str | None = None
    session: str | None = None
    date_as_written: str = Field(min_length=1)
    calendar: Literal["hijri", "gregorian"]
    hijri: str | None = Field(
        default=None, pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD, Hijri"
    )
    gregorian: date | None = None

    @model_validator(mode="after")
    def _both_calendars(self) -> BoardApproval:
        """The written date is kept as written; the other calendar is derived."""
        try:
            return self._derive_the_other_calendar()
        except OverflowError:
            # A pack is judged at start-up: a clear message, not a traceback.
            raise ValueError(
                "the approval date is outside the Umm al-Qura table "
                "(1343-1500 AH, 1924-08-01 .. 2077-11-16)"
            ) from None

    def _derive_the_other_calendar(self) -> BoardApproval:
        if self.calendar == "hijri":
            if self.hijri is None:
                raise ValueError("a Hijri approval date needs `hijri` (YYYY-MM-DD)")
            year, month, day = (int(part) for part in self.hijri.split("-"))
            derived = from_hijri(year, month, day)
            if self.gregorian not in (None, derived):
                raise ValueError(f"gregorian {self.gregorian} is not hijri {self.hijri}")
            object.__setattr__(self, "gregorian", derived)
        else:
            if self.gregorian is None:
                raise ValueError("a Gregorian approval date needs `gregorian`")
            hijri = to_hijri(self.gregorian)
            object.__setattr__(self, "hijri", f"{hijri.year:04d}-{hijri.month:02d}-{hijri.day:02d}")
        return self


class ClientTerm(Contract):
    """What the association calls the people it serves."""

    kind: Literal["member", "beneficiary", "user"]
    singular: Text
    plural: Text


class PolicyPack(Contract):
    association_id: str = Field(pattern=ASSOCIATION_ID_PATTERN)
    case_prefix: str = Field(pattern=r"^[A-Z]{2,5}$")
    name: Text
    clients: ClientTerm
    channels: list[str] = Field(min_length=1)
    tools: list[Text] = Field(default_factory=list)
    decision_window_days: int = Field(ge=1, le=365)
    services: list[ServiceDefinition] = Field(min_length=1)
    committee: Committee
    survey: SurveyDefinition
    board_approval: BoardApproval | None = None
    retention_days: int = Field(
        default=1826,
        ge=30,
        le=36500,
        description="how long the personal data of a closed case is kept, in days after "
        "the case closed (rejected or delivered); the privacy service then erases the "
        "data subject whose cases are all closed that long and none under a legal hold",
    )
    source: str = Field(description="the seed policy this pack transcribes")

    @field_validator("association_id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_ASSOCIATION_IDS:
            raise ValueError(f"'{value}' is reserved")
        return value

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, channels: list[str]) -> list[str]:
        unknown = sorted(set(channels) - set(CHANNELS))
        if unknown:
            raise ValueError(f"unknown channels {unknown}; known: {list(CHANNELS)}")
        if len(set(channels)) != len(channels):
            raise ValueError("a channel is listed twice")
        return channels

    @field_validator("services")
    @classmethod
    def _unique_service_codes(cls, services: list[ServiceDefinition]) -> list[ServiceDefinition]:
        codes = [service.code for service in services]
        if len(set(codes)) != len(codes):
            raise ValueError("service codes must be unique")
        return services

    def service(self, code: str) -> ServiceDefinition | None:
        return next((s for s in self.services if s.code == code), None)

    def enables(self, channel: str) -> bool:
        return channel in self.channels


def eligibility_failures(
    service: ServiceDefinition, fields: dict[str, Any]
) -> list[EligibilityRule]:
    """The pack's eligibility rules that the given fields fail (a missing field fails).

    This is what an eligibility rule of a pack means, shared by the preview at
    intake and the check at verification so the two can never disagree.
    """
    failed = []
    for rule in service.eligibility:
        value = fields.get(rule.field)
        if value is None or not _satisfies(rule, value):
            failed.append(rule)
    return failed


def _satisfies(rule: EligibilityRule, value: Any) -> bool:
    if rule.one_of is not None and str(value) not in rule.one_of:
        return False
    if rule.minimum is not None or rule.maximum is not None:
        # Finite only: NaN is neither below a minimum nor above a maximum, so read as a
        # number it would meet every bound.
        number = finite_number(value)
        if number is None:
            return False
        if rule.minimum is not None and number < rule.minimum:
            return False
        if rule.maximum is not None and number > rule.maximum:
            return False
    return True
