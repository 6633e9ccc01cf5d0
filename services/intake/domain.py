"""Intake's domain: a request's case, from its first submission to delivery.

Each command checks its rule, then records a past-tense event. A case is
opened when the applicant first submits (`Submitted`, internal); while the
service's required fields, documents or the applicant's declaration are
missing it stays open as incomplete (`InformationRequested`, internal), and
it completes (`Completed`, published as RequestReceived) only when nothing is
missing. So verification never sees an incomplete request, and no request
reaches the committee without a valid declaration.

After verification, a request whose outcome is `discrepancies` can be
corrected by the applicant (`Corrected`, internal). The data changed, so the
declaration must be signed again; once it is, the whole corrected request is
published again (`Resubmitted`, published as RequestReceived with the next
revision), and verification judges it afresh.

The rules that need the association's pack take the pack's service
definition as an argument: the domain holds no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from datetime import date, datetime
from enum import StrEnum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.domain import Aggregate, event

from shared.dates import ANY_DAY, EXPIRY_DAY, PAST_DAY, accept_day
from shared.errors import Invalid, Refused
from shared.inputs import ascii_digits, finite_number, is_integer
from shared.phones import normalise_phone
from shared.policy import ServiceDefinition
from shared.submissions import MAX_DOCUMENTS, MAX_FIELDS_BYTES, is_given

INTAKE_NAMESPACE = uuid5(NAMESPACE_URL, "https://khidma.example/intake")

ATTESTATION_METHODS = ("paper_scan", "one_time_code", "in_person")

# What the applicant may correct about themselves.
APPLICANT_DETAILS = ("national_id", "name", "phone", "email")

# The personal data of a request (docs/decisions.md, 24): an event that holds any of
# it names it in `personal_attributes` and carries its subject's key id
# (`personal_key`); the store seals those attributes under that key and opens them
# on reading, so the rules here work on plain values. An event recorded before
# encryption has no `personal_key`, and reads as it was.
REQUEST_DATA = ("applicant", "fields", "documents", "attestation")
# A referral's reason and questions: staff's words about the applicant, sealed alike.
REFERRAL_TEXT = ("reason", "questions")

# The applicant's secret code: letters and digits that cannot be mistaken for one
# another when read aloud or typed (no 0/O, 1/I/L, U/V), in groups of four.
ACCESS_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
ACCESS_CODE_GROUPS = 3
ACCESS_CODE_GROUP_LENGTH = 4


# Pure rules ----------------------------------------------------------------------


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def attested_data_hash(
    applicant: dict[str, Any],
    service_code: str,
    fields: dict[str, Any],
    documents: list[dict[str, Any]],
) -> str:
    """SHA-256 (hex) of the canonical JSON of the exact data the applicant attests."""
    data = {
        "applicant": applicant,
        "service_code": service_code,
        "fields": fields,
        "documents": documents,
    }
    return hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()


def case_reference(prefix: str, hijri_year: int, number: int) -> str:
    """A reference a person can read and say on the phone: SDR-1448-000123."""
    return f"{prefix}-{hijri_year:04d}-{number:06d}"


_CASE_REFERENCE = re.compile(r"([A-Z]{2,5})-([0-9]{4})-([0-9]{6})")


def parse_case_reference(text: str) -> tuple[str, int, int] | None:
    """(prefix, Hijri year, number) of a reference such as SDR-1448-000123, or None."""
    match = _CASE_REFERENCE.fullmatch(text.strip().upper())
    if match is None:
        return None
    return match[1], int(match[2]), int(match[3])


def new_access_code() -> str:
    """A fresh secret code for the applicant (about 59 bits): `K7QM-3XRD-P9TA`.

    It is shown once, in the answer to the submission; the case keeps only its
    digest (`access_code_digest`), so nobody can read it back from the store.
    """
    groups = (
        "".join(secrets.choice(ACCESS_CODE_ALPHABET) for _ in range(ACCESS_CODE_GROUP_LENGTH))
        for _ in range(ACCESS_CODE_GROUPS)
    )
    return "-".join(groups)


def normalised_access_code(code: str) -> str:
    """The code as typed, read the way it was issued: upper case, without spaces or
    hyphens, Arabic-Indic digits as ASCII digits."""
    return "".join(ch for ch in ascii_digits(code).upper() if ch.isalnum())


def access_code_digest(case_id: UUID, code: str) -> str:
    """SHA-256 (hex) of the case id and the normalised code: what the case stores.

    The code is random (not chosen by a person), so a plain hash salted with the
    case id is enough: no dictionary applies, and the same code on two cases
    hashes differently.
    """
    material = f"khidma-case-code\x1f{case_id}\x1f{normalised_access_code(code)}"
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def applicant_as_recorded(applicant: dict[str, Any]) -> dict[str, Any]:
    """The applicant as intake records, attests and publishes them.

    The phone is kept in E.164 when it can be read as a number, so the
    declaration's hash covers exactly what is published; a number that cannot be
    read is kept as given, for verification to flag and the applicant to correct.
    """
    recorded = dict(applicant)
    phone = recorded.get("phone")
    if isinstance(phone, str) and phone.strip():
        recorded["phone"] = normalise_phone(phone) or phone
    return recorded


# What each date of a document can be (shared.dates): an issue has happened.
DOCUMENT_DAYS = {"issued_on": PAST_DAY, "expires_on": EXPIRY_DAY}


def dates_as_given(
    service: ServiceDefinition,
    fields: dict[str, Any],
    documents: list[dict[str, Any]],
    today: date,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The fields and documents just given, each date one that can be real for its
    field and written as its Gregorian day (YYYY-MM-DD).

    Raises Invalid at the door: what is recorded can always be shown and judged.
    Only what arrives is judged, never what the case already holds.
    """
    kinds = {requirement.name: requirement.kind for requirement in service.required_fields}
    fields = dict(fields)
    for name, value in fields.items():
        if kinds.get(name) == "date" and is_given(value):
            fields[name] = accept_day(value, name, ANY_DAY, today).isoformat()
    judged = []
    for doc in documents:
        doc = dict(doc)
        for key, bounds in DOCUMENT_DAYS.items():
            if doc.get(key) is not None:
                name = f"{doc.get('code')}.{key}"
                doc[key] = accept_day(doc[key], name, bounds, today).isoformat()
        judged.append(doc)
    return fields, judged


