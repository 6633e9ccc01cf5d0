"""Intake's application: each method loads, calls one command, saves, returns plain values."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol, cast
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.domain import MutableOrImmutableAggregate
from eventsourcing.persistence import IntegrityError

from services.intake.domain import (
    Case,
    CaseNumbering,
    CaseStatus,
    ChannelRef,
    OpenRequest,
    access_code_digest,
    applicant_as_recorded,
    attested_data_hash,
    case_reference,
    channel_ref_id,
    complete_attestation,
    dates_as_given,
    explained_ineligibility,
    fields_as_taken,
    legacy_open_request_id,
    missing_information,
    new_access_code,
    numbering_id,
    open_request_id,
    parse_case_reference,
)
from shared.dates import hijri_year, local_day
from shared.dead_letter import REPLAYED_NOTICE, DeadLetter
from shared.errors import Invalid, NotFound, Refused
from shared.events import CommitteeDecided, DataVerified
from shared.personal.keyring import SubjectKeyBatch, SubjectKeyring
from shared.personal.mapper import is_erased_value
from shared.personal.sealing import ERASED_TEXT
from shared.policy import PolicyPack, ServiceDefinition, eligibility_failures
from shared.store import ServiceApplication, UnitOfWork
from shared.submissions import Submission

log = logging.getLogger(__name__)


class SubmissionRefused(Invalid):
    """A submission intake cannot accept at all (unknown association, channel, service)."""

    def __init__(self, code: str, en: str, ar: str, **details: Any):
        super().__init__(code, en, ar)
        self.details = details

    def as_dict(self) -> dict[str, object]:
        return {**super().as_dict(), **self.details}


def channel_ref_conflict(channel: str, channel_ref: str) -> Refused:
    """The channel's reference is already another request's: saying whose would leak
    that request, and taking this one as a duplicate would lose it."""
    return Refused(
        "channel_ref_conflict",
        f"The {channel} reference {channel_ref!r} already belongs to another request "
        "(another applicant or service); nothing was recorded. Send this request with "
        "its own reference.",
        f"المرجع {channel_ref!r} في قناة {channel} يخص طلبًا آخر (مقدّم أو خدمة أخرى)؛ "
        "لم يُسجَّل شيء. أرسل هذا الطلب بمرجع خاص به.",
    )


def no_such_request(case_key: str) -> NotFound:
    """The one answer for an unknown request and for a wrong or missing secret code:
    the applicant's side learns nothing more from one than from the other."""
    return NotFound(
        "case_not_found",
        f"No request {case_key} (or not with this code).",
        f"لا يوجد طلب {case_key} (أو ليس بهذا الرمز).",
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


class SubjectKeys(Protocol):
    """What intake asks the keyring (shared/personal/keyring.py): an applicant's key
    id, created on their first request, and their blind index."""

    def key_for(self, association_id: str, national_id: str) -> str: ...
    def subject_index(self, association_id: str, national_id: str) -> str: ...


def shown(value: Any) -> Any:
    """A personal value as a person reads it: as recorded, or the "erased" marker
    once the applicant's key was destroyed."""
    return ERASED_TEXT if is_erased_value(value) else value


def personal_data_erased(case_ref: str) -> Refused:
    return Refused(
        "personal_data_erased",
        f"The applicant's personal data in request {case_ref} was erased; nothing can "
        "be added to it or corrected. A new request can be submitted.",
        f"مُحيت البيانات الشخصية لمقدم الطلب {case_ref}؛ لا يمكن الإضافة إليه أو تصحيحه. "
        "يمكن تقديم طلب جديد.",
    )


@dataclass(frozen=True)
class SubmissionResult:
    case_id: UUID
    case_ref: str
    duplicate: bool
    linked: bool = False
    status: CaseStatus = CaseStatus.RECEIVED
    missing: list[dict[str, str]] = field(default_factory=list)
    data_hash: str | None = None
    revision: int = 1
    # The applicant's secret code, in the answer that opened the case only: the
    # case keeps its digest, so no later answer can repeat it.
    access_code: str | None = None
    # The case's correlation id (its trace, shared/tracing.py); not in the answer.
    correlation_id: UUID | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "case_id": str(self.case_id),
            "case_ref": self.case_ref,
            "duplicate": self.duplicate,
            "linked": self.linked,
            "status": self.status,
            "complete": not self.missing
            and self.status not in (CaseStatus.INCOMPLETE, CaseStatus.CORRECTING),
            "missing": self.missing,
            # The hash a declaration on the data as it stands must carry.
            "data_hash": self.data_hash,
            # The revision of the request as last published.
            "revision": self.revision,
            "access_code": self.access_code,
        }


