"""What the adapter answers, from the message alone: nothing of a conversation is kept.

- "status <reference> <code>" (or «حالة …», digits Arabic-Indic or not): the
  applicant's "where is my request?", answered with intake's status label.
- A structured message, one `key: value` a line with a `service:` line (or
  «الخدمة:»), is the whole request: submitted at once, confirmed with the case
  reference and the secret code (and what is still missing).
- Anything else: the association's services, each with its web form's link, and
  how to ask for a request's status.

A web form's link is made by the `FormLinks` port the adapter passes in (it seals
the known fields into the link: the sender's phone, or the lines of a refused
request); this module only says which values a link carries.

Every reply is in Arabic, with the English beside it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Protocol

from shared.inputs import ascii_digits, typed_value
from shared.policy import PolicyPack, ServiceDefinition

CHANNEL = "social_media"

_STATUS = re.compile(
    r"^\s*(?:status|حالة|حاله)(?:\s+(?:الطلب|طلبي))?\s*[:：]?\s+(\S+)\s+(\S+)\s*$",
    re.IGNORECASE,
)
_REFERENCE = re.compile(r"^[A-Z]{2,5}-[0-9]{4}-[0-9]{6}$")
_LINE = re.compile(r"^\s*([^:：]+?)\s*[:：]\s*(.*?)\s*$")
# Arabic names of the keys a structured message may use.
_KEYS = {
    "service": "service",
    "الخدمة": "service",
    "الخدمه": "service",
    "national_id": "national_id",
    "رقم الهوية": "national_id",
    "الهوية": "national_id",
    "name": "name",
    "الاسم": "name",
    "email": "email",
    "البريد": "email",
}
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


class FormLinks(Protocol):
    """Makes the link of a service's web form with the values known so far filled
    in, shaped as intake's submission (`applicant`, `fields`, `documents`)."""

    def __call__(self, association_id: str, service_code: str, values: dict[str, Any]) -> str: ...


def phone_of(sender: str) -> str:
    """The sender's WhatsApp number as the applicant's phone (international, with +)."""
    return "+" + sender.lstrip("+")


def message_ref(wamid: str) -> str:
    """The request's `channel_ref`: a digest of the message's wamid, the same on every
    redelivery (one case), since a wamid carries the sender's number in base64."""
    return "wamid-" + hashlib.sha256(wamid.encode("utf-8")).hexdigest()[:40]


def normalised(text: str) -> str:
    """The message with Arabic-Indic (and Persian) digits read as ASCII digits."""
    return ascii_digits(text).strip()


def status_question(text: str) -> tuple[str, str] | None:
    """(reference, code) of a "where is my request?" message, or None."""
    match = _STATUS.match(normalised(text))
    if match is None:
        return None
    reference, code = match.group(1).upper(), match.group(2).upper()
    if not _REFERENCE.match(reference):
        return None
    return reference, code


def structured(text: str) -> dict[str, str] | None:
    """The `key: value` lines of a message that names its service, or None."""
    found: dict[str, str] = {}
    for line in normalised(text).splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        key = match.group(1).strip().lower()
        found[_KEYS.get(key, key.replace(" ", "_"))] = match.group(2)
    return found if found.get("service") else None


class Unusable(Exception):
    """A structured message that cannot be submitted: the words to answer, and what
    it does carry (`body`, as a submission) when it names a service."""

    def __init__(self, ar: str, en: str, body: dict[str, Any] | None = None):
        super().__init__(en)
        self.ar = ar
        self.en = en
        self.body = body


def submission(
    pack: PolicyPack, lines: dict[str, str], *, wamid: str, sender: str
) -> dict[str, Any]:
    """Intake's submission of a structured message; `Unusable` when it names no
    service of the association or lacks the applicant's id and name."""
    service = _service(pack, lines["service"])
    if service is None:
        raise Unusable(
            "لا توجد خدمة بهذا الاسم. الخدمات: " + _codes(pack),
            "There is no such service. The services: " + _codes(pack),
        )
    applicant: dict[str, Any] = {
        key: lines[key] for key in ("national_id", "name", "email") if lines.get(key)
    }
    applicant["phone"] = phone_of(sender)
    fields = {
        requirement.name: typed_value(lines[requirement.name], requirement.kind)
        for requirement in service.required_fields
        if lines.get(requirement.name)
    }
    documents = []
    for document in service.required_documents:
        given = lines.get(document.code, "").split()
        if not given:
            continue
        entry: dict[str, Any] = {"code": document.code, "number": given[0]}
        if len(given) > 1 and _DATE.match(given[1]):
            entry["expires_on"] = given[1]
        documents.append(entry)
    body = {
        "association_id": pack.association_id,
        "channel": CHANNEL,
        "channel_ref": message_ref(wamid),
        "service_code": service.code,
        "applicant": applicant,
        "fields": fields,
        "documents": documents,
    }
    if not applicant.get("national_id") or not applicant.get("name"):
        # Answered with the form's link, what the message did say filled in.
        raise Unusable(
            "يلزم سطر «رقم الهوية: …» وسطر «الاسم: …».",
            "Lines 'national_id: …' and 'name: …' are needed.",
            body,
        )
    return body


def _service(pack: PolicyPack, named: str) -> ServiceDefinition | None:
    wanted = named.strip().lower()
    for service in pack.services:
        if wanted in (service.code, service.name.ar.strip().lower(), service.name.en.lower()):
            return service
    return None


def _codes(pack: PolicyPack) -> str:
    return ", ".join(service.code for service in pack.services)


