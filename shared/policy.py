"""Policy packs: each association's written policy, as data validated at start-up.

A pack is a TOML file in the policies folder (one per association). This
module only describes and loads them; the rules that use them live in the
services. A broken pack stops the service with the file, key and problem.
"""

from __future__ import annotations

import sys
import tomllib
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from shared.dates import from_hijri, to_hijri
from shared.events import ASSOCIATION_ID_PATTERN, RESERVED_ASSOCIATION_IDS, Contract
from shared.submissions import CHANNELS

DEFAULT_POLICIES_DIR = Path(__file__).resolve().parent.parent / "policies"


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
        try:
            number = float(value)
        except (TypeError, ValueError):
            return False
        if rule.minimum is not None and number < rule.minimum:
            return False
        if rule.maximum is not None and number > rule.maximum:
            return False
    return True


class PolicyError(Exception):
    """A pack that cannot be used; the message names the file, the key and the problem."""


def load_pack(path: Path) -> PolicyPack:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise PolicyError(f"{path}: cannot read the policy pack: {error}") from None
    try:
        pack = PolicyPack.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{_key(problem['loc'])}: {problem['msg']}" for problem in error.errors()
        )
        raise PolicyError(f"{path}: {problems}") from None
    if path.stem != pack.association_id:
        raise PolicyError(
            f"{path}: association_id '{pack.association_id}' must match the file name"
        )
    return pack


def load_packs(folder: Path) -> dict[str, PolicyPack]:
    """Every pack in the folder, keyed by association id."""
    paths = sorted(Path(folder).glob("*.toml"))
    if not paths:
        raise PolicyError(f"{folder}: no policy pack (*.toml) found")
    packs: dict[str, PolicyPack] = {}
    prefixes: dict[str, str] = {}
    for path in paths:
        pack = load_pack(path)
        if pack.case_prefix in prefixes:
            raise PolicyError(
                f"{path}: case_prefix '{pack.case_prefix}' is already used by "
                f"{prefixes[pack.case_prefix]}"
            )
        prefixes[pack.case_prefix] = pack.association_id
        packs[pack.association_id] = pack
    return packs


def load_packs_or_exit(folder: Path, service: str) -> dict[str, PolicyPack]:
    """The packs a service starts with; a broken one stops it at once (exit code 2)."""
    try:
        return load_packs(folder)
    except PolicyError as error:
        print(f"{service}: invalid policy pack / سياسة غير صالحة: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def _key(location: tuple[Any, ...]) -> str:
    key = ""
    for part in location:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key or "(file)"
