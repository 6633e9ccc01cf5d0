"""Verification's domain: the automatic checks of a request and the officer's confirmation.

The checks are pure functions of the submitted data, of the association's
policy pack and of the applicant's membership standing *at submission time*,
run once when the request arrives, so the verification records what was true
when the applicant submitted (replaying history later gives the same result).
They suggest an outcome; a verification officer confirms it, or overrides it
with a reason, and that confirmation is the public event the outbox publishes.

A request the applicant corrects (after a `discrepancies` outcome) arrives
again, whole, with the next revision: it opens a new round, whose checks run on
the corrected data as of the correction's submission, and which the officer
confirms again. Earlier rounds are kept as they were, for the auditor.

Every check has a result and an explanation in English (`detail`, published)
and Arabic (`detail_ar`). A failed check either asks the applicant to correct
something (`correction`: field, ar, en) or applies a rule that makes the
applicant ineligible (`rule` in English, `rule_ar` in Arabic).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from shared.dates import both_calendars, local_day
from shared.errors import Refused
from shared.phones import normalise_phone
from shared.policy import PolicyPack, ServiceDefinition, eligibility_failures
from shared.submissions import is_given

VERIFIED = "verified"
DISCREPANCIES = "discrepancies"
INELIGIBLE = "ineligible"
OUTCOMES: tuple[str, ...] = (VERIFIED, DISCREPANCIES, INELIGIBLE)
# The outcomes as an Arabic refusal names them (the English one names the codes).
OUTCOMES_AR = {VERIFIED: "البيانات مستوفاة", DISCREPANCIES: "توجد ملاحظات", INELIGIBLE: "غير مؤهل"}

NATIONAL_ID_FORMAT = "national_id_format"
NAME_PRESENT = "name_present"
PHONE_FORMAT = "phone_format"
ATTESTATION_SIGNED = "attestation_signed"
SERVICE_KNOWN = "service_known"
REQUIRED_FIELDS = "required_fields"
DOCUMENT_PREFIX = "document:"
ELIGIBILITY_PREFIX = "eligibility:"
MEMBERSHIP_STANDING = "membership_standing"
OFFICER_OVERRIDE = "officer_override"

OFFICER_MAX_LENGTH = 200  # an integration event's actor id is at most 200 characters

GOOD = "good"
SUSPENDED = "suspended"
LEFT = "left"
STANDINGS: tuple[str, ...] = (GOOD, SUSPENDED, LEFT)

_NATIONAL_ID = re.compile(r"[0-9]{10}")
# First digit -> (holder, holder in Arabic, the document's English name).
_ID_HOLDERS = {
    "1": ("citizen", "مواطن", "national ID"),
    "2": ("resident", "مقيم", "residence ID (iqama)"),
}


@dataclass(frozen=True)
class Check:
    """One check's result.

    `detail` is short English (published in DataVerified), `detail_ar` the same
    in Arabic. Neither repeats the applicant's personal data (national id, name,
    phone: the checks are published and kept unsealed). A failed check carries either
    a `correction` ({field, ar, en}: what the applicant must correct) or the
    rule that makes the applicant ineligible (`rule` English, `rule_ar` Arabic).
    """

    name: str
    passed: bool
    detail: str
    detail_ar: str = ""
    correction: dict[str, str] | None = None
    rule: str | None = None
    rule_ar: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Standing:
    """A person's membership of the general assembly on one day (status None: not a member)."""

    status: str | None = None
    since: date | None = None


NOT_A_MEMBER = Standing()


def _correction(field: str, en: str, ar: str) -> dict[str, str]:
    return {"field": field, "ar": ar, "en": en}


# Saudi identity numbers -----------------------------------------------------------


def saudi_id_check_digit_valid(number: str) -> bool:
    """The check digit of a 10-digit Saudi national ID or iqama (Luhn-style).

    Digits at even positions (0, 2, …, 8) are doubled and the digits of the
    product summed; digits at odd positions are added as they are. The number
    is valid when the total is a multiple of 10.
    """
    if not _NATIONAL_ID.fullmatch(number):
        return False
    total = 0
    for index, character in enumerate(number):
        digit = int(character)
        if index % 2 == 0:
            doubled = digit * 2
            total += doubled // 10 + doubled % 10
        else:
            total += digit
    return total % 10 == 0


def id_kind(national_id: str | None) -> str | None:
    """'citizen' or 'resident' for a valid Saudi ID number, None otherwise."""
    value = (national_id or "").strip()
    if not saudi_id_check_digit_valid(value) or value[0] not in _ID_HOLDERS:
        return None
    return _ID_HOLDERS[value[0]][0]


