"""Integration events: the contract between the services.

Each event is the envelope of the brief's wire format with a typed payload.
Models forbid unknown fields when a service builds an event (strict on the way
out) and `decode_event` ignores them when a service reads one (tolerant on the
way in), so a producer can add a field without breaking older consumers.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
)
from pydantic_core import PydanticCustomError

from shared.dates import is_marked_hijri, read_day
from shared.errors import Invalid
from shared.inputs import plain_data_problem
from shared.roles import ActorKind

SCHEMA_VERSION = 1
# The version of ReferredToResearcher and DataVerified whose staff's words about the
# applicant (a referral's reason and questions, an override's reason) may be sealed
# under the applicant's key (`personal_key`). Version 1 carried them plain; a
# consumer reads both (the fields accept either), docs/operations.md, 7.
SEALED_WORDS_SCHEMA_VERSION = 2
# The version of RequestReceived, DataVerified and CommitteeDecided that names the
# version of the association's policy governing the case (`policy_version`, the
# version in force when the request was received). Older events name none: the case
# is governed by the version in force when it was received (docs/decisions.md, 37).
POLICY_VERSIONS_SCHEMA_VERSION = 3

# An association id is a subject token: lower-case letters, digits and dashes.
ASSOCIATION_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
RESERVED_ASSOCIATION_IDS = frozenset({"submissions", "deadletter"})


class Contract(BaseModel):
    # A NaN passes every comparison as false, so no contract carries one (nor infinity).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _is_none(value: Any) -> bool:
    return value is None


def _policy_version() -> Any:
    return Field(
        default=None,
        ge=1,
        le=10_000,
        description="the version of the association's policy that governs the case: the "
        "one in force when the request was received; absent in events published before "
        "policies were versioned",
        exclude_if=_is_none,
    )


def schema_version_of(policy_version: int | None, earlier: int) -> int:
    """An event naming its case's policy version is of the versioned contract; one
    translated from a store event recorded before versions keeps its earlier one."""
    return POLICY_VERSIONS_SCHEMA_VERSION if policy_version is not None else earlier


class Actor(Contract):
    """Who did it: the authenticated principal (its subject at the issuer, its
    display name and the role it acted in), or the applicant, or the system.
    Events recorded before identities were proven carry only kind and id."""

    kind: ActorKind
    id: str = Field(min_length=1, max_length=200)
    # An actor recorded before identities were proven reads on the wire as it
    # always did, {kind, id}, without nulls for what it never had.
    name: str | None = Field(default=None, max_length=200, exclude_if=_is_none)
    role: str | None = Field(default=None, max_length=100, exclude_if=_is_none)


class Sealed(Contract):
    """A personal value sealed under its data subject's key (shared/personal):
    AES-256-GCM, base64 of the nonce and the ciphertext. Unreadable once the
    subject's key is destroyed (an erasure)."""

    sealed: Literal["v1"]
    key: str = Field(min_length=1, max_length=64)
    data: str = Field(min_length=1)
    shape: str | None = Field(default=None, exclude_if=_is_none)


class Applicant(Contract):
    national_id: str = Field(min_length=1, max_length=20)
    name: str = Field(min_length=1, max_length=200)
    phone: str | None = Field(default=None, max_length=32)
    email: str | None = Field(default=None, max_length=254)


class Attestation(Contract):
    """The applicant's declaration that the data is correct and theirs to answer for (step 4).

    `data_hash` is the SHA-256 of the exact data attested (see `attested_data_hash`
    in intake), so a later change of the data is visible.
    """

    attested: bool
    attested_by: str | None = Field(default=None, max_length=200)
    attested_at: AwareDatetime | None = None
    method: Literal["paper_scan", "one_time_code", "in_person"] | None = None
    data_hash: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


def _hijri_read(value: Any) -> Any:
    """A Hijri date typed with its mark ("1441-05-20h") is its Gregorian day; whether
    the day can be right for the field is judged where it enters (shared.dates)."""
    if isinstance(value, str) and is_marked_hijri(value):
        try:
            return read_day(value, "date")
        except Invalid as error:
            raise PydanticCustomError("invalid_date", f"{error.en} / {error.ar}") from None
    return value


# A day: Gregorian (YYYY-MM-DD), or Hijri marked (YYYY-MM-DDh), held as Gregorian.
Day = Annotated[date, BeforeValidator(_hijri_read)]


class Document(Contract):
    """A document the applicant provided; validity is judged at submission time."""

    code: str = Field(min_length=1, max_length=64)
    number: str | None = Field(default=None, max_length=64)
    issued_on: Day | None = None
    expires_on: Day | None = None


class Correction(Contract):
    """What the applicant must correct, in both languages."""

    field: str
    ar: str
    en: str


class Explanation(Contract):
    """A sentence a person reads, in both languages."""

    ar: str = Field(min_length=1)
    en: str = Field(min_length=1)