def bilingual(ar: str, en: str) -> str:
    return f"{ar}\n\n{en}"


def menu(pack: PolicyPack, links: FormLinks, sender: str) -> str:
    """The first answer: the services, each with its web form (the sender's phone
    already filled in), and the other ways."""
    known = {"applicant": {"phone": phone_of(sender)}}
    ar = [f"أهلًا بك في {pack.name.ar}. خدماتنا، ولكلٍّ نموذجها على الموقع:"]
    en = [f"Welcome to {pack.name.en}. Our services, each with its form on the website:"]
    for service in pack.services:
        link = links(pack.association_id, service.code, known)
        ar.append(f"• {service.name.ar} ({service.code}): {link}")
        en.append(f"• {service.name.en} ({service.code}): {link}")
    example = next(iter(pack.services))
    wanted = ", ".join(
        [r.name for r in example.required_fields] + [d.code for d in example.required_documents]
    )
    ar.append(
        "أو أرسل الطلب كاملًا في رسالة واحدة، سطرًا لكل بيان: «الخدمة: "
        f"{example.code}» و«رقم الهوية: …» و«الاسم: …» ثم ({wanted}: …)."
    )
    en.append(
        f"Or send the whole request in one message, one line each: 'service: {example.code}', "
        f"'national_id: …', 'name: …', then ({wanted}: …)."
    )
    ar.append("ولمعرفة حالة طلبك أرسل: حالة <رقم الطلب> <الرمز السري>")
    en.append("To know where your request is, send: status <reference> <secret code>")
    return bilingual("\n".join(ar), "\n".join(en))


def confirmation(answer: dict[str, Any]) -> str:
    """The case reference and the secret code (once), and what is still missing."""
    reference = answer["case_ref"]
    code = answer.get("access_code")
    if code:
        ar = [f"استلمنا طلبك. رقم الطلب: {reference}", f"الرمز السري: {code} (احتفظ به ولا تشاركه)"]
        en = [
            f"We received your request. Reference: {reference}",
            f"Secret code: {code} (keep it; share it with nobody)",
        ]
    else:
        ar = [f"طلبك مسجّل من قبل برقم {reference}؛ الرمز السري أُرسل في الرد الأول."]
        en = [
            f"Your request is already recorded as {reference}; the secret code was in the first reply."
        ]
    missing = answer.get("missing") or []
    if missing:
        ar.append("ما زال ينقص الطلب:")
        en.append("The request still lacks:")
        for item in missing:
            ar.append(f"• {item.get('ar', item.get('code', ''))}")
            en.append(f"• {item.get('en', item.get('code', ''))}")
        link_hint_ar = "أكمله على الموقع أو في مقر الجمعية، مع رقم الطلب والرمز."
        link_hint_en = (
            "Complete it on the website or at the association, with the reference and code."
        )
        ar.append(link_hint_ar)
        en.append(link_hint_en)
    return bilingual("\n".join(ar), "\n".join(en))


def status_answer(view: dict[str, Any]) -> str:
    label = view.get("status_label") or {}
    reference = view.get("case_ref", "")
    return bilingual(
        f"حالة الطلب {reference}: {label.get('ar', view.get('status', ''))}",
        f"Request {reference}: {label.get('en', view.get('status', ''))}",
    )


def refusal(ar: str, en: str) -> str:
    return bilingual(ar, en)


def not_served(pack: PolicyPack | None) -> str:
    if pack is None:
        return bilingual(
            "هذا الرقم لا يستقبل الطلبات حاليًا.", "This number does not take requests now."
        )
    return bilingual(
        f"لا تستقبل {pack.name.ar} الطلبات عبر واتساب؛ تفضل بزيارة موقعها أو مقرها.",
        f"{pack.name.en} does not take requests on WhatsApp; please use its website or office.",
    )


def refused(pack: PolicyPack, body: dict[str, Any], error: Any, links: FormLinks) -> str:
    """Intake's refusal of a structured request (`body`, its submission), with the
    fields it names and the web form's link, with everything the applicant sent
    already filled in, where the request can be corrected and made instead."""
    ar, en = [str(error.ar)], [str(error.en)]
    named = _named_fields(getattr(error, "detail", None))
    if named:
        ar.append("الحقول: " + ", ".join(named))
        en.append("Fields: " + ", ".join(named))
    service = _service(pack, str(body.get("service_code", "")))
    if service is not None:
        link = links(pack.association_id, service.code, sent_values(body))
        ar.append(f"أو قدّم الطلب على الموقع: {link}")
        en.append(f"Or apply on the website: {link}")
    return bilingual("\n".join(ar), "\n".join(en))


def sent_values(body: dict[str, Any]) -> dict[str, Any]:
    """What a submission carries of the applicant's lines, as a form link's values:
    the applicant's details, the fields as the text they sent, the documents."""
    return {
        "applicant": dict(body.get("applicant") or {}),
        "fields": {name: str(value) for name, value in (body.get("fields") or {}).items()},
        "documents": [dict(document) for document in body.get("documents") or []],
    }


def _named_fields(detail: Any) -> list[str]:
    if not isinstance(detail, list):
        return []
    names = []
    for problem in detail:
        location = problem.get("loc") if isinstance(problem, dict) else None
        if isinstance(location, list) and location:
            names.append(".".join(str(part) for part in location if part != "body"))
    return [name for name in names if name]


def unavailable() -> str:
    return bilingual(
        "تعذّر استلام رسالتك الآن؛ يُرجى إرسالها مرة أخرى بعد قليل.",
        "Your message could not be taken now; please send it again in a little while.",
    )
