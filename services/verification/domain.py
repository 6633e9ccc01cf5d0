"""Verification's domain: the automatic checks of a request and the officer's confirmation.

The checks are pure functions of the submitted data, run once when the request
arrives, so the verification records what the data was *at submission time*.
They suggest an outcome; a verification officer confirms it, or overrides it
with a reason, and that confirmation is the public event the outbox publishes.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Mapping, Sequence
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from shared.errors import Refused

VERIFIED = "verified"
DISCREPANCIES = "discrepancies"
INELIGIBLE = "ineligible"
OUTCOMES: tuple[str, ...] = (VERIFIED, DISCREPANCIES, INELIGIBLE)

NATIONAL_ID_FORMAT = "national_id_format"
NAME_PRESENT = "name_present"
PHONE_FORMAT = "phone_format"
ATTESTATION_SIGNED = "attestation_signed"
OFFICER_OVERRIDE = "officer_override"

OFFICER_MAX_LENGTH = 200  # an integration event's actor id is at most 200 characters

_NATIONAL_ID = re.compile(r"[0-9]{10}")
_PHONE = re.compile(r"\+?[0-9]{9,15}")
_PHONE_SEPARATORS = re.compile(r"[\s-]+")
_ID_HOLDERS = {"1": "citizen", "2": "resident"}


@dataclass(frozen=True)
class Check:
    """One check's result. `detail` is short English and never repeats personal data."""

    name: str
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# The automatic checks --------------------------------------------------------


def check_national_id_format(national_id: str | None) -> Check:
    """10 digits; the first is 1 for a citizen or 2 for a resident."""
    value = (national_id or "").strip()
    if not _NATIONAL_ID.fullmatch(value):
        return Check(NATIONAL_ID_FORMAT, False, "National id must be exactly 10 digits.")
    holder = _ID_HOLDERS.get(value[0])
    if holder is None:
        return Check(
            NATIONAL_ID_FORMAT,
            False,
            "National id must start with 1 (citizen) or 2 (resident).",
        )
    return Check(NATIONAL_ID_FORMAT, True, f"Well-formed national id of a {holder}.")


def check_name_present(name: str | None) -> Check:
    if name is None or not name.strip():
        return Check(NAME_PRESENT, False, "The applicant's name is missing.")
    return Check(NAME_PRESENT, True, "The applicant's name is given.")


def check_phone_format(phone: str | None) -> Check:
    """Optional; when given: an optional +, then 9 to 15 digits (spaces and dashes ignored)."""
    if phone is None or not phone.strip():
        return Check(PHONE_FORMAT, True, "No phone number given (optional).")
    if not _PHONE.fullmatch(_PHONE_SEPARATORS.sub("", phone.strip())):
        return Check(
            PHONE_FORMAT,
            False,
            "Phone number must be an optional + followed by 9 to 15 digits.",
        )
    return Check(PHONE_FORMAT, True, "Well-formed phone number.")


def check_attestation_signed(attestation: Mapping[str, Any] | None) -> Check:
    if attestation is None:
        return Check(ATTESTATION_SIGNED, False, "The applicant has not signed the attestation.")
    if attestation.get("attested") is not True:
        return Check(ATTESTATION_SIGNED, False, "The attestation is present but not affirmed.")
    return Check(ATTESTATION_SIGNED, True, "The applicant attested that the data is correct.")


def automatic_checks(
    applicant: Mapping[str, Any], attestation: Mapping[str, Any] | None
) -> list[Check]:
    """Every automatic check of a request's data, in a stable order."""
    return [
        check_national_id_format(applicant.get("national_id")),
        check_name_present(applicant.get("name")),
        check_phone_format(applicant.get("phone")),
        check_attestation_signed(attestation),
    ]


def suggested_outcome(checks: Sequence[Check]) -> str:
    """Ineligible without a valid national id; discrepancies if anything else fails."""
    failed = {check.name for check in checks if not check.passed}
    if NATIONAL_ID_FORMAT in failed:
        return INELIGIBLE
    if failed:
        return DISCREPANCIES
    return VERIFIED


# The aggregate ----------------------------------------------------------------


class Verification(Aggregate):
    """The verification of one request; its id is the case id."""

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
    ) -> "Verification":
        """Runs the automatic checks on the data as submitted and opens the verification."""
        checks = automatic_checks(applicant, attestation)
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
        )

    @event("Opened")
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
    ):
        self.request_event_id = request_event_id
        self.association_id = association_id
        self.case_ref = case_ref
        self.correlation_id = correlation_id
        self.service_code = service_code
        self.channel = channel
        self.submitted_at = submitted_at
        self.checks = checks
        self.suggested_outcome = suggested_outcome
        self.outcome: str | None = None
        self.officer: str | None = None
        self.confirmed = False

    @property
    def status(self) -> str:
        return "confirmed" if self.confirmed else "pending"

    # Commands of the verification officer ------------------------------------------

    def confirm(
        self,
        *,
        event_id: UUID,
        officer: str,
        confirmed_at: datetime,
        outcome: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Confirms the suggested outcome, or overrides it when a reason is given."""
        if self.confirmed:
            raise Refused(
                "already_confirmed",
                "This verification was already confirmed.",
                "تم تأكيد هذا التحقق من قبل.",
            )
        officer = officer.strip()
        if not officer or len(officer) > OFFICER_MAX_LENGTH:
            raise Refused(
                "officer_required",
                f"The confirming officer must be named (1 to {OFFICER_MAX_LENGTH} characters).",
                f"يجب ذكر اسم الموظف المؤكِّد (من 1 إلى {OFFICER_MAX_LENGTH} حرفًا).",
            )
        chosen = outcome or self.suggested_outcome
        if chosen not in OUTCOMES:
            raise Refused(
                "unknown_outcome",
                f"Unknown outcome {chosen!r}; expected one of: {', '.join(OUTCOMES)}.",
                f"نتيجة غير معروفة {chosen!r}؛ القيم المقبولة: {', '.join(OUTCOMES)}.",
            )
        reason = (reason or "").strip() or None
        checks = list(self.checks)
        if chosen != self.suggested_outcome:
            if reason is None:
                raise Refused(
                    "override_needs_reason",
                    f"The suggested outcome is {self.suggested_outcome}; choosing "
                    f"{chosen} instead needs a reason.",
                    f"النتيجة المقترحة هي {self.suggested_outcome}؛ واختيار {chosen} "
                    "بدلًا منها يتطلب ذكر السبب.",
                )
            checks.append(Check(OFFICER_OVERRIDE, True, reason).as_dict())
        self._confirmed(
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
        )

    @event("Confirmed")
    def _confirmed(
        self,
        *,
        event_id: UUID,
        causation_id: UUID,
        association_id: str,
        case_ref: str,
        correlation_id: UUID,
        outcome: str,
        suggested_outcome: str,
        checks: list[dict[str, Any]],
        officer: str,
        reason: str | None,
        confirmed_at: datetime,
    ) -> None:
        self.confirmed = True
        self.outcome = outcome
        self.officer = officer