def _plain_fields(fields: dict[str, Any]) -> dict[str, Any]:
    problem = plain_data_problem(fields)
    if problem is not None:
        raise ValueError(f"the fields cannot be taken: {problem.code} at {problem.where}")
    return fields


# A request's fields are free JSON: finite numbers and real text only, as intake takes
# them, so what a consumer decodes is what was submitted and re-encodes the same.
PlainFields = Annotated[dict[str, Any], AfterValidator(_plain_fields)]


class RequestReceivedPayload(Contract):
    channel: str = Field(min_length=1, max_length=64)
    channel_ref: str = Field(min_length=1, max_length=200)
    service_code: str = Field(min_length=1, max_length=64)
    # Personal data: sealed on the stream under the applicant's key (`personal_key`);
    # plain only in events published before encryption.
    applicant: Sealed | Applicant
    fields: Sealed | PlainFields = Field(default_factory=dict)
    documents: Sealed | list[Document] = Field(default_factory=list)
    attestation: Sealed | Attestation | None = None
    personal_key: str | None = Field(
        default=None,
        max_length=64,
        description="the id of the applicant's key the personal fields are sealed with",
        exclude_if=_is_none,
    )
    subject_index: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{40}$",
        description="the keyed blind index (HMAC) of the applicant's national id within "
        "the association: finds their requests and standing without the number",
        exclude_if=_is_none,
    )
    submitted_at: AwareDatetime | None = Field(
        default=None,
        description="when the applicant submitted this data: validity is judged at that time",
    )
    revision: int = Field(
        default=1,
        ge=1,
        description="1 for the request as first completed; each correction the applicant "
        "makes after verification asked for one publishes the request again, whole, "
        "with the next revision",
    )
    corrects: UUID | None = Field(
        default=None,
        description="the DataVerified (outcome discrepancies) whose corrections this "
        "revision answers; null for revision 1",
    )
    policy_version: int | None = _policy_version()


class CheckResult(Contract):
    name: str = Field(min_length=1)
    passed: bool
    detail: str = ""


class DataVerifiedPayload(Contract):
    outcome: Literal["verified", "discrepancies", "ineligible"]
    checks: list[CheckResult]
    officer: str = Field(min_length=1)
    corrections: list[Correction] = Field(default_factory=list)
    ineligible_rule: str | None = None
    ineligible_reason: Explanation | None = Field(
        default=None, description="the rule the applicant does not meet, for the applicant"
    )
    # The officer's words about the applicant's case: sealed under the applicant's key
    # (`personal_key`); plain in events published before they were.
    override_reason: Sealed | str | None = None
    revision: int = Field(
        default=1, ge=1, description="the revision of the request that was verified"
    )
    personal_key: str | None = Field(
        default=None,
        max_length=64,
        description="the id of the applicant's key `override_reason` is sealed with",
        exclude_if=_is_none,
    )
    policy_version: int | None = _policy_version()


class ReferredToResearcherPayload(Contract):
    # Staff's words about the applicant: sealed under the applicant's key
    # (`personal_key`); plain in referrals published before they were.
    reason: Sealed | Annotated[str, Field(min_length=1, max_length=2000)]
    questions: Sealed | list[str] = Field(default_factory=list)
    referred_by: str = Field(min_length=1)
    personal_key: str | None = Field(
        default=None,
        max_length=64,
        description="the id of the applicant's key `reason` and `questions` are sealed with",
        exclude_if=_is_none,
    )


class Vote(Contract):
    member: str = Field(min_length=1)
    vote: Literal["approve", "reject", "abstain"]


class CommitteeDecidedPayload(Contract):
    decision: Literal["approved", "rejected"]
    reasons: list[str]
    votes: list[Vote]
    window_days: int = Field(ge=1)
    within_window: bool
    deadline: AwareDatetime | None = None
    sitting_id: str | None = None
    members_present: list[str] = Field(default_factory=list)
    quorum: int | None = None
    recusals: list[str] = Field(default_factory=list)
    dissent_notes: list[str] = Field(default_factory=list)
    policy_version: int | None = _policy_version()


class ServiceDeliveredPayload(Contract):
    service_code: str = Field(min_length=1)
    delivered: str = Field(min_length=1, max_length=2000)
    delivered_by: str = Field(min_length=1)


class Ratings(Contract):
    satisfaction: int = Field(ge=1, le=5)
    recommend: int | None = Field(default=None, ge=0, le=10)


class SurveyAnsweredPayload(Contract):
    ratings: Ratings
    # A named answer's comment is the applicant's own words: sealed under their key
    # (`personal_key`). An anonymous answer's names nobody and is kept as written.
    comment: Sealed | Annotated[str, Field(max_length=4000)] | None = None
    personal_key: str | None = Field(default=None, max_length=64, exclude_if=_is_none)
    anonymous: bool = True
    stage: Literal["delivered", "rejected"] | None = None
    service_code: str | None = None
    channel: str | None = None