# The case's events a case file lists, with who recorded each.
_FILE_STEPS: dict[type[Any], str] = {
    Case.Submitted: "submitted",
    Case.InformationAdded: "information_added",
    Case.Completed: "received",
    Case.Corrected: "corrected",
    Case.Resubmitted: "resubmitted",
    Case.ReferredToResearcher: "referred_to_researcher",
    Case.ServiceDelivered: "delivered",
}


class IntakeApplication(ServiceApplication):
    name = "intake"
    # A year's numbering takes one version per case: without snapshots every
    # submission would replay the whole year's numbers.
    snapshotting_intervals: ClassVar[dict[type[MutableOrImmutableAggregate[Any]], int]] = {
        CaseNumbering: 100
    }
    # Loaded once, then caught up from the store on each use (docs/decisions.md, 34):
    # the indexes every submission reads. Never the cases, whose personal data
    # must not stay in memory past an erasure.
    kept_aggregates: ClassVar[tuple[type[Any], ...]] = (CaseNumbering, OpenRequest, ChannelRef)

    # The association's pack ----------------------------------------------------

    def pack(self, association_id: str) -> PolicyPack:
        pack = self.packs.get(association_id)
        if pack is None:
            known = ", ".join(sorted(self.packs)) or "-"
            raise SubmissionRefused(
                "unknown_association",
                f"Khidma serves no association '{association_id}' here "
                f"(associations served: {known}).",
                f"لا تخدم خدمة جمعية بالمعرّف '{association_id}' هنا (الجمعيات المخدومة: {known}).",
                associations=sorted(self.packs),
            )
        return pack

    def governing_pack(self, case: Case) -> PolicyPack:
        """The version of the association's policy that governs the case: the one in
        force when it was received, whatever version is in force now."""
        pack = self.packs.governing(case.association_id, case.policy_version, case.submitted_at)
        return pack if pack is not None else self.pack(case.association_id)

    def service(
        self, association_id: str, service_code: str, pack: PolicyPack | None = None
    ) -> ServiceDefinition:
        pack = pack or self.pack(association_id)
        service = pack.service(service_code)
        if service is None:
            catalogue_en = "; ".join(f"{s.code} ({s.name.en})" for s in pack.services)
            catalogue_ar = "؛ ".join(f"{s.code} ({s.name.ar})" for s in pack.services)
            raise SubmissionRefused(
                "unknown_service",
                f"{pack.name.en} offers no service '{service_code}'. Its services: {catalogue_en}.",
                f"لا تقدم {pack.name.ar} خدمة '{service_code}'. خدماتها: {catalogue_ar}.",
                catalogue=[{"code": s.code, "name": s.name.model_dump()} for s in pack.services],
            )
        return service

    def check_channel(
        self, association_id: str, channel: str, pack: PolicyPack | None = None
    ) -> None:
        pack = pack or self.pack(association_id)
        if not pack.enables(channel):
            enabled = ", ".join(pack.channels)
            raise SubmissionRefused(
                "channel_not_enabled",
                f"{pack.name.en} does not receive its {pack.clients.plural.en}' requests "
                f"by '{channel}'. Its channels: {enabled}.",
                f"لا تستقبل {pack.name.ar} طلبات {pack.clients.plural.ar} عبر '{channel}'. "
                f"قنواتها: {enabled}.",
                enabled_channels=list(pack.channels),
            )

    # The applicant as a data subject (docs/decisions.md, 24) ----------------------

    @property
    def subject_keys(self) -> SubjectKeys | None:
        """The keyring, or None in an application built without one (plumbing
        tests): its cases are then recorded as before encryption."""
        return cast(SubjectKeys, self.sealer.keys) if self.sealer is not None else None

    def subject_index(self, association_id: str, national_id: str) -> str | None:
        keys = self.subject_keys
        return keys.subject_index(association_id, national_id) if keys else None

    def subject(
        self, association_id: str, national_id: str, keys: SubjectKeys | None = None
    ) -> dict[str, str | None]:
        """The applicant's key id (created on their first request) and blind index,
        from the keyring (or the batch's keys, `keys`)."""
        keys = keys or self.subject_keys
        if keys is None:
            return {"personal_key": None, "subject_index": None}
        return {
            "personal_key": keys.key_for(association_id, national_id),
            "subject_index": keys.subject_index(association_id, national_id),
        }

    def _keyed(self, case: Case) -> Case:
        """The case, ready to record the applicant's data: refused once erased; a
        case from before encryption first gets its applicant's key."""
        if is_erased_value(case.applicant):
            raise personal_data_erased(case.case_ref)
        if case.personal_key is None and self.subject_keys is not None:
            subject = self.subject(case.association_id, str(case.applicant["national_id"]))
            case.key_subject(
                personal_key=str(subject["personal_key"]),
                subject_index=str(subject["subject_index"]),
            )
        return case

    # Front desk --------------------------------------------------------------

    def submit(self, submission: Submission, actor: dict[str, str]) -> SubmissionResult:
        """Opens a case (complete or not), or recognises the request it repeats.

        Nothing is recorded for an unknown association, a channel the
        association does not enable or a service outside its catalogue.
        """
        (outcome,) = self.submit_all([(submission, actor)])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def submit_all(
        self, submissions: Sequence[tuple[Submission, dict[str, str]]]
    ) -> list[SubmissionResult | Exception]:
        """Many submissions (with their actors) decided in their order and recorded in
        one transaction (group commit, docs/decisions.md 34): one outcome each, its
        result or the refusal (or failure) its caller is to see.

        Each is decided on what the earlier ones left, so two in one batch for the
        same channel reference or applicant behave as they would one after the
        other; a refused one records nothing and changes nothing for the others.
        When the batch cannot be recorded (another instance saved first, a store
        error), nothing of it is, and each submission is decided and recorded
        again on its own.
        """
        if len(submissions) > 1:
            try:
                return self._submit_together(submissions)
            except Exception:  # nothing was recorded: one by one, below
                log.warning(
                    "a batch of %d submissions could not be recorded together; "
                    "recording them one by one",
                    len(submissions),
                    exc_info=True,
                )
        return [self._submit_alone(submission, actor) for submission, actor in submissions]

    def _submit_alone(
        self, submission: Submission, actor: dict[str, str]
    ) -> SubmissionResult | Exception:
        try:
            # Another instance may take the number, the channel reference or the
            # applicant's open request first: reload and decide again.
            (outcome,) = self.retrying(
                lambda: self._submit_together([(submission, actor)]), "the submission"
            )
        except Exception as error:  # noqa: BLE001 — the caller's own failure
            return error
        return outcome

    def _submit_together(
        self, submissions: Sequence[tuple[Submission, dict[str, str]]]
    ) -> list[SubmissionResult | Exception]:
        """Decides each submission in one unit of work, then saves it all at once.

        Raises (and records nothing) when the save fails."""
        work = UnitOfWork(self.repository.get)
        keys = self._key_batch(submissions)
        outcomes: list[SubmissionResult | Exception] = []
        for submission, actor in submissions:
            try:
                with work.command(), keys.command() if keys else nullcontext():
                    outcomes.append(self._decide_submission(submission, actor, work, keys))
            except Exception as error:  # noqa: BLE001 — this submission's answer alone
                outcomes.append(error)
        if keys is not None and not keys.record():
            raise IntegrityError("an applicant's key was made elsewhere meanwhile")
        aggregates = work.aggregates()
        if any(aggregate.pending_events for aggregate in aggregates):
            self.save(*aggregates)
        return outcomes

    def _key_batch(
        self, submissions: Sequence[tuple[Submission, dict[str, str]]]
    ) -> SubjectKeyBatch | None:
        """The applicants' keys, read in one transaction (the new ones written in one)."""
        keyring = self.subject_keys
        if not isinstance(keyring, SubjectKeyring):
            return None
        return keyring.batch(
            (submission.association_id, submission.applicant.national_id)
            for submission, _ in submissions
        )

    def _decide_submission(
        self,
        submission: Submission,
        actor: dict[str, str],
        work: UnitOfWork,
        keys: SubjectKeys | None,
    ) -> SubmissionResult:
        # The version in force now governs the request: its channels, its services'
        # requirements, and (recorded on the case) everything after.
        pack = self.pack(submission.association_id)
        self.check_channel(submission.association_id, submission.channel, pack)
        service = self.service(submission.association_id, submission.service_code, pack)
        association_id = submission.association_id
        national_id = submission.applicant.national_id
        subject_index = self.subject_index(association_id, national_id)
        existing = self._case_for_channel_ref(
            association_id, submission.channel, submission.channel_ref, work
        )
        if existing is not None:
            if not existing.is_retry_of(national_id, submission.service_code, subject_index):
                raise channel_ref_conflict(submission.channel, submission.channel_ref)
            return self._result(existing, duplicate=True)
        now = self.clock.now()
        open_request = self._open_request(
            association_id,
            submission.service_code,
            subject_index=subject_index,
            national_id=national_id,
            work=work,
        )
        if open_request is not None and open_request.case_id is not None:
            case = self._get_case(open_request.case_id, work)
            case.link_duplicate(
                channel=submission.channel, channel_ref=submission.channel_ref, at=now
            )
            index = ChannelRef(
                association_id=association_id,
                channel=submission.channel,
                channel_ref=submission.channel_ref,
                case_id=case.id,
            )
            work.stage(case, index)
            return self._result(case, duplicate=True, linked=True)

        case_id = uuid4()
        access_code = new_access_code()
        year = hijri_year(now)
        numbering = self._numbering(association_id, year, work)
        number = numbering.take_number(case_id)
        # Before the hash: the declaration covers the data as published.
        applicant = applicant_as_recorded(submission.applicant.model_dump(mode="json"))
        fields, documents = dates_as_given(
            service,
            fields_as_taken(service, submission.fields),
            [doc.model_dump(mode="json") for doc in submission.documents],
            local_day(now),
        )
        attestation = (
            complete_attestation(
                submission.attestation.model_dump(mode="json"),
                attested_data_hash(applicant, submission.service_code, fields, documents),
                default_by=submission.applicant.name,
                at=now,
            )
            if submission.attestation
            else None
        )
        case = Case(
            case_id=case_id,
            received_event_id=uuid4(),
            association_id=association_id,
            case_ref=case_reference(pack.case_prefix, year, number),
            channel=submission.channel,
            channel_ref=submission.channel_ref,
            service_code=submission.service_code,
            applicant=applicant,
            fields=fields,
            documents=documents,
            attestation=attestation,
            actor=actor,
            submitted_at=now,
            access_code_hash=access_code_digest(case_id, access_code),
            policy_version=pack.number,
            **self.subject(association_id, national_id, keys),
        )
        case.check_completeness(service, at=now, actor=actor)
        channel_index = ChannelRef(
            association_id=association_id,
            channel=submission.channel,
            channel_ref=submission.channel_ref,
            case_id=case_id,
        )
        if open_request is None:
            open_request = self._new_open_request(case, national_id)
        else:
            open_request.reopen(case_id)
        work.stage(case, channel_index, numbering, open_request)
        return self._result(case, duplicate=False, access_code=access_code)

    def add_information(
        self,
        case_id: UUID,
        *,
        fields: dict[str, Any] | None = None,
        documents: list[dict[str, Any]] | None = None,
        attestation: dict[str, Any] | None = None,
        actor: dict[str, str],
    ) -> SubmissionResult:
        """What the applicant still owed arrives; the case completes when nothing is missing."""
        case = self._keyed(self._get_case(case_id))
        service = self.service(case.association_id, case.service_code, self.governing_pack(case))
        now = self.clock.now()
        fields, documents = dates_as_given(
            service, fields or {}, list(documents or []), local_day(now)
        )
        case.add_information(
            fields=fields_as_taken(service, fields),
            documents=documents,
            attestation=attestation,
            actor=actor,
            at=now,
        )
        case.check_completeness(service, at=now, actor=actor, event_id=uuid4())
        self.save(case)
        return self._result(case, duplicate=False)

    def correct(
        self,
        case_id: UUID,
        *,
        applicant: dict[str, Any] | None = None,
        fields: dict[str, Any] | None = None,
        documents: list[dict[str, Any]] | None = None,
        attestation: dict[str, Any] | None = None,
        actor: dict[str, str],
    ) -> SubmissionResult:
        """The applicant corrects what verification listed; published again once attested.

        A corrected national ID moves the applicant's open-request index with it.
        """
        # The case or an open-request index may change meanwhile: decide again.
        return self.retrying(
            lambda: self._correct_once(
                case_id,
                applicant=dict(applicant or {}),
                fields=dict(fields or {}),
                documents=list(documents or []),
                attestation=attestation,
                actor=actor,
            ),
            "the correction",
        )

    def _correct_once(
        self,
        case_id: UUID,
        *,
        applicant: dict[str, Any],
        fields: dict[str, Any],
        documents: list[dict[str, Any]],
        attestation: dict[str, Any] | None,
        actor: dict[str, str],
    ) -> SubmissionResult:
        case = self._keyed(self._get_case(case_id))
        service = self.service(case.association_id, case.service_code, self.governing_pack(case))
        now = self.clock.now()
        national_id_before = str(case.applicant["national_id"])
        index_before = case.subject_index
        national_id = str(applicant.get("national_id") or national_id_before)
        fields, documents = dates_as_given(service, fields, documents, local_day(now))
        case.correct(
            applicant=applicant,
            fields=fields_as_taken(service, fields),
            documents=documents,
            attestation=attestation,
            actor=actor,
            at=now,
            # A corrected national ID is another data subject, with their own key.
            **(
                self.subject(case.association_id, national_id)
                if national_id != national_id_before
                else {}
            ),
        )
        indexes = self._open_request_moved(case, national_id_before, index_before)
        case.check_completeness(service, at=now, actor=actor, event_id=uuid4())
        self.save(case, *indexes)
        return self._result(case, duplicate=False)

    def _open_request_moved(
        self, case: Case, national_id_before: str, index_before: str | None
    ) -> list[OpenRequest]:
        """The one-open-request index, moved to the corrected national ID.

        Refused when the corrected ID already has an open request for the service.
        """
        national_id = str(case.applicant["national_id"])
        if national_id == national_id_before:
            return []
        target = self._open_request(
            case.association_id,
            case.service_code,
            subject_index=case.subject_index,
            national_id=national_id,
        )
        if target is not None and target.case_id not in (None, case.id):
            other = self._get_case(target.case_id)
            raise Refused(
                "already_open",
                f"The applicant with national ID {national_id} already has an open request "
                f"for this service ({other.case_ref}); the national ID cannot be corrected "
                "to theirs while it is open.",
                f"لصاحب رقم الهوية {national_id} طلب مفتوح لهذه الخدمة ({other.case_ref})؛ "
                "لا يمكن تصحيح رقم الهوية إليه ما دام ذلك الطلب مفتوحًا.",
            )
        moved: list[OpenRequest] = []
        previous = self._open_request(
            case.association_id,
            case.service_code,
            subject_index=index_before,
            national_id=national_id_before,
        )
        if previous is not None:
            previous.release(case.id)
            moved.append(previous)
        if target is None:
            target = self._new_open_request(case, national_id)
        elif target.case_id is None:
            target.reopen(case.id)
        moved.append(target)
        return moved

    def case_id_of(self, case_key: str) -> UUID:
        """A case by its id or by its reference (SDR-1448-000123), from the store itself.

        The reference is found through the numbering that issued it, so a case
        can be named by its reference as soon as it exists.
        """
        try:
            return UUID(case_key)
        except ValueError:
            pass
        parsed = parse_case_reference(case_key)
        not_found = NotFound(
            "case_not_found",
            f"No request {case_key}.",
            f"لا يوجد طلب {case_key}.",
        )
        if parsed is None:
            raise not_found
        prefix, year, number = parsed
        pack = next((p for p in self.packs.values() if p.case_prefix == prefix), None)
        if pack is None or number < 1:
            raise not_found
        # The numbering's version n + 1 took number n (version 1 started it).
        for taken in self.events.get(
            numbering_id(pack.association_id, year), gt=number, lte=number + 1
        ):
            if isinstance(taken, CaseNumbering.NumberTaken) and taken.number == number:
                return taken.case_id
        raise not_found

    def preview_eligibility(
        self,
        association_id: str,
        service_code: str,
        fields: dict[str, Any],
        documents: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Seed 004, article 6: whether the applicant is eligible and why. Records nothing."""
        pack = self.pack(association_id)
        service = self.service(association_id, service_code)
        fields = fields_as_taken(service, fields)
        failures = eligibility_failures(service, fields)
        missing = missing_information(
            service,
            applicant={},
            fields=fields,
            documents=list(documents or []),
            attestation=None,
            include_attestation=False,
        )
        notes = []
        if service.members_only:
            notes.append(
                {
                    "ar": f"هذه الخدمة لـ{pack.clients.plural.ar} فقط: يجب أن يكون مقدم الطلب "
                    "عضوًا عاملًا مسددًا لالتزاماته، ويُتحقق من ذلك عند التحقق من الطلب.",
                    "en": f"This service is for {pack.clients.plural.en} only: the applicant "
                    "must be a member in good standing, which is checked at verification.",
                }
            )
        return {
            "association_id": association_id,
            "eligible": not failures,
            "service": {"code": service.code, "name": service.name.model_dump()},
            "members_only": service.members_only,
            "reasons": [rule.reason.model_dump() for rule in failures],
            "missing": missing,
            "notes": notes,
        }

    def refer_to_researcher(
        self,
        case_id: UUID,
        *,
        reason: str,
        questions: list[str],
        referred_by: str,
        actor: dict[str, str],
    ) -> None:
        """`referred_by`: the officer's user name; `actor`: the officer as recorded.
        The reason and questions are sealed under the applicant's key (refused once
        the applicant's data is erased)."""
        case = self._keyed(self._get_case(case_id))
        case.refer_to_researcher(
            event_id=uuid4(),
            at=self.clock.now(),
            reason=reason,
            questions=questions,
            referred_by=referred_by,
            actor=actor,
        )
        self.save(case)

    def deliver(
        self, case_id: UUID, *, delivered: str, delivered_by: str, actor: dict[str, str]
    ) -> None:
        case = self._get_case(case_id)
        case.deliver(
            event_id=uuid4(),
            at=self.clock.now(),
            delivered=delivered,
            delivered_by=delivered_by,
            actor=actor,
        )
        self.save(case, *self._released(case))

    # Who may reach a case ---------------------------------------------------------

    def association_of(self, case_key: str) -> tuple[UUID, str]:
        """(id, association) of a case named by its id or reference (NotFound otherwise):
        what a route checks the caller's role against."""
        case = self._get_case(self.case_id_of(case_key))
        return case.id, case.association_id

    def case_opened_by(self, case_key: str, code: str) -> UUID:
        """The case the applicant's secret code opens, named by its id or reference.

        An unknown request, a wrong code, another case's code and a case from
        before codes existed are the same NotFound (`no_such_request`).
        """
        try:
            case = self._get_case(self.case_id_of(case_key))
        except NotFound:
            raise no_such_request(case_key) from None
        if not case.opened_by(code):
            raise no_such_request(case_key)
        return case.id

    def applicant_view(self, case_key: str, code: str) -> dict[str, Any]:
        """The applicant's "where is my request?", as they may see it with the secret code:
        where it stands, what is missing or to correct, why it is not eligible, and
        by when the committee is to decide (the pack's window from the receipt, as
        the committee reckons it) while it has not."""
        case = self._get_case(self.case_opened_by(case_key, code))
        deadline = None
        undecided = case.decision is None and not case.closed
        if case.completed_at is not None and undecided and case.status != CaseStatus.INELIGIBLE:
            window = self.governing_pack(case).decision_window_days
            deadline = case.completed_at + timedelta(days=window)
        return {
            "case_id": str(case.id),
            "case_ref": case.case_ref,
            "association_id": case.association_id,
            "service_code": case.service_code,
            "status": case.status,
            "held": case.held,
            "complete": case.complete,
            "missing": list(case.missing),
            "corrections": list(case.corrections),
            "ineligible_reason": explained_ineligibility(
                case.ineligible_reason, case.ineligible_rule
            )
            if case.verification_outcome == "ineligible"
            else None,
            "revision": case.revision,
            # The hash a declaration on the data as it stands must carry.
            "data_hash": case.expected_hash(),
            "submitted_at": _iso(case.submitted_at),
            "received_at": _iso(case.completed_at),
            "decision_deadline_at": _iso(deadline),
        }

    def case_file(self, case_id: UUID) -> dict[str, Any]:
        """The request itself as intake holds it: the applicant, fields, documents and
        declaration as they stand, each revision as published, and who entered what.

        Never the secret code's digest.
        """
        case = self._get_case(case_id)
        revisions: list[dict[str, Any]] = []
        entries: list[dict[str, Any]] = []
        for stored in self.events.get(case_id):
            step = _FILE_STEPS.get(type(stored))
            if step is None:
                continue
            actor = getattr(stored, "actor", None)
            if actor is None:  # a referral or delivery from before identities were proven
                named = getattr(stored, "referred_by", None) or getattr(
                    stored, "delivered_by", None
                )
                actor = {"kind": "officer", "id": named} if named else None
            at = getattr(stored, "at", None) or getattr(stored, "submitted_at", None)
            entries.append({"what": step, "at": _iso(at), "actor": actor})
            if isinstance(stored, Case.Completed | Case.Resubmitted):
                revisions.append(
                    {
                        "revision": getattr(stored, "revision", 1),
                        "published_at": _iso(stored.at),
                        "corrects": str(stored.corrects)
                        if isinstance(stored, Case.Resubmitted)
                        else None,
                        "applicant": shown(stored.applicant),
                        "fields": shown(stored.fields),
                        "documents": shown(stored.documents),
                        "attestation": shown(stored.attestation),
                        "actor": stored.actor,
                    }
                )
        return {
            "case_id": str(case.id),
            "case_ref": case.case_ref,
            "association_id": case.association_id,
            "service_code": case.service_code,
            "channel": case.channel,
            "channel_ref": case.channel_ref,
            "linked_channels": list(case.linked_channels),
            "status": case.status,
            "held": case.held,
            "complete": case.complete,
            "correcting": case.correcting,
            "revision": case.revision,
            # The version of the association's policy the case is governed by (None:
            # received before versions, governed by the one in force then).
            "policy_version": case.policy_version,
            "missing": list(case.missing),
            "corrections": list(case.corrections),
            "submitted_at": _iso(case.submitted_at),
            "received_at": _iso(case.completed_at),
            # Opened from the store; "erased" once the applicant's key was destroyed.
            "erased": is_erased_value(case.applicant),
            "applicant": shown(case.applicant),
            "fields": shown(case.fields),
            "documents": shown(case.documents),
            "attestation": shown(case.attestation),
            "data_hash": case.expected_hash(),
            "revisions": revisions,
            "entries": entries,
        }

    def case_status(self, case_id: UUID) -> dict[str, Any]:
        case = self._get_case(case_id)
        return {
            "case_id": str(case.id),
            "case_ref": case.case_ref,
            "status": case.status,
            "held": case.held,
            "complete": case.complete,
            "missing": case.missing,
            "referred": case.referred,
            "revision": case.revision,
            "corrections": case.corrections,
            "ineligible_reason": explained_ineligibility(
                case.ineligible_reason, case.ineligible_rule
            )
            if case.verification_outcome == "ineligible"
            else None,
            "version": case.version,
        }

    # What the other services tell intake ---------------------------------------

    def on_data_verified(self, event: DataVerified, processing: ProcessingEvent) -> None:
        case = self._get_case(event.case_id)
        payload = event.payload
        case.note_verification(
            source_event_id=event.event_id,
            outcome=payload.outcome,
            revision=payload.revision,
            corrections=[c.model_dump() for c in payload.corrections],
            ineligible_reason=(
                payload.ineligible_reason.model_dump() if payload.ineligible_reason else None
            ),
            ineligible_rule=payload.ineligible_rule,
        )
        processing.collect_events(case)

    def on_committee_decided(self, event: CommitteeDecided, processing: ProcessingEvent) -> None:
        case = self._get_case(event.case_id)
        case.note_decision(source_event_id=event.event_id, decision=event.payload.decision)
        processing.collect_events(case, *self._released(case))

    def on_dead_letter(self, notice: DeadLetter, processing: ProcessingEvent) -> None:
        """A message about a case was set aside (by any service): the case is held
        until the operator's replay of it is applied; then the hold lifts."""
        now = self.clock.now()
        for case_id in notice.case_ids():
            try:
                case: Case = self.repository.get(case_id)
            except AggregateNotFoundError:
                continue  # no such case here: nothing to hold (the dead letter still lists it)
            if notice.kind == REPLAYED_NOTICE:
                case.lift_hold(key=notice.key, at=now)
            else:
                case.hold(key=notice.key, service=notice.service, reason=notice.reason, at=now)
            processing.collect_events(case)

    # -----------------------------------------------------------------------

    def _result(
        self,
        case: Case,
        *,
        duplicate: bool,
        linked: bool = False,
        access_code: str | None = None,
    ) -> SubmissionResult:
        return SubmissionResult(
            case.id,
            case.case_ref,
            duplicate=duplicate,
            linked=linked,
            status=case.status,
            missing=list(case.missing),
            data_hash=case.expected_hash(),
            revision=case.revision,
            access_code=access_code,
            correlation_id=case.correlation_id,
        )

    def _released(self, case: Case) -> list[OpenRequest]:
        """The applicant's open-request index, released when the case has closed."""
        if not case.closed:
            return []
        index = self._open_request(
            case.association_id,
            case.service_code,
            subject_index=case.subject_index,
            # An erased applicant's number is gone: their index is found by the blind one.
            national_id=case.applicant.get("national_id"),
        )
        if index is None:
            return []
        index.release(case.id)
        return [index]

    def _load(self, aggregate_id: UUID, work: UnitOfWork | None) -> Any:
        """From the batch's unit of work when deciding in one, else from the store."""
        return work.get(aggregate_id) if work is not None else self.repository.get(aggregate_id)

    def _get_case(self, case_id: UUID, work: UnitOfWork | None = None) -> Case:
        try:
            return cast(Case, self._load(case_id, work))
        except AggregateNotFoundError:
            raise NotFound(
                "case_not_found",
                f"No request with id {case_id}.",
                f"لا يوجد طلب بالرقم {case_id}.",
            ) from None

    def _numbering(
        self, association_id: str, year: int, work: UnitOfWork | None = None
    ) -> CaseNumbering:
        try:
            return cast(CaseNumbering, self._load(numbering_id(association_id, year), work))
        except AggregateNotFoundError:
            numbering = CaseNumbering(association_id=association_id, hijri_year=year)
            if work is not None:
                work.stage(numbering)
            return numbering

    def _open_request(
        self,
        association_id: str,
        service_code: str,
        *,
        subject_index: str | None,
        national_id: str | None,
        work: UnitOfWork | None = None,
    ) -> OpenRequest | None:
        """The applicant's open-request index for the service: by their blind index,
        or the one derived from the national ID before the blind index existed, when
        that one still holds an open case (or without the keyring)."""
        current = None
        if subject_index is not None:
            current = self._index(
                open_request_id(association_id, subject_index, service_code), work
            )
            if current is not None and current.case_id is not None:
                return current
        if national_id:
            legacy = self._index(
                legacy_open_request_id(association_id, national_id, service_code), work
            )
            if legacy is not None and (legacy.case_id is not None or subject_index is None):
                return legacy
        return current

    def _index(self, index_id: UUID, work: UnitOfWork | None = None) -> OpenRequest | None:
        try:
            return cast(OpenRequest, self._load(index_id, work))
        except AggregateNotFoundError:
            return None

    def _new_open_request(self, case: Case, national_id: str) -> OpenRequest:
        """The applicant's index, by their blind index (by the number only without a keyring)."""
        return OpenRequest(
            association_id=case.association_id,
            service_code=case.service_code,
            case_id=case.id,
            subject_index=case.subject_index,
            national_id=None if case.subject_index else national_id,
        )

    def _case_for_channel_ref(
        self, association_id: str, channel: str, channel_ref: str, work: UnitOfWork | None = None
    ) -> Case | None:
        index_id = channel_ref_id(association_id, channel, channel_ref)
        try:
            index: ChannelRef = self._load(index_id, work)
        except AggregateNotFoundError:
            return None
        return cast(Case, self._load(index.case_id, work))
