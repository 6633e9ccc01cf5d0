"""Policy packs: each association's written policy, as validated data.

This module describes a pack and what its eligibility rules mean; it reads no
file, so domain code may import it. Reading and validating the TOML files, and
stopping a service on a broken one, is shared.policy_loader's work.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, time
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from shared.dates import RIYADH, from_hijri, to_hijri
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


class PolicyVersion(Contract):
    """Which version of the association's policy a pack is, and from when it governs.

    A pack without a `[version]` table is version 1, in force since always: an
    association with one pack behaves as before versions existed.
    """

    number: int = Field(default=1, ge=1, le=10_000)
    takes_effect: datetime | None = Field(
        default=None,
        description="the moment this version governs the requests received from then on; "
        "a day alone is its start in Riyadh time; none only for version 1 (since always)",
    )

    @field_validator("takes_effect", mode="before")
    @classmethod
    def _a_day_starts_in_riyadh(cls, value: Any) -> Any:
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime.combine(value, time(0, 0), RIYADH)
        return value

    @field_validator("takes_effect")
    @classmethod
    def _aware_in_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("give the moment with its offset (2025-01-01T00:00:00+03:00) or a day")
        return value.astimezone(UTC)


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
    version: PolicyVersion = Field(default_factory=PolicyVersion)

    @field_validator("association_id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_ASSOCIATION_IDS:
            raise ValueError(f"'{value}' is reserved")
        return value

    @model_validator(mode="after")
    def _a_later_version_is_approved_before_it_governs(self) -> PolicyPack:
        if self.version.number == 1:
            return self
        takes_effect = self.version.takes_effect
        if takes_effect is None:
            raise ValueError(
                f"version.takes_effect: version {self.version.number} needs the moment it takes effect"
            )
        if self.board_approval is None or self.board_approval.gregorian is None:
            raise ValueError(
                f"board_approval: version {self.version.number} needs the board's approval "
                "(meeting and date as written)"
            )
        if self.board_approval.gregorian > takes_effect.astimezone(RIYADH).date():
            raise ValueError(
                f"version.takes_effect: {takes_effect.isoformat()} is before the board "
                f"approved it ({self.board_approval.gregorian})"
            )
        return self

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

    @property
    def number(self) -> int:
        return self.version.number

    def digest(self) -> str:
        """The SHA-256 of the version's whole content: an adopted version is this text."""
        content = self.model_dump(mode="json")
        canonical = json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class PolicyHistory:
    """An association's policy versions, side by side, in their order.

    Which version governs a request is decided once, when it is received (the
    version in force then), and recorded on the case; the history answers for
    the moments and the numbers the cases and their events name.
    """

    def __init__(self, versions: list[PolicyPack] | tuple[PolicyPack, ...]):
        if not versions:
            raise ValueError("a policy history holds at least one version")
        self.versions: tuple[PolicyPack, ...] = tuple(sorted(versions, key=lambda p: p.number))
        self.association_id = self.versions[0].association_id

    @property
    def latest(self) -> PolicyPack:
        return self.versions[-1]

    def version(self, number: int) -> PolicyPack | None:
        return next((pack for pack in self.versions if pack.number == number), None)

    def in_force(self, at: datetime) -> PolicyPack:
        """The version governing a request received at `at`: the latest that has taken
        effect (the first version governs whatever came before it)."""
        governing = self.versions[0]
        for pack in self.versions[1:]:
            takes_effect = pack.version.takes_effect
            if takes_effect is not None and takes_effect <= at:
                governing = pack
        return governing

    def governing(self, number: int | None, received_at: datetime | None) -> PolicyPack | None:
        """The version a case names (None when this history has no such version); a
        case recorded before versions names none and is governed by the version in
        force when it was received (else the first)."""
        if number is not None:
            return self.version(number)
        return self.in_force(received_at) if received_at is not None else self.versions[0]

    def in_force_during(self, start: datetime, end: datetime) -> list[PolicyPack]:
        """The versions that governed some moment of [start, end]."""
        first = self.in_force(start)
        return [
            pack
            for pack in self.versions
            if pack.number >= first.number
            and (pack.version.takes_effect is None or pack.version.takes_effect <= end)
        ]


class UnknownPolicyVersion(LookupError):
    """A case names a version of its association's policy this service has not loaded:
    its policies folder is behind the one that received the case."""

    def __init__(self, association_id: str, number: int, known: list[int]):
        self.en = (
            f"{association_id}: the case is governed by version {number} of the policy, "
            f"which this service has not loaded (it has {known}); give every service the "
            "same policies folder"
        )
        self.ar = (
            f"{association_id}: يحكم الطلبَ الإصدار {number} من السياسة، ولم تحمّله هذه "
            f"الخدمة (لديها {known})؛ اجعل مجلد السياسات واحدًا لكل الخدمات"
        )
        super().__init__(f"{self.en} / {self.ar}")


class Policies(Mapping[str, PolicyPack]):
    """Every association's policy history. As a mapping (association id -> pack) it
    gives the version in force now, at the clock it is bound to, so code that only
    needs today's policy reads it as it always did."""

    def __init__(
        self,
        histories: Mapping[str, PolicyHistory],
        now: Callable[[], datetime] | None = None,
    ):
        self.histories: dict[str, PolicyHistory] = dict(histories)
        self._now = now or (lambda: datetime.now(UTC))

    @classmethod
    def of(cls, packs: Mapping[str, PolicyPack] | None) -> Policies:
        """Packs given one per association (a single version each), or already Policies."""
        if isinstance(packs, Policies):
            return packs
        return cls({key: PolicyHistory([pack]) for key, pack in (packs or {}).items()})

    def bound_to(self, now: Callable[[], datetime]) -> Policies:
        return Policies(self.histories, now)

    def __getitem__(self, association_id: str) -> PolicyPack:
        return self.histories[association_id].in_force(self._now())

    def __iter__(self) -> Iterator[str]:
        return iter(self.histories)

    def __len__(self) -> int:
        return len(self.histories)

    def history(self, association_id: str) -> PolicyHistory | None:
        return self.histories.get(association_id)

    def governing(
        self, association_id: str, number: int | None, received_at: datetime | None
    ) -> PolicyPack | None:
        """The version that governs a case (see PolicyHistory.governing); None for an
        association without a pack. A version this service has not loaded is not
        guessed at: UnknownPolicyVersion."""
        history = self.histories.get(association_id)
        if history is None:
            return None
        pack = history.governing(number, received_at)
        if pack is None:
            assert number is not None
            raise UnknownPolicyVersion(
                association_id, number, [version.number for version in history.versions]
            )
        return pack


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
