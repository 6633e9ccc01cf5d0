"""What the applicant reads: the invitation message and the survey, from the association's pack.

Pure functions over a survey's state and the association's policy pack (or
none: an association without a pack still gets a bilingual generic text, so
that an invitation never fails for want of a pack).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from services.surveys.phones import normalise_phone, usable_email
from shared.dates import both_calendars
from shared.policy import PolicyPack

Bilingual = dict[str, str]

GENERIC_INVITATION: Bilingual = {
    "ar": (
        "شكرًا لتواصلك مع {association}. نرجو تقييم الخدمة؛ فهو حق لك ويساعدنا على "
        "التحسين، ولا يُستخدم لمحاسبة الموظفين: {link}"
    ),
    "en": (
        "Thank you for contacting {association}. Please rate the service: it is your "
        "right, it helps us improve, and it is never used to judge staff: {link}"
    ),
}
GENERIC_QUESTIONS: dict[str, Bilingual] = {
    "satisfaction": {
        "ar": "ما مدى رضاك عن الخدمة؟ (١ إلى ٥)",
        "en": "How satisfied are you with the service? (1 to 5)",
    },
    "recommend": {
        "ar": "ما مدى احتمال أن توصي بالجمعية لغيرك؟ (٠ إلى ١٠)",
        "en": "How likely are you to recommend the association to others? (0 to 10)",
    },
    "comment": {"ar": "هل لديك ملاحظة أو اقتراح؟", "en": "Any remark or suggestion?"},
}
ANONYMOUS_QUESTION: Bilingual = {
    "ar": "إجابتك مجهولة الهوية ما لم تختر غير ذلك.",
    "en": "Your answer is anonymous unless you choose otherwise.",
}
STAGE_LABELS: dict[str, Bilingual] = {
    "delivered": {"ar": "بعد تقديم الخدمة", "en": "after the service was delivered"},
    "rejected": {"ar": "بعد رفض الطلب", "en": "after the request was rejected"},
}


def survey_link(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/surveys/{token}"


def message_id(case_id: UUID) -> str:
    """The invitation's stable id: one per case, the idempotency key of every sender."""
    return f"survey-invitation:{case_id}"


def association_name(pack: PolicyPack | None, association_id: str) -> Bilingual:
    if pack is None:
        return {"ar": association_id, "en": association_id}
    return {"ar": pack.name.ar, "en": pack.name.en}


def _fill(template: str, association: str, link: str) -> str:
    # Plain replacement, not str.format: a brace elsewhere in a pack's text is text.
    return template.replace("{association}", association).replace("{link}", link)


def invitation_text(pack: PolicyPack | None, association_id: str, link: str) -> Bilingual:
    templates = (
        {"ar": pack.survey.invitation.ar, "en": pack.survey.invitation.en}
        if pack is not None
        else GENERIC_INVITATION
    )
    name = association_name(pack, association_id)
    return {lang: _fill(templates[lang], name[lang], link) for lang in ("ar", "en")}


@dataclass(frozen=True)
class Contact:
    phone: str | None = None
    email: str | None = None


# Why an invitation was recorded instead of sent: code -> (English, Arabic).
NO_CONTACT = "no_contact"
UNUSABLE_CONTACT = "unusable_contact"
CONTACT_ERASED = "contact_erased"
UNDELIVERABLE: dict[str, Bilingual] = {
    CONTACT_ERASED: {
        "en": "Not sent: the applicant's personal data was erased (their contact "
        "with it); the survey is not sent to anyone.",
        "ar": "لم تُرسل: مُحيت البيانات الشخصية لمقدم الطلب (ومنها وسيلة التواصل معه)، "
        "فلا تُرسل الاستبانة إلى أحد.",
    },
    NO_CONTACT: {
        "en": "Not sent: the request gives no phone number or email to send the "
        "invitation to. An officer can give the applicant the survey's link in person or "
        "by phone (the case's survey: /surveys/by-case/<case id>).",
        "ar": "لم تُرسل: لا يتضمن الطلب رقم جوال أو بريدًا إلكترونيًا تُرسل إليه الدعوة. "
        "يمكن للموظف أن يعطي مقدم الطلب رابط الاستبانة حضوريًا أو هاتفيًا "
        "(استبانة الطلب: ‎/surveys/by-case/<رقم الطلب>).",
    },
    UNUSABLE_CONTACT: {
        "en": "Not sent: the request's phone number (or email) cannot be read as one. "
        "An officer can give the applicant the survey's link in person or by phone "
        "(the case's survey: /surveys/by-case/<case id>).",
        "ar": "لم تُرسل: رقم الجوال (أو البريد الإلكتروني) في الطلب غير صالح. "
        "يمكن للموظف أن يعطي مقدم الطلب رابط الاستبانة حضوريًا أو هاتفيًا "
        "(استبانة الطلب: ‎/surveys/by-case/<رقم الطلب>).",
    },
}