def check_national_id_format(national_id: str | None) -> Check:
    """10 digits; 1 for a citizen's national ID, 2 for a resident's iqama; a valid check digit."""
    value = (national_id or "").strip()
    fix = _correction(
        "national_id",
        "Give the 10-digit national ID (starts with 1) or residence ID / iqama (starts with 2) "
        "exactly as on the card.",
        "أدخل رقم الهوية الوطنية (يبدأ بـ1) أو رقم الإقامة (يبدأ بـ2) المكوّن من 10 أرقام "
        "كما هو في البطاقة.",
    )
    if not _NATIONAL_ID.fullmatch(value):
        return Check(
            NATIONAL_ID_FORMAT,
            False,
            "National id must be exactly 10 digits.",
            "يجب أن يتكون رقم الهوية من 10 أرقام بالضبط.",
            correction=fix,
        )
    holder = _ID_HOLDERS.get(value[0])
    if holder is None:
        return Check(
            NATIONAL_ID_FORMAT,
            False,
            "National id must start with 1 (citizen) or 2 (resident).",
            "يجب أن يبدأ رقم الهوية بـ1 (مواطن) أو 2 (مقيم).",
            correction=fix,
        )
    if not saudi_id_check_digit_valid(value):
        return Check(
            NATIONAL_ID_FORMAT,
            False,
            f"The {holder[2]} number has a wrong check digit (probably mistyped).",
            "رقم الهوية غير صحيح: خانة التحقق لا تطابق (غالبًا خطأ في الكتابة).",
            correction=fix,
        )
    kind_ar = "هوية وطنية لمواطن" if holder[0] == "citizen" else "إقامة لمقيم"
    return Check(
        NATIONAL_ID_FORMAT,
        True,
        f"Valid {holder[2]} of a {holder[0]} (check digit correct).",
        f"رقم {kind_ar} صحيح (خانة التحقق مطابقة).",
    )


# Phone numbers ------------------------------------------------------------------

# The number itself is personal data: the check says it is valid, not what it is
# (checks recorded before said "normalised to +966…").
PHONE_VALID_DETAIL = "Valid phone number (recorded in the international form, E.164)."
PHONE_VALID_DETAIL_AR = "رقم جوال صحيح (يُسجَّل بالصيغة الدولية E.164)."


def check_phone_format(phone: str | None) -> Check:
    """Optional; when given it must be a phone number, recorded in E.164."""
    if phone is None or not phone.strip():
        return Check(
            PHONE_FORMAT, True, "No phone number given (optional).", "لم يُذكر رقم جوال (اختياري)."
        )
    normalised = normalise_phone(phone)
    if normalised is None:
        return Check(
            PHONE_FORMAT,
            False,
            "The phone number is not a valid number.",
            "رقم الجوال غير صالح.",
            correction=_correction(
                "phone",
                "Give a mobile number such as 05XXXXXXXX, or an international number with its "
                "country code (+…).",
                "أدخل رقم جوال مثل 05XXXXXXXX، أو رقمًا دوليًا مع رمز الدولة (+…).",
            ),
        )
    return Check(PHONE_FORMAT, True, PHONE_VALID_DETAIL, PHONE_VALID_DETAIL_AR)