def has_kind(value: Any, kind: str) -> bool:
    """Whether a given value is of the kind the pack asks for (text is anything)."""
    if kind == "integer":
        return is_integer(value)
    if kind == "number":
        return finite_number(value) is not None
    if kind == "date":
        try:
            date.fromisoformat(str(value))
        except ValueError:
            return False
        return True
    if kind == "boolean":
        return isinstance(value, bool)
    return True


# The kinds whose typed text is read with ASCII digits (٢٠ is 20). Dates are read
# where dates are (shared/dates.py), as typed here.
_DIGIT_KINDS = ("integer", "number")


def fields_as_taken(service: ServiceDefinition, fields: dict[str, Any]) -> dict[str, Any]:
    """The fields as intake records them: only those the service names (any other is
    refused, naming them), the digits of its numbers as ASCII digits."""
    known = {requirement.name: requirement.kind for requirement in service.required_fields}
    known.update({rule.field: known.get(rule.field, "text") for rule in service.eligibility})
    unknown = sorted(name for name in fields if name not in known)
    if unknown:
        raise unknown_fields(service, unknown, sorted(known))
    return {
        name: ascii_digits(value)
        if isinstance(value, str) and known[name] in _DIGIT_KINDS
        else value
        for name, value in fields.items()
    }


def unknown_fields(service: ServiceDefinition, unknown: list[str], known: list[str]) -> Invalid:
    named = ", ".join(unknown)
    taken = ", ".join(known) or "none"
    return Invalid(
        "unknown_fields",
        f"The service {service.code} takes no field named {named}; its fields: {taken}.",
        f"لا تقبل الخدمة {service.code} حقلًا باسم {named}؛ حقولها: {taken}.",
    )


_KIND_HINT = {
    "integer": ("عدد صحيح", "a whole number"),
    "number": ("رقم", "a number"),
    "date": ("تاريخ بصيغة YYYY-MM-DD", "a date as YYYY-MM-DD"),
    "boolean": ("نعم أو لا", "yes or no"),
}