def undeliverable_reason(code: str) -> dict[str, str]:
    return {"code": code, **UNDELIVERABLE[code]}


@dataclass(frozen=True)
class Undeliverable:
    """An invitation that cannot go anywhere usable: recorded with its reason, not sent."""

    case_id: UUID
    reason: str


def reachable_contact(phone: str | None, email: str | None) -> Contact | str:
    """The contact a channel can use (a phone in E.164), or the code of why there is none.

    A number that cannot be read is left out rather than sent to; the
    invitation still goes to a usable email beside it.
    """
    contact = Contact(phone=normalise_phone(phone), email=usable_email(email))
    if contact.phone or contact.email:
        return contact
    given = bool((phone or "").strip() or (email or "").strip())
    return UNUSABLE_CONTACT if given else NO_CONTACT


@dataclass(frozen=True)
class Invitation:
    """One message to one applicant, as an outbound port receives it."""

    message_id: str
    case_id: UUID
    case_ref: str
    association_id: str
    channel: str
    stage: str
    contact: Contact
    language: str
    text: Bilingual
    link: str
    invited_at: datetime
    generic_text: bool = field(default=False)
    # The id of the applicant's key: what a record of the message seals the contact
    # with (None for a request published before encryption).
    personal_key: str | None = None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["case_id"] = str(self.case_id)
        data["invited_at"] = self.invited_at.isoformat()
        return data


def compose_invitation(
    *,
    case_id: UUID,
    case_ref: str,
    association_id: str,
    channel: str,
    stage: str,
    contact: Contact,
    language: str,
    token: str,
    invited_at: datetime,
    pack: PolicyPack | None,
    base_url: str,
    personal_key: str | None = None,
) -> Invitation:
    link = survey_link(base_url, token)
    return Invitation(
        message_id=message_id(case_id),
        case_id=case_id,
        case_ref=case_ref,
        association_id=association_id,
        channel=channel,
        stage=stage,
        contact=contact,
        language=language,
        text=invitation_text(pack, association_id, link),
        link=link,
        invited_at=invited_at,
        generic_text=pack is None,
        personal_key=personal_key,
    )


def survey_form(
    *,
    association_id: str,
    service_code: str,
    stage: str,
    language: str,
    invited_at: datetime,
    token: str,
    pack: PolicyPack | None,
) -> dict[str, Any]:
    """The survey as the applicant sees it: who asks, about what, and the questions."""
    if pack is not None:
        texts = {
            "satisfaction": pack.survey.satisfaction_question,
            "recommend": pack.survey.recommend_question,
            "comment": pack.survey.comment_question,
        }
        questions_text = {k: {"ar": v.ar, "en": v.en} for k, v in texts.items()}
        service = pack.service(service_code)
    else:
        questions_text = GENERIC_QUESTIONS
        service = None
    service_name = (
        {"ar": service.name.ar, "en": service.name.en}
        if service is not None
        else {"ar": service_code, "en": service_code}
    )
    return {
        "association": {
            "id": association_id,
            "name": association_name(pack, association_id),
        },
        "service": {"code": service_code, "name": service_name},
        "stage": stage,
        "stage_label": STAGE_LABELS.get(stage, {"ar": stage, "en": stage}),
        "language": language,
        "invited_at": invited_at.isoformat(),
        "invited_at_display": both_calendars(invited_at),
        "questions": [
            {
                "name": "satisfaction",
                "text": questions_text["satisfaction"],
                "kind": "rating",
                "minimum": 1,
                "maximum": 5,
                "required": True,
            },
            {
                "name": "recommend",
                "text": questions_text["recommend"],
                "kind": "rating",
                "minimum": 0,
                "maximum": 10,
                "required": False,
            },
            {
                "name": "comment",
                "text": questions_text["comment"],
                "kind": "text",
                "max_length": 4000,
                "required": False,
            },
            {
                "name": "anonymous",
                "text": ANONYMOUS_QUESTION,
                "kind": "boolean",
                "default": True,
                "required": False,
            },
        ],
        "answer": {"method": "POST", "path": f"/surveys/{token}/answers"},
    }
