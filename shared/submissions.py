"""What a channel adapter submits to intake, over HTTP or NATS request/reply."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError, to_json

from shared.events import ASSOCIATION_ID_PATTERN, Applicant, Attestation, Contract, Document
from shared.inputs import MAX_DEPTH, ascii_digits, plain_data_problem

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

# A request is published whole as one message (RequestReceived), and NATS
# refuses a message over its max_payload (1 MB by default). These limits keep a
# request far below that, with room for the envelope, the applicant and later
# additions, and far above what any service of the packs asks for.
MAX_FIELDS_BYTES = 64 * 1024
MAX_DOCUMENTS = 50


def is_given(value: Any) -> bool:
    """Whether a value of a request counts as given: present, and not blank text.

    Intake asks it to say what is missing; verification, to tell a missing value
    from a wrong one.
    """
    if value is None:
        return False
    return not (isinstance(value, str) and not value.strip())


def _fields_within_limit(fields: dict[str, Any]) -> dict[str, Any]:
    size = len(to_json(fields))
    if size > MAX_FIELDS_BYTES:
        raise PydanticCustomError(
            "fields_too_large",
            "The fields take {size} bytes; at most {limit} are accepted. Attach large "
            "content as a document reference instead. / "
            "تشغل الحقول {size} بايت؛ والحد الأقصى المقبول {limit} بايت. "
            "أرفق المحتوى الكبير مستندًا بدلًا من ذلك.",
            {"size": size, "limit": MAX_FIELDS_BYTES},
        )
    return fields


# What each problem of `plain_data_problem` tells the sender, in both languages.
_UNREADABLE: dict[str, tuple[str, str]] = {
    "too_deep": (
        f"A value is nested more than {MAX_DEPTH} levels deep.",
        f"في الطلب قيمة متداخلة بأكثر من {MAX_DEPTH} مستوى.",
    ),
    "not_finite": (
        "A number is NaN or infinite; give a finite number.",
        "في الطلب رقم غير معرَّف (NaN) أو لا نهائي؛ أدخل رقمًا محددًا.",
    ),
    "lone_surrogate": (
        "A text holds a lone surrogate, which is not a character; send UTF-8 text.",
        "في الطلب نص يحوي رمزًا بديلًا منفردًا ليس حرفًا؛ أرسل نصًا بترميز UTF-8.",
    ),
}


def refuse_unreadable(data: Any) -> Any:
    """The data as given, if every part of it can be taken (see shared.inputs)."""
    problem = plain_data_problem(data)
    if problem is not None:
        en, ar = _UNREADABLE[problem.code]
        raise PydanticCustomError(
            f"input_{problem.code}",
            "{en} (at: {where}) / {ar} (الموضع: {where})",
            {"en": en, "ar": ar, "where": problem.where or "(body)"},
        )
    return data


class FromOutside(BaseModel):
    """A body a person or an adapter sent: checked whole before any of its fields, so no
    NaN, lone surrogate or runaway nesting reaches a rule, a store or a log."""

    @model_validator(mode="before")
    @classmethod
    def _readable(cls, data: Any) -> Any:
        return refuse_unreadable(data)


def with_ascii_digits(value: str | None) -> str | None:
    """A national id or a phone number as typed, its Arabic-Indic digits as ASCII."""
    return None if value is None else ascii_digits(value)


# The service's fields of a request, limited in their encoded (JSON) size. The models
# that take them are FromOutside: what the fields may hold is checked with the body.
SubmittedFields = Annotated[
    dict[str, Any],
    AfterValidator(_fields_within_limit),
    Field(
        default_factory=dict,
        description=f"the service's fields; at most {MAX_FIELDS_BYTES} bytes as JSON",
    ),
]
SubmittedDocuments = Annotated[
    list[Document],
    Field(default_factory=list, max_length=MAX_DOCUMENTS),
]


class _Submitted(FromOutside):
    @field_validator("applicant", check_fields=False)
    @classmethod
    def _applicant_digits(cls, applicant: Applicant) -> Applicant:
        # The boundary reads the digits once: every rule, index and check after it
        # (verification's "10 digits", the open-request index) sees ASCII.
        return applicant.model_copy(
            update={
                "national_id": ascii_digits(applicant.national_id),
                "phone": with_ascii_digits(applicant.phone),
            }
        )


class Submission(_Submitted, Contract):
    """A request as an adapter hands it over. `(channel, channel_ref)` identifies it."""

    association_id: str = Field(pattern=ASSOCIATION_ID_PATTERN)
    channel: str = Field(pattern=CHANNEL_PATTERN)
    channel_ref: str = Field(min_length=1, max_length=200)
    service_code: str = Field(min_length=1, max_length=64)
    applicant: Applicant
    fields: SubmittedFields
    documents: SubmittedDocuments
    attestation: Attestation | None = None


class SubmissionBody(_Submitted, Contract):
    """The body on `khidma.submissions.<association_id>.<channel>`: the rest is in the subject."""

    channel_ref: str = Field(min_length=1, max_length=200)
    service_code: str = Field(min_length=1, max_length=64)
    applicant: Applicant
    fields: SubmittedFields
    documents: SubmittedDocuments
    attestation: Attestation | None = None


class SubmissionAccepted(Contract):
    case_id: str
    case_ref: str
    duplicate: bool