def without_phone_number(checks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Checks recorded before the phone check stopped repeating the number, in today's
    words: a round opened then and confirmed now publishes no number, nor shows one."""
    return [
        {**check, "detail": PHONE_VALID_DETAIL, "detail_ar": PHONE_VALID_DETAIL_AR}
        if check.get("name") == PHONE_FORMAT and check.get("passed")
        else dict(check)
        for check in checks
    ]


# Name and attestation -------------------------------------------------------------


def check_name_present(name: str | None) -> Check:
    if name is None or not name.strip():
        return Check(
            NAME_PRESENT,
            False,
            "The applicant's name is missing.",
            "اسم مقدم الطلب غير مذكور.",
            correction=_correction("name", "Give your full name.", "أدخل اسمك الكامل."),
        )
    return Check(NAME_PRESENT, True, "The applicant's name is given.", "اسم مقدم الطلب مذكور.")


def check_attestation_signed(attestation: Mapping[str, Any] | None) -> Check:
    fix = _correction(
        "attestation",
        "Sign the declaration that the data is correct and that you are responsible for it.",
        "وقّع الإقرار بصحة البيانات وبمسؤوليتك المباشرة عنها.",
    )
    if attestation is None:
        return Check(
            ATTESTATION_SIGNED,
            False,
            "The applicant has not signed the attestation.",
            "لم يوقّع مقدم الطلب الإقرار.",
            correction=fix,
        )
    if attestation.get("attested") is not True:
        return Check(
            ATTESTATION_SIGNED,
            False,
            "The attestation is present but not affirmed.",
            "الإقرار موجود لكنه غير مؤكَّد.",
            correction=fix,
        )
    return Check(
        ATTESTATION_SIGNED,
        True,
        "The applicant attested that the data is correct.",
        "أقرّ مقدم الطلب بصحة البيانات.",
    )


def automatic_checks(
    applicant: Mapping[str, Any], attestation: Mapping[str, Any] | None
) -> list[Check]:
    """The checks of the applicant's identity data, in a stable order."""
    return [
        check_national_id_format(applicant.get("national_id")),
        check_name_present(applicant.get("name")),
        check_phone_format(applicant.get("phone")),
        check_attestation_signed(attestation),
    ]


# What the association's pack asks for -----------------------------------------------


def _is_blank(value: Any) -> bool:
    return not is_given(value)


def check_service_known(pack: PolicyPack | None, association_id: str, service_code: str) -> Check:
    if pack is None:
        return Check(
            SERVICE_KNOWN,
            False,
            f"No policy pack for association '{association_id}': the request cannot be "
            "checked against a policy.",
            f"لا توجد سياسة للجمعية '{association_id}': لا يمكن مطابقة الطلب مع سياسة.",
            correction=_correction(
                "association_id",
                "Submit the request to an association served here.",
                "قدّم الطلب إلى جمعية مخدومة في هذا النظام.",
            ),
        )
    service = pack.service(service_code)
    if service is None:
        codes = ", ".join(s.code for s in pack.services)
        return Check(
            SERVICE_KNOWN,
            False,
            f"{pack.name.en} offers no service '{service_code}' (offered: {codes}).",
            f"لا تقدّم {pack.name.ar} خدمة '{service_code}' (الخدمات المقدمة: {codes}).",
            correction=_correction(
                "service_code",
                f"Choose one of the services of {pack.name.en}: {codes}.",
                f"اختر إحدى خدمات {pack.name.ar}: {codes}.",
            ),
        )
    return Check(
        SERVICE_KNOWN,
        True,
        f"Service '{service.name.en}' of {pack.name.en}.",
        f"خدمة «{service.name.ar}» من خدمات {pack.name.ar}.",
    )


def check_required_fields(service: ServiceDefinition, fields: Mapping[str, Any]) -> Check:
    missing = [f for f in service.required_fields if _is_blank(fields.get(f.name))]
    if missing:
        return Check(
            REQUIRED_FIELDS,
            False,
            "Missing: " + ", ".join(f.label.en for f in missing) + ".",
            "ناقص: " + "، ".join(f.label.ar for f in missing) + ".",
            correction=_correction(
                ",".join(f.name for f in missing),
                "Provide: " + ", ".join(f.label.en for f in missing) + ".",
                "أكمل: " + "، ".join(f.label.ar for f in missing) + ".",
            ),
        )
    return Check(
        REQUIRED_FIELDS,
        True,
        "Every information the service needs is given.",
        "جميع البيانات التي تتطلبها الخدمة مذكورة.",
    )


def check_documents(
    service: ServiceDefinition,
    documents: Sequence[Mapping[str, Any]],
    submitted_on: date,
) -> list[Check]:
    """One check per required or provided document, judged on the day of submission."""
    required = {d.code: d for d in service.required_documents}
    provided: dict[str, Mapping[str, Any]] = {}
    for given in documents:
        provided.setdefault(str(given.get("code")), given)
    on = both_calendars(submitted_on)
    checks = []
    for code in [*required, *(c for c in provided if c not in required)]:
        requirement = required.get(code)
        label_en = requirement.label.en if requirement else code
        label_ar = requirement.label.ar if requirement else code
        name = DOCUMENT_PREFIX + code
        document = provided.get(code)
        if document is None:
            checks.append(
                Check(
                    name,
                    False,
                    f"Required document missing: {label_en}.",
                    f"مستند مطلوب غير مرفق: {label_ar}.",
                    correction=_correction(code, f"Attach: {label_en}.", f"أرفق: {label_ar}."),
                )
            )
            continue
        expires_on = _as_date(document.get("expires_on"))
        issued_on = _as_date(document.get("issued_on"))
        if issued_on is not None and issued_on > submitted_on:
            checks.append(
                Check(
                    name,
                    False,
                    f"{label_en} is dated after the submission ({on['en']}).",
                    f"{label_ar} صادر بعد تاريخ تقديم الطلب ({on['ar']}).",
                    correction=_correction(
                        code,
                        f"Attach the {label_en} valid when you applied.",
                        f"أرفق {label_ar} الساري وقت تقديم الطلب.",
                    ),
                )
            )
        elif expires_on is None:
            if requirement is not None and requirement.has_expiry:
                checks.append(
                    Check(
                        name,
                        False,
                        f"{label_en}: the expiry date is not given.",
                        f"{label_ar}: تاريخ الانتهاء غير مذكور.",
                        correction=_correction(
                            code,
                            f"Give the expiry date of the {label_en}.",
                            f"أدخل تاريخ انتهاء {label_ar}.",
                        ),
                    )
                )
            else:
                checks.append(
                    Check(
                        name,
                        True,
                        f"{label_en} provided (no expiry).",
                        f"{label_ar} مرفق (بلا تاريخ انتهاء).",
                    )
                )
        elif expires_on < submitted_on:
            expired = both_calendars(expires_on)
            checks.append(
                Check(
                    name,
                    False,
                    f"{label_en} had expired on {expired['en']}, before the submission "
                    f"on {on['en']}.",
                    f"{label_ar} منتهي في {expired['ar']}، قبل تقديم الطلب في {on['ar']}.",
                    correction=_correction(
                        code,
                        f"Renew the {label_en} and attach the valid one.",
                        f"جدّد {label_ar} وأرفق الساري منه.",
                    ),
                )
            )
        else:
            valid = both_calendars(expires_on)
            checks.append(
                Check(
                    name,
                    True,
                    f"{label_en} was valid on the submission day {on['en']} "
                    f"(expires {valid['en']}).",
                    f"{label_ar} ساري يوم تقديم الطلب {on['ar']} (ينتهي في {valid['ar']}).",
                )
            )
    return checks


def _as_date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def check_eligibility(service: ServiceDefinition, fields: Mapping[str, Any]) -> list[Check]:
    """One check per eligibility rule of the service (shared.policy's meaning of a rule)."""
    failed = {id(rule) for rule in eligibility_failures(service, dict(fields))}
    checks = []
    for rule in service.eligibility:
        name = ELIGIBILITY_PREFIX + rule.field
        if id(rule) not in failed:
            checks.append(
                Check(name, True, f"Meets: {rule.reason.en}.", f"مستوفٍ: {rule.reason.ar}.")
            )
        elif _is_blank(fields.get(rule.field)):
            # Not given: a discrepancy to correct, not a verdict on the applicant.
            checks.append(
                Check(
                    name,
                    False,
                    f"Cannot be judged: '{rule.field}' is not given ({rule.reason.en}).",
                    f"لا يمكن الحكم: الحقل '{rule.field}' غير مذكور ({rule.reason.ar}).",
                    correction=_correction(
                        rule.field,
                        f"Provide '{rule.field}' ({rule.reason.en}).",
                        f"أدخل '{rule.field}' ({rule.reason.ar}).",
                    ),
                )
            )
        else:
            checks.append(
                Check(
                    name,
                    False,
                    f"Not eligible: {rule.reason.en}.",
                    f"غير مستحق: {rule.reason.ar}.",
                    rule=rule.reason.en,
                    rule_ar=rule.reason.ar,
                )
            )
    return checks


def members_only_rule(pack: PolicyPack, service: ServiceDefinition) -> str:
    return (
        f"Members only: {service.name.en} is for {pack.clients.plural.en} in good standing "
        "at the time of the request"
    )


def members_only_rule_ar(pack: PolicyPack, service: ServiceDefinition) -> str:
    return (
        f"للأعضاء فقط: «{service.name.ar}» مقصورة على {pack.clients.plural.ar} "
        "في وضع نظامي وقت تقديم الطلب"
    )


def check_membership(
    pack: PolicyPack,
    service: ServiceDefinition,
    standing: Standing,
    id_valid: bool,
    submitted_on: date,
) -> Check:
    """A members-only service: the applicant was a member in good standing on the submission day."""
    on = both_calendars(submitted_on)
    if not id_valid:
        return Check(
            MEMBERSHIP_STANDING,
            False,
            "Membership cannot be checked until the ID number is corrected.",
            "لا يمكن التحقق من العضوية قبل تصحيح رقم الهوية.",
            correction=_correction(
                "national_id",
                "Correct the ID number so that membership can be checked.",
                "صحّح رقم الهوية ليتسنى التحقق من العضوية.",
            ),
        )
    rule = members_only_rule(pack, service)
    rule_ar = members_only_rule_ar(pack, service)
    if standing.status is None:
        return Check(
            MEMBERSHIP_STANDING,
            False,
            f"Not a {pack.clients.singular.en} on {on['en']}; {service.name.en} is members only.",
            f"ليس من {pack.clients.plural.ar} في {on['ar']}؛ و«{service.name.ar}» للأعضاء فقط.",
            rule=rule,
            rule_ar=rule_ar,
        )
    since = both_calendars(standing.since) if standing.since else None
    if standing.status != GOOD:
        status_en = {SUSPENDED: "suspended", LEFT: "no longer a member"}.get(
            standing.status, standing.status
        )
        status_ar = {SUSPENDED: "موقوف العضوية", LEFT: "انتهت عضويته"}.get(
            standing.status, standing.status
        )
        return Check(
            MEMBERSHIP_STANDING,
            False,
            f"Not in good standing on {on['en']}: {status_en}"
            + (f" since {since['en']}" if since else "")
            + ".",
            f"ليس في وضع نظامي في {on['ar']}: {status_ar}"
            + (f" منذ {since['ar']}" if since else "")
            + ".",
            rule=rule,
            rule_ar=rule_ar,
        )
    return Check(
        MEMBERSHIP_STANDING,
        True,
        f"A {pack.clients.singular.en} in good standing on {on['en']}"
        + (f" (since {since['en']})" if since else "")
        + ".",
        f"من {pack.clients.plural.ar} وفي وضع نظامي في {on['ar']}"
        + (f" (منذ {since['ar']})" if since else "")
        + ".",
    )


def all_checks(
    *,
    association_id: str,
    service_code: str,
    applicant: Mapping[str, Any],
    attestation: Mapping[str, Any] | None,
    fields: Mapping[str, Any],
    documents: Sequence[Mapping[str, Any]],
    submitted_at: datetime,
    pack: PolicyPack | None,
    standing: Standing,
) -> list[Check]:
    """Every check of a request, as of its submission, in a stable order."""
    submitted_on = local_day(submitted_at)
    checks = automatic_checks(applicant, attestation)
    checks.append(check_service_known(pack, association_id, service_code))
    service = pack.service(service_code) if pack else None
    if pack is None or service is None:
        return checks
    checks.append(check_required_fields(service, fields))
    checks.extend(check_documents(service, documents, submitted_on))
    if service.members_only:
        checks.append(
            check_membership(
                pack,
                service,
                standing,
                id_kind(applicant.get("national_id")) is not None,
                submitted_on,
            )
        )
    checks.extend(check_eligibility(service, fields))
    return checks


def _check_of(check: Check | Mapping[str, Any]) -> Mapping[str, Any]:
    return check.as_dict() if isinstance(check, Check) else check


def suggested_outcome(checks: Sequence[Check | Mapping[str, Any]]) -> str:
    """Ineligible when a rule fails; discrepancies if anything else fails; verified otherwise."""
    failed = [_check_of(c) for c in checks if not _check_of(c)["passed"]]
    if any(c.get("rule") for c in failed):
        return INELIGIBLE
    if failed:
        return DISCREPANCIES
    return VERIFIED


def corrections_of(checks: Sequence[Check | Mapping[str, Any]]) -> list[dict[str, str]]:
    """What the applicant must correct: the corrections of the failed checks."""
    return [
        dict(c["correction"])
        for c in map(_check_of, checks)
        if not c["passed"] and c.get("correction")
    ]


def ineligible_rule_of(checks: Sequence[Check | Mapping[str, Any]]) -> str | None:
    """The first rule the applicant fails (the one a person is told)."""
    return next(
        (c["rule"] for c in map(_check_of, checks) if not c["passed"] and c.get("rule")),
        None,
    )


def ineligible_reason_of(
    checks: Sequence[Check | Mapping[str, Any]],
) -> dict[str, str] | None:
    """The first rule the applicant fails, in both languages ({ar, en}).

    Checks recorded before rules carried their Arabic (`rule_ar`) fall back to
    the check's Arabic explanation, which states the same rule.
    """
    failed = next((c for c in map(_check_of, checks) if not c["passed"] and c.get("rule")), None)
    if failed is None:
        return None
    return {
        "ar": failed.get("rule_ar") or failed.get("detail_ar") or failed["rule"],
        "en": failed["rule"],
    }


# The aggregate ----------------------------------------------------------------


class Verification(Aggregate):
    """The verification of one request; its id is the case id.

    One round per revision of the request: the current round's facts are the
    aggregate's attributes; `earlier_rounds` keeps what each earlier round found
    and how it was confirmed (or that a newer revision superseded it unconfirmed).

    Its events are declared with their fields: a field's name is how a stored
    event holds it, and a default lets an event stored before the field existed
    replay.
    """

    class Opened(Aggregate.Created):
        """The request arrived: the first round, its checks run on the data as submitted."""

        case_id: UUID
        request_event_id: UUID
        association_id: str
        case_ref: str
        correlation_id: UUID
        service_code: str
        channel: str
        submitted_at: datetime
        checks: list[dict[str, Any]]
        suggested_outcome: str
        revision: int = 1  # verifications opened before revisions existed: the first
        # The applicant's data as received (applicant, attestation, fields,
        # documents), for the case file; None for a round opened before it was kept.
        received: dict[str, Any] | None = None
        # Personal data: `received` is kept sealed under the applicant's key
        # (`personal_key`, the id of their subject key); rounds opened before it
        # was sealed have none and read as they were.
        personal_attributes: ClassVar[tuple[str, ...]] = ("received",)
        personal_key: str | None = None
        # The version of the association's policy the case is governed by (the
        # request's); None for a verification opened before policies were versioned.
        policy_version: int | None = None

    @staticmethod
    def create_id(case_id: UUID, **_: Any) -> UUID:
        return case_id

    @classmethod
    def open(
        cls,
        *,
        case_id: UUID,
        request_event_id: UUID,
        association_id: str,
        case_ref: str,
        correlation_id: UUID,
        service_code: str,
        channel: str,
        submitted_at: datetime,
        applicant: Mapping[str, Any],
        attestation: Mapping[str, Any] | None,
        fields: Mapping[str, Any] | None = None,
        documents: Sequence[Mapping[str, Any]] = (),
        pack: PolicyPack | None = None,
        standing: Standing = NOT_A_MEMBER,
        revision: int = 1,
        personal_key: str | None = None,
    ) -> Verification:
        """Runs the checks on the data as submitted and opens the verification.

        `personal_key` is the id of the applicant's key, under which the data as
        received is kept sealed.
        """
        checks = all_checks(
            association_id=association_id,
            service_code=service_code,
            applicant=applicant,
            attestation=attestation,
            fields=fields or {},
            documents=documents,
            submitted_at=submitted_at,
            pack=pack,
            standing=standing,
        )
        return cls(
            case_id=case_id,
            request_event_id=request_event_id,
            association_id=association_id,
            case_ref=case_ref,
            correlation_id=correlation_id,
            service_code=service_code,
            channel=channel,
            submitted_at=submitted_at,
            checks=[check.as_dict() for check in checks],
            suggested_outcome=suggested_outcome(checks),
            revision=revision,
            received=received_data(applicant, attestation, fields or {}, documents),
            personal_key=personal_key,
            policy_version=pack.number if pack is not None else None,
        )

    @event(Opened)
    def __init__(
        self,
        *,
        case_id: UUID,
        request_event_id: UUID,
        association_id: str,
        case_ref: str,
        correlation_id: UUID,
        service_code: str,
        channel: str,
        submitted_at: datetime,
        checks: list[dict[str, Any]],
        suggested_outcome: str,
        revision: int = 1,
        received: dict[str, Any] | None = None,
        personal_key: str | None = None,  # the event's, for the store's mapper
        policy_version: int | None = None,
    ):
        self.association_id = association_id
        self.policy_version = policy_version
        self.case_ref = case_ref
        self.correlation_id = correlation_id
        # The applicant's key id: what seals the data received and the officer's words.
        self.personal_key = personal_key
        self.earlier_rounds: list[dict[str, Any]] = []
        # revision -> the data as received (the case file); rounds opened before
        # it was kept have none.
        self.received: dict[int, dict[str, Any]] = {}
        self._start_round(
            revision=revision,
            request_event_id=request_event_id,
            service_code=service_code,
            channel=channel,
            submitted_at=submitted_at,
            checks=checks,
            suggested_outcome=suggested_outcome,
            received=received,
        )

    def _start_round(
        self,
        *,
        revision: int,
        request_event_id: UUID,
        service_code: str,
        channel: str,
        submitted_at: datetime,
        checks: list[dict[str, Any]],
        suggested_outcome: str,
        received: dict[str, Any] | None = None,
    ) -> None:
        self.revision = revision
        if received is not None:
            self.received[revision] = received
        self.request_event_id = request_event_id
        self.service_code = service_code
        self.channel = channel
        self.submitted_at = submitted_at
        self.checks = without_phone_number(checks)
        self.suggested_outcome = suggested_outcome
        self.outcome: str | None = None
        self.officer: str | None = None
        self.officer_actor: dict[str, Any] | None = None
        self.confirmed = False
        self.confirmation: dict[str, Any] | None = None

    @property
    def status(self) -> str:
        return "confirmed" if self.confirmed else "pending"

    @property
    def corrections(self) -> list[dict[str, str]]:
        return corrections_of(self.checks)

    @property
    def ineligible_rule(self) -> str | None:
        return ineligible_rule_of(self.checks)

    @property
    def ineligible_reason(self) -> dict[str, str] | None:
        return ineligible_reason_of(self.checks)

    def current_round(self) -> dict[str, Any]:
        """What this round found and, once confirmed, what the officer confirmed."""
        confirmation = self.confirmation or {}
        return {
            "revision": self.revision,
            "request_event_id": self.request_event_id,
            "service_code": self.service_code,
            "channel": self.channel,
            "submitted_at": self.submitted_at,
            # The checks as confirmed (with the officer's override, if any).
            "checks": list(confirmation.get("checks", self.checks)),
            "suggested_outcome": self.suggested_outcome,
            "status": self.status,
            "outcome": self.outcome,
            "officer": self.officer,
            "actor": self.officer_actor,
            "corrections": confirmation.get("corrections", self.corrections),
            "ineligible_rule": confirmation.get("ineligible_rule", self.ineligible_rule),
            "ineligible_reason": confirmation.get("ineligible_reason", self.ineligible_reason),
            "override_reason": confirmation.get("override_reason"),
            "reason": confirmation.get("reason"),
            "confirmed_at": confirmation.get("confirmed_at"),
            "data_verified_event_id": confirmation.get("event_id"),
        }

    # A corrected request ---------------------------------------------------------------

    def revise(
        self,
        *,
        request_event_id: UUID,
        revision: int,
        service_code: str,
        channel: str,
        submitted_at: datetime,
        applicant: Mapping[str, Any],
        attestation: Mapping[str, Any] | None,
        fields: Mapping[str, Any] | None = None,
        documents: Sequence[Mapping[str, Any]] = (),
        pack: PolicyPack | None = None,
        standing: Standing = NOT_A_MEMBER,
        personal_key: str | None = None,
    ) -> bool:
        """A newer revision of the request opens a new round; returns whether it did.

        The same or an older revision (a redelivery, a message late) changes nothing.
        `personal_key` is as `open`'s.
        """
        if revision <= self.revision:
            return False
        checks = all_checks(
            association_id=self.association_id,
            service_code=service_code,
            applicant=applicant,
            attestation=attestation,
            fields=fields or {},
            documents=documents,
            submitted_at=submitted_at,
            pack=pack,
            standing=standing,
        )
        self.trigger_event(
            self.Revised,
            request_event_id=request_event_id,
            revision=revision,
            service_code=service_code,
            channel=channel,
            submitted_at=submitted_at,
            checks=[check.as_dict() for check in checks],
            suggested_outcome=suggested_outcome(checks),
            received=received_data(applicant, attestation, fields or {}, documents),
            personal_key=personal_key,
        )
        return True

    class Revised(Aggregate.Event):
        """A newer revision of the request: a new round, its checks run on the corrected data."""

        request_event_id: UUID
        revision: int
        service_code: str
        channel: str
        submitted_at: datetime
        checks: list[dict[str, Any]]
        suggested_outcome: str
        received: dict[str, Any] | None = None  # as Opened's
        personal_attributes: ClassVar[tuple[str, ...]] = ("received",)
        personal_key: str | None = None

        def apply(self, aggregate: Verification) -> None:
            aggregate.personal_key = self.personal_key or aggregate.personal_key
            aggregate.earlier_rounds.append(aggregate.current_round())
            aggregate._start_round(
                revision=self.revision,
                request_event_id=self.request_event_id,
                service_code=self.service_code,
                channel=self.channel,
                submitted_at=self.submitted_at,
                checks=self.checks,
                suggested_outcome=self.suggested_outcome,
                received=self.received,
            )

    # Commands of the verification officer ------------------------------------------

    def confirm(
        self,
        *,
        event_id: UUID,
        officer: str,
        confirmed_at: datetime,
        outcome: str | None = None,
        reason: str | None = None,
        revision: int | None = None,
        actor: Mapping[str, Any] | None = None,
    ) -> None:
        """Confirms (or overrides, with a reason) the suggested outcome of the current round.

        `officer` is the confirming officer's user name and `actor` the
        authenticated principal as recorded ({kind, id, name, role}), both from
        the caller's token, never from the request body. `revision`, when given,
        is the round the officer looked at: a newer revision arrived meanwhile is
        refused rather than confirmed unseen.
        """
        self._refuse_unless_open_at(revision)
        officer = _confirming_officer(officer)
        chosen = outcome or self.suggested_outcome
        reason = (reason or "").strip() or None
        overridden = chosen != self.suggested_outcome
        _refuse_unless_justified(chosen, self.suggested_outcome, reason)
        checks = list(self.checks)
        if overridden:
            assert reason is not None  # an override without one was refused above
            checks.append(_override_check(reason, sealed=self.personal_key is not None))
        told = self._what_the_applicant_is_told(chosen, reason)
        self.trigger_event(
            self.Confirmed,
            event_id=event_id,
            causation_id=self.request_event_id,
            association_id=self.association_id,
            case_ref=self.case_ref,
            correlation_id=self.correlation_id,
            outcome=chosen,
            suggested_outcome=self.suggested_outcome,
            checks=checks,
            officer=officer,
            reason=reason,
            confirmed_at=confirmed_at,
            corrections=told.corrections,
            ineligible_rule=told.ineligible_rule,
            override_reason=reason if overridden else None,
            ineligible_reason=told.ineligible_reason,
            revision=self.revision,
            actor=dict(actor) if actor is not None else None,
            personal_key=self.personal_key,
            policy_version=self.policy_version,
        )

    def _refuse_unless_open_at(self, revision: int | None) -> None:
        """Refuses a confirmation of another round than the current one, or of a confirmed one."""
        if revision is not None and revision != self.revision:
            raise Refused(
                "revision_changed",
                f"The officer looked at revision {revision}, but the request is now at "
                f"revision {self.revision}: review the corrected data and confirm again.",
                f"اطّلع الموظف على النسخة {revision} من الطلب، والطلب الآن في النسخة "
                f"{self.revision}: راجع البيانات المصححة ثم أكّد من جديد.",
            )
        if self.confirmed:
            raise Refused(
                "already_confirmed",
                f"This verification (revision {self.revision}) was already confirmed.",
                f"تم تأكيد هذا التحقق (النسخة {self.revision}) من قبل.",
            )

    def _what_the_applicant_is_told(self, chosen: str, reason: str | None) -> ApplicantNotice:
        """What to correct (discrepancies) or why not eligible (ineligible), for the outcome."""
        if chosen == DISCREPANCIES:
            corrections = corrections_of(self.checks)
            if not corrections:
                # The officer found what the automatic checks did not: their words.
                assert reason is not None
                corrections = [_correction("officer_note", reason, reason)]
            return ApplicantNotice(corrections=corrections)
        if chosen == INELIGIBLE:
            return ApplicantNotice(
                ineligible_rule=ineligible_rule_of(self.checks) or reason,
                # No rule failed: the officer's words are the reason, as they wrote them.
                ineligible_reason=ineligible_reason_of(self.checks)
                or ({"ar": reason, "en": reason} if reason else None),
            )
        return ApplicantNotice()

    class Confirmed(Aggregate.Event):
        """The officer confirmed (or overrode) the round's outcome: published as DataVerified."""

        event_id: UUID
        causation_id: UUID
        association_id: str
        case_ref: str
        correlation_id: UUID
        outcome: str
        suggested_outcome: str
        checks: list[dict[str, Any]]
        officer: str
        reason: str | None
        confirmed_at: datetime
        # Confirmations recorded before these fields existed replay with their defaults.
        corrections: list[dict[str, str]] | None = None
        ineligible_rule: str | None = None
        override_reason: str | None = None
        ineligible_reason: dict[str, str] | None = None
        revision: int = 1
        # The authenticated principal who confirmed ({kind, id, name, role});
        # confirmations recorded before identities were proven name only `officer`.
        actor: dict[str, Any] | None = None
        # The officer's words about the applicant's case: sealed at rest under the
        # applicant's key (shared/personal); confirmations recorded before hold none.
        personal_attributes: ClassVar[tuple[str, ...]] = ("reason", "override_reason")
        personal_key: str | None = None
        policy_version: int | None = None  # the verification's (Opened's)

        def apply(self, aggregate: Verification) -> None:
            aggregate.confirmed = True
            aggregate.outcome = self.outcome
            aggregate.officer = self.officer
            aggregate.officer_actor = self.actor
            aggregate.confirmation = {
                "event_id": self.event_id,
                "checks": without_phone_number(self.checks),
                "corrections": list(self.corrections or []),
                "ineligible_rule": self.ineligible_rule,
                "ineligible_reason": self.ineligible_reason,
                "override_reason": self.override_reason,
                "reason": self.reason,
                "confirmed_at": self.confirmed_at,
            }


def received_data(
    applicant: Mapping[str, Any],
    attestation: Mapping[str, Any] | None,
    fields: Mapping[str, Any],
    documents: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The applicant's data as a revision of the request brought it (JSON values)."""
    return {
        "applicant": dict(applicant),
        "attestation": dict(attestation) if attestation is not None else None,
        "fields": dict(fields),
        "documents": [dict(document) for document in documents],
    }


@dataclass(frozen=True)
class ApplicantNotice:
    """What a confirmation tells the applicant besides the outcome."""

    corrections: list[dict[str, str]] = field(default_factory=list)
    ineligible_rule: str | None = None
    ineligible_reason: dict[str, str] | None = None


def _confirming_officer(officer: str) -> str:
    """The officer's name as recorded; refused when empty or too long for the public event."""
    officer = officer.strip()
    if not officer or len(officer) > OFFICER_MAX_LENGTH:
        raise Refused(
            "officer_required",
            f"The confirming officer must be named (1 to {OFFICER_MAX_LENGTH} characters).",
            f"يجب ذكر اسم الموظف المؤكِّد (من 1 إلى {OFFICER_MAX_LENGTH} حرفًا).",
        )
    return officer


def _override_check(reason: str, *, sealed: bool) -> dict[str, Any]:
    """The officer's override among the checks, which are published and kept unsealed:
    it says that the officer overrode, and their reason is in `override_reason`
    (sealed); a round from before encryption keeps the reason here, as it did."""
    if not sealed:
        return Check(OFFICER_OVERRIDE, True, reason, reason).as_dict()
    return Check(
        OFFICER_OVERRIDE,
        True,
        "The officer overrode the suggested outcome, for the reason they gave.",
        "تجاوز الموظف النتيجة المقترحة للسبب الذي ذكره.",
    ).as_dict()


def _refuse_unless_justified(chosen: str, suggested: str, reason: str | None) -> None:
    """Refuses an unknown outcome, and an outcome other than the suggested one without a reason."""
    if chosen not in OUTCOMES:
        raise Refused(
            "unknown_outcome",
            f"Unknown outcome {chosen!r}; expected one of: {', '.join(OUTCOMES)}.",
            f"نتيجة غير معروفة {chosen!r}؛ القيم المقبولة: {', '.join(OUTCOMES)}.",
        )
    if chosen != suggested and reason is None:
        raise Refused(
            "override_needs_reason",
            f"The suggested outcome is {suggested}; choosing {chosen} instead needs a reason.",
            f"النتيجة المقترحة هي «{OUTCOMES_AR.get(suggested, suggested)}»؛ "
            f"واختيار «{OUTCOMES_AR[chosen]}» بدلًا منها يتطلب ذكر السبب.",
        )