class PersonalDataErasedPayload(Contract):
    """What an erasure destroyed: key ids and case ids, never personal data."""

    erasure_id: UUID
    reason_code: Literal["request", "retention"] = Field(
        description="request: the privacy officer recorded the data subject's (or a "
        "lawful) erasure request; retention: the association's retention period ended"
    )
    key_ids: list[str] = Field(
        description="the ids of the subject keys destroyed: every value sealed under "
        "them now reads as erased"
    )
    case_ids: list[UUID] = Field(
        default_factory=list, description="the requests of the subject whose data is erased"
    )


class IntegrationEvent(Contract):
    event_id: UUID
    event_type: str
    schema_version: int = SCHEMA_VERSION
    occurred_at: AwareDatetime
    association_id: str = Field(pattern=ASSOCIATION_ID_PATTERN)
    case_id: UUID
    case_ref: str = Field(min_length=1, max_length=64)
    correlation_id: UUID
    causation_id: UUID | None
    actor: Actor
    payload: Contract

    @field_validator("occurred_at")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @field_validator("association_id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_ASSOCIATION_IDS:
            raise ValueError(f"'{value}' is a reserved subject token")
        return value


class RequestReceived(IntegrationEvent):
    event_type: Literal["RequestReceived"] = "RequestReceived"
    schema_version: int = POLICY_VERSIONS_SCHEMA_VERSION
    causation_id: None = None
    payload: RequestReceivedPayload


class DataVerified(IntegrationEvent):
    event_type: Literal["DataVerified"] = "DataVerified"
    schema_version: int = POLICY_VERSIONS_SCHEMA_VERSION
    causation_id: UUID
    payload: DataVerifiedPayload


class ReferredToResearcher(IntegrationEvent):
    event_type: Literal["ReferredToResearcher"] = "ReferredToResearcher"
    schema_version: int = SEALED_WORDS_SCHEMA_VERSION
    causation_id: UUID
    payload: ReferredToResearcherPayload


class CommitteeDecided(IntegrationEvent):
    event_type: Literal["CommitteeDecided"] = "CommitteeDecided"
    schema_version: int = POLICY_VERSIONS_SCHEMA_VERSION
    causation_id: UUID
    payload: CommitteeDecidedPayload


class ServiceDelivered(IntegrationEvent):
    event_type: Literal["ServiceDelivered"] = "ServiceDelivered"
    causation_id: UUID
    payload: ServiceDeliveredPayload


class SurveyAnswered(IntegrationEvent):
    # A named answer is on its case, caused by the invitation's cause. An anonymous
    # one (payload.anonymous) names no case: its `case_id` and `correlation_id` are
    # its own id, its `case_ref` is "anonymous" and it has no `causation_id`
    # (docs/decisions.md, 16).
    event_type: Literal["SurveyAnswered"] = "SurveyAnswered"
    causation_id: UUID | None
    payload: SurveyAnsweredPayload


class PersonalDataErased(IntegrationEvent):
    """A data subject's keys were destroyed (crypto-shredding, shared/personal): every
    copy of their personal data, in every store, view, outbox and on the stream, now
    reads as erased. Not one case's event: its `case_id` is the erasure's id (its
    `case_ref` "erasure-…", its subject khidma.<association_id>.<erasure_id>.
    PersonalDataErased); the subject's requests are listed in the payload."""

    event_type: Literal["PersonalDataErased"] = "PersonalDataErased"
    causation_id: None = None
    payload: PersonalDataErasedPayload


EVENT_CLASSES: tuple[type[IntegrationEvent], ...] = (
    RequestReceived,
    DataVerified,
    ReferredToResearcher,
    CommitteeDecided,
    ServiceDelivered,
    SurveyAnswered,
    PersonalDataErased,
)
EVENT_TYPES: tuple[str, ...] = tuple(cls.__name__ for cls in EVENT_CLASSES)

# Which service publishes each event: exactly one producer per type.
PRODUCERS: dict[str, str] = {
    "RequestReceived": "intake",
    "DataVerified": "verification",
    "ReferredToResearcher": "intake",
    "CommitteeDecided": "committee",
    "ServiceDelivered": "intake",
    "SurveyAnswered": "surveys",
    "PersonalDataErased": "privacy",
}

AnyEvent = Annotated[
    RequestReceived
    | DataVerified
    | ReferredToResearcher
    | CommitteeDecided
    | ServiceDelivered
    | SurveyAnswered
    | PersonalDataErased,
    Field(discriminator="event_type"),
]
_any_event: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)


def decode_event(data: bytes | str) -> IntegrationEvent:
    """Reads an event from the wire, ignoring fields this version does not know.

    Raises pydantic.ValidationError for anything that is not a valid event.
    """
    return _any_event.validate_json(data, extra="ignore")


def encode_event(event: IntegrationEvent) -> bytes:
    return event.model_dump_json().encode("utf-8")


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of each integration event, keyed by event type."""
    return {cls.__name__: cls.model_json_schema(mode="serialization") for cls in EVENT_CLASSES}
