"""The privacy service's application: each method loads, calls one command, saves.

The keyring (shared/personal) is the one piece of infrastructure it drives: an
erasure's second step destroys the subject's keys there. That step can be run
again (the keyring finds the keys destroyed under the erasure's id), so an
erasure interrupted between its request and its completion is completed by
`complete_erasure` on the next start or sweep.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent

from services.privacy.domain import (
    REQUESTED,
    CaseLink,
    Subject,
    case_not_found,
    subject_id,
)
from shared.consumer import RetryLater
from shared.errors import Invalid, association_not_served
from shared.events import (
    Applicant,
    CommitteeDecided,
    RequestReceived,
    ServiceDelivered,
)
from shared.personal.keyring import SubjectKeyring, normalised_national_id
from shared.store import ServiceApplication

log = logging.getLogger(__name__)

# The retention an association without a pack gets (the packs' seed: 5 years).
DEFAULT_RETENTION_DAYS = 1826


def national_id_required() -> Invalid:
    return Invalid(
        "national_id_required",
        "Give the national id (or residence number) of the person whose data is erased.",
        "أدخل رقم الهوية الوطنية (أو الإقامة) للشخص المراد محو بياناته.",
    )


class PrivacyApplication(ServiceApplication):
    name = "privacy"

    @property
    def keyring(self) -> SubjectKeyring:
        keys = self.sealer.keys if self.sealer else None
        if not isinstance(keys, SubjectKeyring):
            raise TypeError("the privacy service needs the deployment's keyring")
        return keys

    def retention_days(self, association_id: str) -> int:
        pack = self.packs.get(association_id)
        return pack.retention_days if pack else DEFAULT_RETENTION_DAYS

    # What the other services tell the privacy service ----------------------------

    def on_request_received(self, event: RequestReceived, processing: ProcessingEvent) -> None:
        payload = event.payload
        index = payload.subject_index
        if index is None and isinstance(payload.applicant, Applicant):
            # Published before the blind index existed: its number is still plain.
            index = self.keyring.subject_index(event.association_id, payload.applicant.national_id)
        if index is None:
            log.warning("request %s names no data subject: not followed", event.case_ref)
            return
        subject = self._subject(event.association_id, index) or Subject(
            association_id=event.association_id, subject_index=index
        )
        subject.open_case(
            case_id=event.case_id,
            case_ref=event.case_ref,
            personal_key=payload.personal_key,
            opened_at=event.occurred_at,
        )
        link = self._link(event.case_id)
        if link is None:
            link = CaseLink(
                case_id=event.case_id,
                association_id=event.association_id,
                subject_ids=[str(subject.id)],
            )
        else:
            link.add_subject(subject.id)
        processing.collect_events(subject, link)

    def on_committee_decided(self, event: CommitteeDecided, processing: ProcessingEvent) -> None:
        if event.payload.decision == "rejected":
            self._close(event.case_id, "rejected", event, processing)

    def on_service_delivered(self, event: ServiceDelivered, processing: ProcessingEvent) -> None:
        self._close(event.case_id, "delivered", event, processing)

    def _close(
        self,
        case_id: UUID,
        outcome: str,
        event: CommitteeDecided | ServiceDelivered,
        processing: ProcessingEvent,
    ) -> None:
        link = self._link(case_id)
        if link is None:
            raise RetryLater(f"case {case_id} is not registered yet")
        for subject_key in link.subject_ids:
            subject: Subject = self.repository.get(UUID(subject_key))
            subject.close_case(
                case_id=case_id,
                outcome=outcome,
                closed_at=event.occurred_at,
                source_event_id=event.event_id,
            )
            processing.collect_events(subject)

    # The privacy officer ----------------------------------------------------------

    def request_erasure(
        self,
        association_id: str,
        *,
        national_id: str,
        reason: str,
        legal_basis: str,
        actor: dict[str, Any],
    ) -> dict[str, Any]:
        """Records the erasure of one person's personal data, then destroys their keys.

        The national id only finds the subject (its blind index); it is not kept.
        """
        if association_id not in self.packs:
            raise association_not_served(association_id)
        if not normalised_national_id(national_id or ""):
            raise national_id_required()
        index = self.keyring.subject_index(association_id, national_id)

        def request() -> str:
            subject = self._subject(association_id, index) or Subject(
                association_id=association_id, subject_index=index
            )
            erasure_id = subject.request_erasure(
                erasure_id=uuid4(),
                reason_code=REQUESTED,
                reason=reason,
                legal_basis=legal_basis,
                actor=actor,
                requested_at=self.clock.now(),
            )
            self.save(subject)
            return erasure_id

        erasure_id = self.retrying(request, "the erasure request")
        return self.complete_erasure(subject_id(association_id, index), erasure_id)

    def complete_erasure(self, subject: UUID, erasure_id: str) -> dict[str, Any]:
        """Destroys the subject's keys and records it; safe to run again."""
        found: Subject = self.repository.get(subject)
        erasure = found.erasures.get(erasure_id)
        if erasure is None or not erasure.completed:
            # Not after it completed: the person may have applied again since, with a
            # new key that this erasure must not destroy.
            self.keyring.destroy(found.subject_index, erasure_id)
        key_ids = [
            record.key_id
            for record in self.keyring.records(subject_index=found.subject_index)
            if record.erasure_id == erasure_id
        ]

        def record() -> Subject:
            current: Subject = self.repository.get(subject)
            current.record_keys_destroyed(
                event_id=uuid4(),
                erasure_id=erasure_id,
                key_ids=key_ids,
                destroyed_at=self.clock.now(),
            )
            self.save(current)
            return current

        done = self.retrying(record, "the destruction of the keys")
        erased = [done.cases[c].case_ref for c in done.cases if done.cases[c].erased]
        return {
            "erasure_id": erasure_id,
            "association_id": done.association_id,
            "status": "completed",
            "key_ids": sorted(key_ids),
            "case_refs": sorted(erased),
        }

    def erase_for_retention(self, subject: UUID) -> str | None:
        """Erases the subject when the retention of their pack has passed; the erasure's id."""

        def request() -> str | None:
            found: Subject = self.repository.get(subject)
            erasure_id = uuid4()
            due = found.erase_for_retention(
                erasure_id=erasure_id,
                now=self.clock.now(),
                retention_days=self.retention_days(found.association_id),
            )
            if not due:
                return None
            self.save(found)
            return str(erasure_id)

        erasure_id = self.retrying(request, "the retention erasure")
        if erasure_id is not None:
            self.complete_erasure(subject, erasure_id)
        return erasure_id

    def place_hold(
        self, association_id: str, case_id: UUID, *, reason: str, actor: dict[str, Any]
    ) -> dict[str, Any]:
        """Keeps the case's subject (or subjects) from erasure until released."""

        def place() -> dict[str, Any]:
            subjects = self._subjects_of_case(association_id, case_id)
            for subject in subjects:
                subject.place_hold(
                    case_id=case_id, reason=reason, actor=actor, placed_at=self.clock.now()
                )
            self.save(*subjects)
            return _case_summary(subjects[-1], case_id)

        return self.retrying(place, "the legal hold")

    def release_hold(
        self, association_id: str, case_id: UUID, *, reason: str, actor: dict[str, Any]
    ) -> dict[str, Any]:
        def release() -> dict[str, Any]:
            subjects = self._subjects_of_case(association_id, case_id)
            for subject in subjects:
                subject.release_hold(
                    case_id=case_id, reason=reason, actor=actor, released_at=self.clock.now()
                )
            self.save(*subjects)
            return _case_summary(subjects[-1], case_id)

        return self.retrying(release, "the release of the legal hold")

    # -----------------------------------------------------------------------------

    def _subject(self, association_id: str, index: str) -> Subject | None:
        try:
            return self.repository.get(subject_id(association_id, index))
        except AggregateNotFoundError:
            return None

    def _link(self, case_id: UUID) -> CaseLink | None:
        try:
            return self.repository.get(case_id)
        except AggregateNotFoundError:
            return None

    def _subjects_of_case(self, association_id: str, case_id: UUID) -> list[Subject]:
        """The subjects of a case of the association (one, unless a correction changed
        the applicant's national id); 404 for a case of another association."""
        link = self._link(case_id)
        if not isinstance(link, CaseLink) or link.association_id != association_id:
            raise case_not_found(case_id)
        return [self.repository.get(UUID(subject)) for subject in link.subject_ids]


def _case_summary(subject: Subject, case_id: UUID) -> dict[str, Any]:
    case = subject.case(case_id)
    hold = case.hold
    return {
        "case_id": case.case_id,
        "case_ref": case.case_ref,
        "association_id": subject.association_id,
        "held": hold is not None,
        "hold_reason": hold["reason"] if hold else None,
    }