def merge_fields(fields: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    merged = dict(fields)
    merged.update({k: v for k, v in more.items() if v is not None})
    return merged


def merge_documents(
    documents: list[dict[str, Any]], more: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """A document given again (same code) replaces the earlier one; order is kept."""
    by_code = {doc["code"]: doc for doc in documents}
    for doc in more:
        by_code[doc["code"]] = doc
    return list(by_code.values())


def refuse_if_too_large(fields: dict[str, Any], documents: list[dict[str, Any]]) -> None:
    """The request as merged stays within what one submission may carry.

    Each call is limited on its way in, but information and corrections add to
    the request, which is published whole as one message.
    """
    size = len(canonical_json(fields).encode("utf-8"))
    if size > MAX_FIELDS_BYTES or len(documents) > MAX_DOCUMENTS:
        raise Refused(
            "request_too_large",
            f"With this addition the request would hold {size} bytes of fields and "
            f"{len(documents)} documents; at most {MAX_FIELDS_BYTES} bytes and "
            f"{MAX_DOCUMENTS} documents are accepted. Attach large content as a "
            "document reference instead.",
            f"بهذه الإضافة يصبح في الطلب {size} بايت من الحقول و{len(documents)} مستندًا؛ "
            f"والحد الأقصى {MAX_FIELDS_BYTES} بايت و{MAX_DOCUMENTS} مستندًا. "
            "أرفق المحتوى الكبير مستندًا بدلًا من ذلك.",
        )


def _missing(kind: str, code: str, ar: str, en: str) -> dict[str, str]:
    return {"kind": kind, "code": code, "ar": ar, "en": en}


def attestation_problem(
    attestation: dict[str, Any] | None, expected_hash: str
) -> dict[str, str] | None:
    """Why the declaration is not (yet) valid for the data as it stands, or None."""
    if not attestation or not attestation.get("attested"):
        return _missing(
            "attestation",
            "declaration",
            "إقرار مقدم الطلب بصحة البيانات وبمسؤوليته المباشرة عنها (توقيع)",
            "The applicant's declaration that the data is correct and that they are "
            "directly responsible for it (signature)",
        )
    if attestation.get("method") not in ATTESTATION_METHODS:
        return _missing(
            "attestation",
            "declaration_method",
            "طريقة الإقرار: توقيع ورقي مصوّر، أو رمز لمرة واحدة، أو حضوريًا",
            "How the applicant attested: paper signature scanned, one-time code, or in person",
        )
    if attestation.get("data_hash") != expected_hash:
        return _missing(
            "attestation",
            "declaration_outdated",
            "تغيّرت البيانات بعد الإقرار أو لا تطابق ما أُقرّ به؛ يلزم إقرار جديد على البيانات الحالية",
            "The data changed after the declaration or does not match what was "
            "attested; a new declaration on the current data is needed",
        )
    return None


def missing_information(
    service: ServiceDefinition,
    *,
    applicant: dict[str, Any],
    fields: dict[str, Any],
    documents: list[dict[str, Any]],
    attestation: dict[str, Any] | None,
    include_attestation: bool = True,
) -> list[dict[str, str]]:
    """Exactly what the request still lacks, each item in Arabic and English."""
    missing: list[dict[str, str]] = []
    for requirement in service.required_fields:
        value = fields.get(requirement.name)
        if not is_given(value):
            missing.append(
                _missing(
                    "field",
                    requirement.name,
                    f"الحقل المطلوب: {requirement.label.ar}",
                    f"Required field: {requirement.label.en}",
                )
            )
        elif not has_kind(value, requirement.kind):
            hint_ar, hint_en = _KIND_HINT[requirement.kind]
            missing.append(
                _missing(
                    "field",
                    requirement.name,
                    f"الحقل المطلوب: {requirement.label.ar} ({hint_ar})",
                    f"Required field: {requirement.label.en} ({hint_en})",
                )
            )
    given = {doc["code"]: doc for doc in documents}
    for document in service.required_documents:
        doc = given.get(document.code)
        if doc is None:
            missing.append(
                _missing(
                    "document",
                    document.code,
                    f"المستند المطلوب: {document.label.ar}",
                    f"Required document: {document.label.en}",
                )
            )
        elif document.has_expiry and not doc.get("expires_on"):
            missing.append(
                _missing(
                    "document",
                    document.code,
                    f"تاريخ انتهاء المستند: {document.label.ar}",
                    f"The expiry date of the document: {document.label.en}",
                )
            )
    if include_attestation:
        expected = attested_data_hash(applicant, service.code, fields, documents)
        problem = attestation_problem(attestation, expected)
        if problem is not None:
            missing.append(problem)
    return missing


def explained_ineligibility(
    reason: dict[str, str] | None, rule: str | None
) -> dict[str, str] | None:
    """Why the applicant is not eligible, in both languages.

    A DataVerified from before `ineligible_reason` names only the rule (one
    text): it is shown as it is, in both places.
    """
    if reason:
        return dict(reason)
    if rule:
        return {"ar": rule, "en": rule}
    return None


# The case ---------------------------------------------------------------------------


class CaseStatus(StrEnum):
    """Where a request stands. A case opens incomplete; `status_after` moves it on.

    The values are the strings the read model stores and the API shows.
    """

    INCOMPLETE = "incomplete"
    RECEIVED = "received"
    VERIFIED = "verified"
    DISCREPANCIES = "discrepancies"
    CORRECTING = "correcting"
    INELIGIBLE = "ineligible"
    APPROVED = "approved"
    REJECTED = "rejected"
    DELIVERED = "delivered"
    # Shown, never stored: while a dead letter holds the case (`shown_status`), over
    # the status beneath it, which `status_after` keeps moving.
    HELD = "held"


def shown_status(status: CaseStatus, held: bool) -> CaseStatus:
    """What a case says it is: held while a dead letter concerns it, else its status."""
    return CaseStatus.HELD if held else status


# Where the committee's decision has put the case: what verification finds later
# no longer moves it.
_DECIDED = frozenset({CaseStatus.APPROVED, CaseStatus.REJECTED, CaseStatus.DELIVERED})


class Case(Aggregate):
    """A request's case. Each event is declared with the fields it stores (their
    names are what older stores hold) and says, in `apply`, how it changes the case.
    """

    @staticmethod
    def create_id(case_id: UUID, **_: Any) -> UUID:
        return case_id

    class Event(Aggregate.Event):
        """The base of the case's events, declared here so they need no redefining."""

    class PublicEvent(Event):
        """A public domain event: it records the envelope of the integration event
        it becomes (docs/decisions.md, 5)."""

        event_id: UUID
        causation_id: UUID | None
        association_id: str
        case_ref: str
        correlation_id: UUID

    class Submitted(Event, Aggregate.Created):
        case_id: UUID
        received_event_id: UUID
        association_id: str
        case_ref: str
        channel: str
        channel_ref: str
        service_code: str
        applicant: dict[str, Any]
        fields: dict[str, Any]
        documents: list[dict[str, Any]]
        attestation: dict[str, Any] | None
        actor: dict[str, str]
        submitted_at: datetime
        # The digest of the applicant's secret code; None for a case submitted
        # before codes existed (reachable by staff only). The default is what such
        # a stored event replays with; a new case names it (eventsourcing 9.5 takes
        # every keyword-only argument of a command as required).
        access_code_hash: str | None = None
        # The applicant's key id and blind index (shared/personal); None in a case
        # submitted before encryption.
        personal_key: str | None = None
        subject_index: str | None = None
        # The version of the association's policy in force when the request was
        # received: it governs the case for good. None in a case submitted before
        # policies were versioned (governed by the version in force then).
        policy_version: int | None = None
        personal_attributes = REQUEST_DATA

    @event(Submitted)
    def __init__(
        self,
        *,
        case_id: UUID,
        received_event_id: UUID,
        association_id: str,
        case_ref: str,
        channel: str,
        channel_ref: str,
        service_code: str,
        applicant: dict[str, Any],
        fields: dict[str, Any],
        documents: list[dict[str, Any]],
        attestation: dict[str, Any] | None,
        actor: dict[str, str],
        submitted_at: datetime,
        access_code_hash: str | None = None,
        personal_key: str | None = None,
        subject_index: str | None = None,
        policy_version: int | None = None,
    ):
        self.association_id = association_id
        self.policy_version = policy_version
        self.access_code_hash = access_code_hash
        # The applicant's subject key and blind index: what seals their data, and
        # what finds their requests without the number.
        self.personal_key = personal_key
        self.subject_index = subject_index
        self.submitted_index = subject_index
        self.case_ref = case_ref
        self.channel = channel
        self.channel_ref = channel_ref
        self.service_code = service_code
        self.applicant = applicant
        # Who submitted it: a retried submission names them, even after a correction.
        self.submitted_national_id = str(applicant.get("national_id", ""))
        self.fields = fields
        self.documents = documents
        self.attestation = attestation
        self.received_event_id = received_event_id
        self.submitted_at = submitted_at
        self.completed_at: datetime | None = None
        self.complete = False
        self.missing: list[dict[str, str]] = []
        self.status = CaseStatus.INCOMPLETE
        self.referred = False
        self.verification_outcome: str | None = None
        self.decision: str | None = None
        self.decision_event_id: UUID | None = None
        self.delivered = False
        self.linked_channels: list[dict[str, str]] = []
        self.noted_event_ids: list[UUID] = []
        # The revision of the request as last published (1 until a correction is).
        self.revision = 1
        # Corrected after verification, and not yet published again.
        self.correcting = False
        # The latest verification noted: its DataVerified, the revision it verified,
        # and what it tells the applicant.
        self.verification_event_id: UUID | None = None
        self.verification_revision: int | None = None
        self.corrections: list[dict[str, str]] = []
        self.ineligible_reason: dict[str, str] | None = None
        # The dead letters that hold the case, by key, until their replay is applied.
        self.holds: dict[str, dict[str, Any]] = {}
        self.ineligible_rule: str | None = None

    def opened_by(self, code: str) -> bool:
        """Whether the applicant's secret code is this case's (compared in constant
        time). A case from before codes existed opens with none."""
        if not self.access_code_hash or not code:
            return False
        return hmac.compare_digest(self.access_code_hash, access_code_digest(self.id, code))

    @property
    def correlation_id(self) -> UUID:
        """Every event of the case correlates with its RequestReceived (id fixed at submission)."""
        return self.received_event_id

    @property
    def closed(self) -> bool:
        return self.delivered or self.decision == "rejected"

    def _public(self, event_id: UUID, causation_id: UUID | None) -> dict[str, Any]:
        """What every event intake publishes about this case carries."""
        return {
            "event_id": event_id,
            "causation_id": causation_id,
            "association_id": self.association_id,
            "case_ref": self.case_ref,
            "correlation_id": self.correlation_id,
        }

    def _request_as_recorded(self) -> dict[str, Any]:
        """The request as it is published, whole: on completion and on each revision."""
        return {
            "channel": self.channel,
            "channel_ref": self.channel_ref,
            "service_code": self.service_code,
            "applicant": self.applicant,
            "fields": self.fields,
            "documents": self.documents,
            "attestation": self.attestation,
            **self._subject(),
            "policy_version": self.policy_version,
        }

    def _subject(self) -> dict[str, str | None]:
        """The applicant's key id and blind index, which every event holding their data carries."""
        return {"personal_key": self.personal_key, "subject_index": self.subject_index}

    def key_subject(self, *, personal_key: str, subject_index: str) -> None:
        """Gives a case submitted before encryption its applicant's key: what it
        records from now on is sealed. A case that has one keeps it."""
        if self.personal_key is None:
            self.trigger_event(
                self.SubjectKeyed, personal_key=personal_key, subject_index=subject_index
            )

    class SubjectKeyed(Event):
        personal_key: str
        subject_index: str

        def apply(self, case: Case) -> None:
            case.personal_key = self.personal_key
            case.subject_index = self.subject_index

    def expected_hash(self) -> str:
        return attested_data_hash(self.applicant, self.service_code, self.fields, self.documents)

    # Completeness ------------------------------------------------------------------

    def check_completeness(
        self,
        service: ServiceDefinition,
        *,
        at: datetime,
        actor: dict[str, str],
        event_id: UUID | None = None,
    ) -> list[dict[str, str]]:
        """Completes the case when nothing is missing, else says exactly what is.

        A case being corrected is checked the same way, and when nothing is
        missing its corrected request is published again as the next revision,
        under `event_id` (a new one when not given).
        """
        if self.complete and not self.correcting:
            return []
        if self.correcting and (self.closed or self.decision is not None):
            return []
        missing = missing_information(
            service,
            applicant=self.applicant,
            fields=self.fields,
            documents=self.documents,
            attestation=self.attestation,
        )
        if missing:
            self.trigger_event(self.InformationRequested, missing=missing, at=at)
        elif self.correcting:
            assert self.verification_event_id is not None  # corrections answer one
            self.trigger_event(
                self.Resubmitted,
                **self._public(event_id or uuid4(), None),
                **self._request_as_recorded(),
                # Validity is judged when the applicant gave this data: now.
                submitted_at=at,
                revision=self.revision + 1,
                corrects=self.verification_event_id,
                actor=actor,
                at=at,
            )
        else:
            self.trigger_event(
                self.Completed,
                event_id=self.received_event_id,
                association_id=self.association_id,
                case_ref=self.case_ref,
                **self._request_as_recorded(),
                submitted_at=self.submitted_at,
                actor=actor,
                at=at,
            )
        return missing

    class InformationRequested(Event):
        missing: list[dict[str, str]]
        at: datetime

        def apply(self, case: Case) -> None:
            case.missing = self.missing
            case.status = status_after(case.status, self)

    class Completed(Event):
        """The request is complete: published as RequestReceived (revision 1)."""

        event_id: UUID
        association_id: str
        case_ref: str
        channel: str
        channel_ref: str
        service_code: str
        applicant: dict[str, Any]
        fields: dict[str, Any]
        documents: list[dict[str, Any]]
        attestation: dict[str, Any] | None
        submitted_at: datetime
        actor: dict[str, str]
        at: datetime
        personal_key: str | None = None
        subject_index: str | None = None
        policy_version: int | None = None  # the case's (Submitted's)
        personal_attributes = REQUEST_DATA

        def apply(self, case: Case) -> None:
            case.complete = True
            case.completed_at = self.at
            case.missing = []
            case.status = status_after(case.status, self)

    def add_information(
        self,
        *,
        fields: dict[str, Any],
        documents: list[dict[str, Any]],
        attestation: dict[str, Any] | None,
        actor: dict[str, str],
        at: datetime,
    ) -> None:
        if self.complete and (self.closed or self.decision is not None):
            # Decided: neither information nor a pending correction has anything to answer.
            refusal = self.correction_refusal()
            assert refusal is not None
            raise refusal
        if self.complete and not self.correcting:
            raise Refused(
                "already_complete",
                "The request is already complete and was sent for verification; "
                "if verification asks for corrections, send them as corrections.",
                "الطلب مكتمل وأُحيل إلى التحقق؛ إذا طلب التحقق تصحيح بيانات فأرسلها تصحيحًا.",
            )
        if not fields and not documents and attestation is None:
            raise Refused(
                "nothing_added",
                "Nothing was added: send fields, documents or the declaration.",
                "لم تُضف أي معلومات: أرسل الحقول أو المستندات أو الإقرار.",
            )
        new_fields = merge_fields(self.fields, fields)
        new_documents = merge_documents(self.documents, documents)
        refuse_if_too_large(new_fields, new_documents)
        if attestation is not None:
            attestation = complete_attestation(
                attestation,
                attested_data_hash(self.applicant, self.service_code, new_fields, new_documents),
                default_by=self.applicant.get("name", ""),
                at=at,
            )
        self.trigger_event(
            self.InformationAdded,
            fields=new_fields,
            documents=new_documents,
            attestation=attestation if attestation is not None else self.attestation,
            actor=actor,
            at=at,
            personal_key=self.personal_key,
        )

    class InformationAdded(Event):
        fields: dict[str, Any]
        documents: list[dict[str, Any]]
        attestation: dict[str, Any] | None
        actor: dict[str, str]
        at: datetime
        personal_key: str | None = None
        personal_attributes = ("fields", "documents", "attestation")

        def apply(self, case: Case) -> None:
            case.fields = self.fields
            case.documents = self.documents
            case.attestation = self.attestation

    # Corrections after verification -------------------------------------------------

    def is_retry_of(
        self, national_id: str, service_code: str, subject_index: str | None = None
    ) -> bool:
        """Whether a submission with one of this case's channel references is the
        same request again (the same applicant, for the same service).

        The applicant is recognised by their blind index; by the number only in a
        case recorded before the index (which has none for that national ID).
        """
        if service_code != self.service_code:
            return False
        if subject_index is not None and subject_index in (
            self.submitted_index,
            self.subject_index,
        ):
            return True
        plain = []
        if self.submitted_index is None:
            plain.append(self.submitted_national_id)
        if self.subject_index is None:
            plain.append(str(self.applicant.get("national_id", "")))
        return bool(national_id) and national_id in plain

    def correction_refusal(self) -> Refused | None:
        """Why the applicant cannot correct the request now, or None if they can.

        Corrections answer a verification that found discrepancies in the
        request as last published, and only until the committee decided.
        """
        if self.closed or self.decision is not None:
            return Refused(
                "already_decided",
                "The research committee has already decided on this request; "
                "it can no longer be corrected.",
                "بتّت لجنة البحث في هذا الطلب، ولم يعد تصحيحه ممكنًا.",
            )
        if not self.complete:
            return Refused(
                "still_incomplete",
                "The request is not complete yet: send what is missing as information, "
                "not as a correction.",
                "الطلب لم يكتمل بعد: أرسل المعلومات الناقصة استكمالًا للطلب، لا تصحيحًا.",
            )
        outcome = self.verification_outcome if self.verification_revision == self.revision else None
        if outcome == "discrepancies":
            return None
        if outcome == "verified":
            why_en = "verification found the data correct"
            why_ar = "وجد التحقق البيانات صحيحة"
        elif outcome == "ineligible":
            why_en = "verification found the applicant not eligible for this service"
            why_ar = "وجد التحقق أن مقدم الطلب غير مستحق لهذه الخدمة"
        else:
            why_en = "verification has not yet finished checking this request"
            why_ar = "لم ينتهِ التحقق من هذا الطلب بعد"
        return Refused(
            "no_corrections_asked",
            "Corrections are accepted only when verification asked for them: "
            f"{why_en} (revision {self.revision}).",
            f"لا تُقبل التصحيحات إلا إذا طلبها التحقق: {why_ar} (النسخة {self.revision}).",
        )

    def correct(
        self,
        *,
        applicant: dict[str, Any],
        fields: dict[str, Any],
        documents: list[dict[str, Any]],
        attestation: dict[str, Any] | None,
        actor: dict[str, str],
        at: datetime,
        personal_key: str | None = None,
        subject_index: str | None = None,
    ) -> None:
        """The applicant's corrections; the declaration must be signed again on the new data.

        `personal_key` and `subject_index`: those of the applicant as corrected (a
        corrected national ID is another data subject); the case's when not given.

        `applicant` holds only what changes (national_id, name, phone, email; a
        phone or email given as None is removed). The declaration given with the
        corrections covers the corrected data; without one, the earlier one no
        longer counts and the case waits for it.
        """
        refusal = self.correction_refusal()
        if refusal is not None:
            raise refusal
        if not applicant and not fields and not documents and attestation is None:
            raise Refused(
                "nothing_corrected",
                "Nothing was corrected: send the corrected applicant details, fields, "
                "documents or the new declaration.",
                "لم يُصحَّح شيء: أرسل بيانات مقدم الطلب المصححة أو الحقول أو المستندات "
                "أو الإقرار الجديد.",
            )
        for required in ("national_id", "name"):
            if required in applicant and not is_given(applicant[required]):
                raise Refused(
                    "applicant_detail_required",
                    f"The applicant's {required.replace('_', ' ')} can be corrected "
                    "but not removed.",
                    "يمكن تصحيح "
                    + ("رقم هوية" if required == "national_id" else "اسم")
                    + " مقدم الطلب لكن لا يمكن حذفه.",
                )
        changes = {k: v for k, v in applicant.items() if k in APPLICANT_DETAILS}
        new_applicant = applicant_as_recorded({**self.applicant, **changes})
        new_fields = merge_fields(self.fields, fields)
        new_documents = merge_documents(self.documents, documents)
        refuse_if_too_large(new_fields, new_documents)
        if attestation is not None:
            attestation = complete_attestation(
                attestation,
                attested_data_hash(new_applicant, self.service_code, new_fields, new_documents),
                default_by=new_applicant.get("name", ""),
                at=at,
            )
        self.trigger_event(
            self.Corrected,
            applicant=new_applicant,
            fields=new_fields,
            documents=new_documents,
            attestation=attestation,
            revision=self.revision + 1,
            corrects=self.verification_event_id,
            actor=actor,
            at=at,
            personal_key=personal_key or self.personal_key,
            subject_index=subject_index or self.subject_index,
        )

    class Corrected(Event):
        applicant: dict[str, Any]
        fields: dict[str, Any]
        documents: list[dict[str, Any]]
        attestation: dict[str, Any] | None
        revision: int
        corrects: UUID | None
        actor: dict[str, str]
        at: datetime
        personal_key: str | None = None
        subject_index: str | None = None
        personal_attributes = REQUEST_DATA

        def apply(self, case: Case) -> None:
            if self.personal_key is not None:
                case.personal_key = self.personal_key
                case.subject_index = self.subject_index
            case.applicant = self.applicant
            case.fields = self.fields
            case.documents = self.documents
            # A declaration covers the data it was given on: the earlier one does
            # not cover the corrections, even if they happen to change nothing.
            case.attestation = self.attestation
            case.correcting = True
            case.status = status_after(case.status, self)

    class Resubmitted(PublicEvent):
        """The corrected request, whole: published as RequestReceived with the next revision."""

        channel: str
        channel_ref: str
        service_code: str
        applicant: dict[str, Any]
        fields: dict[str, Any]
        documents: list[dict[str, Any]]
        attestation: dict[str, Any] | None
        submitted_at: datetime
        revision: int
        corrects: UUID
        actor: dict[str, str]
        at: datetime
        personal_key: str | None = None
        subject_index: str | None = None
        policy_version: int | None = None  # the case's (Submitted's)
        personal_attributes = REQUEST_DATA

        def apply(self, case: Case) -> None:
            case.revision = self.revision
            case.correcting = False
            case.missing = []
            case.corrections = []
            case.status = status_after(case.status, self)

    # Duplicates ----------------------------------------------------------------------

    def link_duplicate(self, *, channel: str, channel_ref: str, at: datetime) -> None:
        """Another submission of the same request (any channel) is linked, not created."""
        if any(
            link["channel"] == channel and link["channel_ref"] == channel_ref
            for link in self.linked_channels
        ) or (channel, channel_ref) == (self.channel, self.channel_ref):
            return
        self.trigger_event(self.DuplicateLinked, channel=channel, channel_ref=channel_ref, at=at)

    class DuplicateLinked(Event):
        channel: str
        channel_ref: str
        at: datetime

        def apply(self, case: Case) -> None:
            case.linked_channels.append({"channel": self.channel, "channel_ref": self.channel_ref})

    # Commands of the front desk -------------------------------------------------

    def refer_to_researcher(
        self,
        *,
        event_id: UUID,
        at: datetime,
        reason: str,
        questions: list[str],
        referred_by: str,
        actor: dict[str, str],
    ) -> None:
        """Allowed while the case is incomplete too: the procedures may be what is unclear.

        `referred_by` is the officer's user name (the payload's field), `actor` the
        authenticated officer who referred it.
        """
        if self.closed:
            raise Refused(
                "case_closed",
                "The case is closed (delivered or rejected); it cannot be referred.",
                "الطلب مغلق (قُدمت الخدمة أو رُفض الطلب)، ولا يمكن إحالته.",
            )
        self.trigger_event(
            self.ReferredToResearcher,
            **self._public(event_id, self.received_event_id),
            at=at,
            reason=reason,
            questions=list(questions),
            referred_by=referred_by,
            actor=actor,
            personal_key=self.personal_key,
        )

    class ReferredToResearcher(PublicEvent):
        at: datetime
        reason: str
        questions: list[str]
        referred_by: str
        # The authenticated officer; None in a referral recorded before identities
        # were proven (its actor is then read from `referred_by`).
        actor: dict[str, str] | None = None
        # What the officer wrote about the applicant is theirs to erase: sealed under
        # the applicant's key; a referral recorded before it was has none.
        personal_key: str | None = None
        personal_attributes = REFERRAL_TEXT

        def apply(self, case: Case) -> None:
            case.referred = True

    def deliver(
        self,
        *,
        event_id: UUID,
        at: datetime,
        delivered: str,
        delivered_by: str,
        actor: dict[str, str],
    ) -> None:
        if self.delivered:
            raise Refused(
                "already_delivered",
                "The service was already delivered for this request.",
                "تم تقديم الخدمة لهذا الطلب من قبل.",
            )
        if self.decision != "approved" or self.decision_event_id is None:
            if not self.complete:
                why_en = "the request is still incomplete"
                why_ar = "الطلب ما زال غير مكتمل"
            elif self.decision == "rejected":
                why_en = "the research committee rejected the request"
                why_ar = "رفضت لجنة البحث الطلب"
            else:
                why_en = "the research committee has not decided yet"
                why_ar = "لم تبتّ لجنة البحث في الطلب بعد"
            raise Refused(
                "not_approved",
                "The service can only be delivered after the committee approved "
                f"the request: {why_en}.",
                f"لا يمكن تقديم الخدمة إلا بعد موافقة لجنة البحث على الطلب: {why_ar}.",
            )
        self.trigger_event(
            self.ServiceDelivered,
            **self._public(event_id, self.decision_event_id),
            at=at,
            service_code=self.service_code,
            delivered=delivered,
            delivered_by=delivered_by,
            actor=actor,
        )

    class ServiceDelivered(PublicEvent):
        at: datetime
        service_code: str
        delivered: str
        delivered_by: str
        # As for a referral: None when recorded before identities were proven.
        actor: dict[str, str] | None = None

        def apply(self, case: Case) -> None:
            case.delivered = True
            case.status = status_after(case.status, self)

    # What intake learns from the other services ----------------------------------

    # Held by a dead letter -------------------------------------------------------

    @property
    def held(self) -> bool:
        return bool(self.holds)

    def hold(self, *, key: str, service: str, reason: str, at: datetime) -> None:
        """A message about this case was set aside (a dead letter): an operator must look."""
        if key not in self.holds:
            self.trigger_event(self.Held, key=key, service=service, reason=reason, at=at)

    class Held(Event):
        key: str
        service: str
        reason: str
        at: datetime

        def apply(self, case: Case) -> None:
            case.holds[self.key] = {"service": self.service, "reason": self.reason}

    def lift_hold(self, *, key: str, at: datetime) -> None:
        """The dead letter's replay was applied: it holds the case no more."""
        if key in self.holds:
            self.trigger_event(self.HoldLifted, key=key, at=at)

    class HoldLifted(Event):
        key: str
        at: datetime

        def apply(self, case: Case) -> None:
            case.holds.pop(self.key, None)

    def has_noted(self, source_event_id: UUID) -> bool:
        return source_event_id in self.noted_event_ids

    def note_verification(
        self,
        *,
        source_event_id: UUID,
        outcome: str,
        revision: int = 1,
        corrections: list[dict[str, str]] | None = None,
        ineligible_reason: dict[str, str] | None = None,
        ineligible_rule: str | None = None,
    ) -> None:
        """What verification found, for the revision it verified.

        A verification of an older revision than the request as last published
        (late, or redelivered) says nothing about the current data: ignored.
        """
        if self.has_noted(source_event_id) or revision < self.revision:
            return
        self.trigger_event(
            self.VerificationNoted,
            source_event_id=source_event_id,
            outcome=outcome,
            revision=revision,
            corrections=list(corrections or []),
            ineligible_reason=ineligible_reason,
            ineligible_rule=ineligible_rule,
        )

    class VerificationNoted(Event):
        source_event_id: UUID
        outcome: str
        # Defaults: what a VerificationNoted recorded before revisions means.
        revision: int = 1
        corrections: list[dict[str, str]] | None = None
        ineligible_reason: dict[str, str] | None = None
        ineligible_rule: str | None = None

        def apply(self, case: Case) -> None:
            case.noted_event_ids.append(self.source_event_id)
            case.verification_outcome = self.outcome
            case.verification_event_id = self.source_event_id
            case.verification_revision = self.revision
            case.corrections = (
                list(self.corrections or []) if self.outcome == "discrepancies" else []
            )
            case.ineligible_reason = self.ineligible_reason
            case.ineligible_rule = self.ineligible_rule
            case.status = status_after(case.status, self)

    def note_decision(self, *, source_event_id: UUID, decision: str) -> None:
        if self.has_noted(source_event_id):
            return
        self.trigger_event(self.DecisionNoted, source_event_id=source_event_id, decision=decision)

    class DecisionNoted(Event):
        source_event_id: UUID
        decision: str

        def apply(self, case: Case) -> None:
            case.noted_event_ids.append(self.source_event_id)
            case.decision = self.decision
            case.decision_event_id = self.source_event_id
            case.correcting = False  # nothing is left for a pending correction to answer
            case.status = status_after(case.status, self)


def status_after(current: CaseStatus, event: Case.Event) -> CaseStatus:
    """Where a case stands after one of its events: the one status machine of a case.

    The aggregate and the read model both apply it, so what a submission's reply
    says and what "where is my request?" shows never disagree.
    """
    if isinstance(event, Case.InformationRequested):
        # Still missing something: while being corrected, that is part of the correction.
        if current == CaseStatus.CORRECTING:
            return current
        return CaseStatus.INCOMPLETE
    if isinstance(event, Case.Completed):
        return CaseStatus.RECEIVED if current == CaseStatus.INCOMPLETE else current
    if isinstance(event, Case.Corrected):
        return CaseStatus.CORRECTING
    if isinstance(event, Case.Resubmitted):
        return CaseStatus.RECEIVED
    if isinstance(event, Case.VerificationNoted):
        # A pending correction, or a decision, outranks what verification found.
        if current in _DECIDED or current == CaseStatus.CORRECTING:
            return current
        return CaseStatus(event.outcome)
    if isinstance(event, Case.DecisionNoted):
        return current if current == CaseStatus.DELIVERED else CaseStatus(event.decision)
    if isinstance(event, Case.ServiceDelivered):
        return CaseStatus.DELIVERED
    return current


def complete_attestation(
    attestation: dict[str, Any], data_hash: str, *, default_by: str, at: datetime
) -> dict[str, Any]:
    """The declaration as recorded: a missing hash is the hash of the data attested now."""
    recorded = dict(attestation)
    if recorded.get("attested"):
        if not recorded.get("data_hash"):
            recorded["data_hash"] = data_hash
        if not recorded.get("attested_by") and default_by:
            recorded["attested_by"] = default_by
        if not recorded.get("attested_at"):
            recorded["attested_at"] = at.isoformat()
    return recorded


# Indexes: aggregates whose ids are derived, so the store keeps them unique -------------


class ChannelRef(Aggregate):
    """Makes `(association, channel, channel_ref)` unique: its id is derived from them."""

    @staticmethod
    def create_id(association_id: str, channel: str, channel_ref: str, **_: Any) -> UUID:
        return channel_ref_id(association_id, channel, channel_ref)

    class Registered(Aggregate.Created):
        association_id: str
        channel: str
        channel_ref: str
        case_id: UUID

    @event(Registered)
    def __init__(self, *, association_id: str, channel: str, channel_ref: str, case_id: UUID):
        self.case_id = case_id


def channel_ref_id(association_id: str, channel: str, channel_ref: str) -> UUID:
    return uuid5(INTAKE_NAMESPACE, f"{association_id}\x1f{channel}\x1f{channel_ref}")


class CaseNumbering(Aggregate):
    """The sequence of case numbers of one association in one Hijri year.

    Its id is derived from both, and each number taken is a new version: two
    instances taking the same number write the same version, and the store
    refuses the second (IntegrityError), which then reloads and retries.
    """

    @staticmethod
    def create_id(association_id: str, hijri_year: int, **_: Any) -> UUID:
        return numbering_id(association_id, hijri_year)

    class Started(Aggregate.Created):
        association_id: str
        hijri_year: int

    @event(Started)
    def __init__(self, *, association_id: str, hijri_year: int):
        self.association_id = association_id
        self.hijri_year = hijri_year
        self.last_number = 0

    def take_number(self, case_id: UUID) -> int:
        self.trigger_event(self.NumberTaken, number=self.last_number + 1, case_id=case_id)
        return self.last_number

    class NumberTaken(Aggregate.Event):
        number: int
        case_id: UUID

        def apply(self, numbering: CaseNumbering) -> None:
            numbering.last_number = self.number


def numbering_id(association_id: str, hijri_year: int) -> UUID:
    return uuid5(INTAKE_NAMESPACE, f"numbering\x1f{association_id}\x1f{hijri_year}")


class OpenRequest(Aggregate):
    """One open request per applicant per service: holds the open case, if any.

    Its id is derived from the applicant's blind index (`subject_index`), never
    from the number. An index opened before the blind index existed was derived
    from the national ID (`legacy_open_request_id`) and is still read.
    """

    @staticmethod
    def create_id(
        association_id: str,
        service_code: str,
        subject_index: str | None = None,
        national_id: str | None = None,
        **_: Any,
    ) -> UUID:
        if subject_index is not None:
            return open_request_id(association_id, subject_index, service_code)
        assert national_id is not None  # an application without the keyring
        return legacy_open_request_id(association_id, national_id, service_code)

    class Opened(Aggregate.Created):
        association_id: str
        service_code: str
        case_id: UUID
        subject_index: str | None = None
        # Only in an index opened before the blind index existed.
        national_id: str | None = None

    @event(Opened)
    def __init__(
        self,
        *,
        association_id: str,
        service_code: str,
        case_id: UUID,
        subject_index: str | None = None,
        national_id: str | None = None,
    ):
        self.case_id: UUID | None = case_id

    def reopen(self, case_id: UUID) -> None:
        if self.case_id is not None:
            raise ValueError("a request is still open")  # the application checks first
        self.trigger_event(self.Reopened, case_id=case_id)

    class Reopened(Aggregate.Event):
        case_id: UUID

        def apply(self, index: OpenRequest) -> None:
            index.case_id = self.case_id

    def release(self, case_id: UUID) -> None:
        if self.case_id == case_id:
            self.trigger_event(self.Released, case_id=case_id)

    class Released(Aggregate.Event):
        case_id: UUID

        def apply(self, index: OpenRequest) -> None:
            index.case_id = None


def open_request_id(association_id: str, subject_index: str, service_code: str) -> UUID:
    """The index of an applicant's open request, by their blind index."""
    return uuid5(
        INTAKE_NAMESPACE, f"open-subject\x1f{association_id}\x1f{subject_index}\x1f{service_code}"
    )


def legacy_open_request_id(association_id: str, national_id: str, service_code: str) -> UUID:
    """The index as derived before the blind index: from the national ID itself."""
    return uuid5(INTAKE_NAMESPACE, f"open\x1f{association_id}\x1f{national_id}\x1f{service_code}")
