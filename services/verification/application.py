"""Verification's application: each method loads, calls one command, saves, returns plain values.

Personal data (the request as received, a member's national id and name) is kept
sealed under its data subject's key by the store's mapper (shared/personal): the
application gives each event the subject's key id, finds members by the blind
index of their national id, and shows an erased subject's data as "erased".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypedDict, cast
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from services.verification.domain import NOT_A_MEMBER, Standing, Verification
from services.verification.members import (
    InvalidRegistry,
    Member,
    RegistryRow,
    RowProblem,
    legacy_member_id,
    member_id,
    read_registry,
    read_registry_row,
)
from shared.access_log import CASE_FILE, MEMBER_RECORD
from shared.dates import both_calendars, local_day
from shared.errors import NotFound, association_not_served
from shared.events import RequestReceived
from shared.personal.mapper import is_erased_value
from shared.personal.requests import OpenedRequest, open_request
from shared.personal.sealing import ERASED_TEXT
from shared.policy import PolicyPack
from shared.store import ServiceApplication

log = logging.getLogger(__name__)


class RevisionToCheck(TypedDict):
    """A revision of the request as a round of its verification checks it."""

    request_event_id: UUID
    revision: int
    service_code: str
    channel: str
    submitted_at: datetime
    applicant: Mapping[str, Any]
    attestation: Mapping[str, Any] | None
    fields: Mapping[str, Any]
    documents: Sequence[Mapping[str, Any]]
    pack: PolicyPack | None
    standing: Standing
    personal_key: str


class SubjectKeys(Protocol):
    """What verification asks of the subject keyring (shared/personal/keyring.py)."""

    def subject_index(self, association_id: str, national_id: str) -> str: ...

    def key_for(self, association_id: str, national_id: str) -> str: ...


class VerificationApplication(ServiceApplication):
    name = "verification"

    @property
    def subject_keys(self) -> SubjectKeys:
        """The keyring: the blind index of a national id and a data subject's key."""
        if self.sealer is None:
            raise RuntimeError(
                "verification keeps personal data sealed: it needs the subject keyring"
            )
        return cast(SubjectKeys, self.sealer.keys)

    # What intake tells verification ----------------------------------------------

    def on_request_received(self, event: RequestReceived, processing: ProcessingEvent) -> None:
        """Opens the case's verification, or a new round for a newer revision of the request.

        The same revision arriving again, or an older one, changes nothing.
        """
        payload = event.payload
        request = open_request(payload, self.sealer)
        if request.applicant is None:
            log.warning(
                "the request's personal data was erased before it was verified; ignoring it",
                extra={"case_id": str(event.case_id), "event_id": str(event.event_id)},
            )
            return
        data = self._revision_to_check(event, request)
        if event.case_id in self.repository:
            verification = self._get_verification(event.case_id)
            if not verification.revise(**data):
                log.info(
                    "revision %s of the request is not newer than %s; ignoring it",
                    payload.revision,
                    verification.revision,
                    extra={"case_id": str(event.case_id), "event_id": str(event.event_id)},
                )
                return
        else:
            verification = Verification.open(
                case_id=event.case_id,
                association_id=event.association_id,
                case_ref=event.case_ref,
                correlation_id=event.correlation_id,
                **data,
            )
        processing.collect_events(verification)

    def _revision_to_check(self, event: RequestReceived, request: OpenedRequest) -> RevisionToCheck:
        """The revision as its checks read it, with the id of the applicant's key: the
        one it was sealed with on the stream, or (a request published before sealing)
        the applicant's key in the keyring, made on first use."""
        payload = event.payload
        assert request.applicant is not None
        national_id = request.applicant.national_id.strip()
        # Validity is judged at the applicant's submission (of this revision), never at "now".
        submitted_at = payload.submitted_at or event.occurred_at
        return {
            "request_event_id": event.event_id,
            "revision": payload.revision,
            "service_code": payload.service_code,
            "channel": payload.channel,
            "submitted_at": submitted_at,
            "applicant": request.applicant.model_dump(mode="json"),
            "attestation": (
                request.attestation.model_dump(mode="json") if request.attestation else None
            ),
            "fields": request.fields,
            "documents": [document.model_dump(mode="json") for document in request.documents],
            # The version the request names governs its checks, whatever is in force now.
            "pack": self.packs.governing(
                event.association_id, payload.policy_version, submitted_at
            ),
            "standing": self._standing(event.association_id, national_id, submitted_at),
            "personal_key": payload.personal_key
            or self.subject_keys.key_for(event.association_id, national_id),
        }

    def _standing(self, association_id: str, national_id: str, moment: datetime) -> Standing:
        member = self._find_member(association_id, national_id)
        if member is None:
            return NOT_A_MEMBER
        return member.standing_on(local_day(moment))

    def _find_member(self, association_id: str, national_id: str) -> Member | None:
        """The member, by the blind index of their national id; one registered before
        personal data was sealed, by the id it was given then (members.py)."""
        index = self.subject_keys.subject_index(association_id, national_id)
        for candidate in (
            member_id(association_id, index),
            legacy_member_id(association_id, national_id),
        ):
            try:
                found: Aggregate = self.repository.get(candidate)
            except AggregateNotFoundError:
                continue
            if isinstance(found, Member):
                return found
        return None

    # The verification officer ------------------------------------------------------

    def confirm(
        self,
        case_id: UUID,
        *,
        officer: str,
        actor: Mapping[str, Any] | None = None,
        outcome: str | None = None,
        reason: str | None = None,
        revision: int | None = None,
    ) -> str:
        """Confirms (or overrides, with a reason) the current round's suggested outcome.

        `officer` (the user name) and `actor` (the recorded principal) come from the
        caller's token. `revision` is the round the officer reviewed (refused if a
        newer one arrived). Returns the outcome.
        """
        verification = self._get_verification(case_id)
        verification.confirm(
            event_id=uuid4(),
            officer=officer,
            actor=actor,
            outcome=outcome,
            reason=reason,
            revision=revision,
            confirmed_at=self.clock.now(),
        )
        try:
            self.save(verification)
        except IntegrityError:
            # Another instance recorded a confirmation first: confirming again
            # is refused with the usual message rather than a server error.
            self._get_verification(case_id).confirm(
                event_id=uuid4(),
                officer=officer,
                actor=actor,
                outcome=outcome,
                reason=reason,
                revision=revision,
                confirmed_at=self.clock.now(),
            )
            raise
        assert verification.outcome is not None
        return verification.outcome

    def association_of(self, case_id: UUID) -> str:
        """The association a case's verification belongs to (404 when there is none)."""
        return self._get_verification(case_id).association_id

    def case_file(self, case_id: UUID) -> dict[str, Any]:
        """The request as received beside what the automatic checks found of it.

        One entry per revision, oldest first: the applicant's data, fields and
        documents as that revision brought them, the checks run on them and how
        the round was confirmed. A revision received before the data was kept
        shows `received: null` (its checks still stand).
        """
        verification = self._get_verification(case_id)
        rounds = [*verification.earlier_rounds, verification.current_round()]
        return {
            "case_id": str(verification.id),
            "case_ref": verification.case_ref,
            "association_id": verification.association_id,
            "status": verification.status,
            "revision": verification.revision,
            "revisions": [
                {
                    **_plain_round(round_),
                    "received": _shown(verification.received.get(round_["revision"])),
                }
                for round_ in rounds
            ],
        }

    def case_file_read_by(self, actor: dict[str, str], case_id: UUID) -> dict[str, Any]:
        """The case file as `case_file` shows it, the read logged (who, when, which case)."""
        shown = self.case_file(case_id)
        self.record_access(actor, shown["association_id"], CASE_FILE, str(case_id))
        return shown

    def verification_status(self, case_id: UUID) -> dict[str, Any]:
        verification = self._get_verification(case_id)
        return {
            "case_id": str(verification.id),
            "case_ref": verification.case_ref,
            "status": verification.status,
            "suggested_outcome": verification.suggested_outcome,
            "outcome": verification.outcome,
            "corrections": verification.corrections,
            "ineligible_rule": verification.ineligible_rule,
            "ineligible_reason": verification.ineligible_reason,
            "revision": verification.revision,
            "earlier_rounds": [_plain_round(round_) for round_ in verification.earlier_rounds],
            "version": verification.version,
        }

    # The member registry -----------------------------------------------------------

    def import_members(
        self, association_id: str, text: str, actor: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Registers or updates the members of a registry CSV; bad lines are reported, not kept.

        `actor` is the administrator who imported it (the recorded principal)."""
        self._pack(association_id)
        rows, problems = read_registry(text, today=local_day(self.clock.now()))
        counts = self._apply_registry_rows(association_id, rows, actor)
        return {
            "association_id": association_id,
            **counts,
            "errors": [problem.as_dict() for problem in problems],
        }

    def register_member(
        self,
        association_id: str,
        national_id: str,
        *,
        name: str,
        joined_on: str,
        status: str,
        status_since: str,
        actor: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One member's registry entry (registered, or standing changed); returns the member.

        `actor` is the administrator who changed it (the recorded principal)."""
        self._pack(association_id)
        row = read_registry_row(
            1,
            [national_id, name, joined_on, status, status_since],
            today=local_day(self.clock.now()),
        )
        if isinstance(row, RowProblem):
            raise InvalidRegistry("invalid_member", row.en, row.ar)
        self._apply_registry_rows(association_id, [row], actor)
        return self.member(association_id, national_id)

    def _apply_registry_rows(
        self,
        association_id: str,
        rows: list[RegistryRow],
        actor: dict[str, Any] | None = None,
    ) -> dict[str, int]:
        imported = updated = unchanged = 0
        changed: list[Member] = []
        keys = self.subject_keys
        for row in rows:
            member = self._find_member(association_id, row.national_id)
            if member is None:
                changed.append(
                    Member.register(
                        association_id=association_id,
                        national_id=row.national_id,
                        subject_index=keys.subject_index(association_id, row.national_id),
                        personal_key=keys.key_for(association_id, row.national_id),
                        name=row.name,
                        joined_on=row.joined_on,
                        status=row.status,
                        status_since=row.status_since,
                        actor=actor,
                    )
                )
                imported += 1
                continue
            # A key only when a new name is to be sealed: an unchanged import makes none.
            renamed = row.name != member.name
            if member.apply_registry_row(
                name=row.name,
                status=row.status,
                status_since=row.status_since,
                actor=actor,
                personal_key=keys.key_for(association_id, row.national_id) if renamed else None,
            ):
                changed.append(member)
                updated += 1
            else:
                unchanged += 1
        if changed:
            # One transaction: an import is recorded whole or not at all.
            self.save(*changed)
        return {"imported": imported, "updated": updated, "unchanged": unchanged}

    def member_read_by(
        self, actor: dict[str, str], association_id: str, national_id: str
    ) -> dict[str, Any]:
        """A member's record as `member` shows it, the read logged (who, when, which
        member: by the record's id, never the national id)."""
        shown = self.member(association_id, national_id)
        self.record_access(actor, association_id, MEMBER_RECORD, shown["member_id"])
        return shown

    def member(self, association_id: str, national_id: str) -> dict[str, Any]:
        """A member's standing and its history, every date in both calendars; the
        national id and name "erased" once the member's key was destroyed."""
        self._pack(association_id)
        member = self._find_member(association_id, national_id)
        if member is None:
            raise NotFound(
                "member_not_found",
                f"No member with this ID number is registered for {association_id}.",
                f"لا يوجد عضو مسجل بهذا الرقم في {association_id}.",
            )
        history = sorted(enumerate(member.history), key=lambda item: (item[1][1], item[0]))
        return {
            "member_id": str(member.id),
            "association_id": member.association_id,
            "national_id": _shown(member.national_id),
            "name": _shown(member.name),
            "joined_on": member.joined_on.isoformat(),
            "joined_on_display": both_calendars(member.joined_on),
            "status": member.status,
            "status_since": member.status_since.isoformat(),
            "status_since_display": both_calendars(member.status_since),
            "history": [
                {
                    "status": status,
                    "since": since.isoformat(),
                    "since_display": both_calendars(since),
                }
                for _, (status, since) in history
            ],
        }

    # -----------------------------------------------------------------------

    def _pack(self, association_id: str) -> PolicyPack:
        pack = self.packs.get(association_id)
        if pack is None:
            raise association_not_served(association_id)
        return pack

    def _get_verification(self, case_id: UUID) -> Verification:
        try:
            found: Aggregate | None = self.repository.get(case_id)
        except AggregateNotFoundError:
            found = None
        if isinstance(found, Verification):
            return found
        raise NotFound(
            "verification_not_found",
            f"No verification for request {case_id} (it may take a moment to appear).",
            f"لا يوجد تحقق للطلب {case_id} (قد يستغرق ظهوره لحظات).",
        )


def _shown(value: Any) -> Any:
    """A personal value as a person reads it: itself, or the "erased" marker."""
    return dict(ERASED_TEXT) if is_erased_value(value) else value


# The officer's words in a round, sealed at rest: shown opened, or "erased".
OFFICERS_WORDS = ("reason", "override_reason")


def _plain_round(round_: dict[str, Any]) -> dict[str, Any]:
    """A round of the verification as JSON values, its dates in both calendars."""
    plain = {key: str(value) if isinstance(value, UUID) else value for key, value in round_.items()}
    for key in OFFICERS_WORDS:
        plain[key] = _shown(round_.get(key))
    for key in ("submitted_at", "confirmed_at"):
        moment = round_.get(key)
        plain[key] = moment.isoformat() if moment else None
        plain[f"{key}_display"] = both_calendars(moment) if moment else None
    return plain
