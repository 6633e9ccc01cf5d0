"""What the access export reads beside the four services' stores (audit.export).

- **The stream.** The copies of the person's events on the KHIDMA stream, which is
  kept for the audit: every event of one of their cases (found in the stores, or
  on the stream by the key id or blind index a request carries), and the erasures
  of their keys (`PersonalDataErased`). Opened with the keyring, as the stores'
  events are. Read when the audit has the stream (`KHIDMA_NATS_URL`); otherwise
  the export says that it was not read.
- **The privacy service's store.** What it records about the person: their cases
  (by blind index), erasure requests with their reasons and legal bases, legal
  holds and their release, and the destruction of their keys.
- **The identity service's store.** A staff member's account (their user name,
  display name, roles per association and when, disabling), when the officer
  names the person's account (`username`); its password hashes are never shown.
  An applicant has no account there, and the identity store holds no national id:
  without a user name the export says that identity holds nothing on them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from audit.personal import Opener, is_shown_erased
from audit.replay import StoredRecord, StreamRecord, StreamUnavailable, replay_store, replay_stream
from audit.settings import AuditSettings
from audit.stores import IDENTITY, PRIVACY, store_exists
from shared.dates import both_calendars
from shared.events import PRODUCERS, IntegrationEvent
from shared.personal.keyring import normalised_national_id

# Internal bookkeeping of an event, not data held on the person; and secrets.
HIDDEN_FIELDS = frozenset(
    {"timestamp", "originator_topic", "personal_key", "subject_index", "password_hash"}
)


@dataclass
class Subject:
    """Who is sought: the association, the blind index and the ids of their keys."""

    association_id: str
    national_id: str
    index: str
    key_ids: frozenset[str]

    def holds(self, record: StoredRecord) -> bool:
        """True when the stored event holds this person's data (audit.export's doc)."""
        state = record.state
        if state.get("personal_key") in self.key_ids or state.get("subject_index") == self.index:
            return True
        association = state.get("association_id")
        if association is not None and association != self.association_id:
            return False
        return association == self.association_id and _names_national_id(state, self.national_id)


def _names_national_id(value: Any, national_id: str) -> bool:
    """A plain (pre-encryption) `national_id` anywhere in the value is the person's."""
    if isinstance(value, dict):
        found = value.get("national_id")
        if isinstance(found, str) and normalised_national_id(found) == national_id:
            return True
        return any(_names_national_id(item, national_id) for item in value.values())
    if isinstance(value, list):
        return any(_names_national_id(item, national_id) for item in value)
    return False


@dataclass
class Part:
    """One source of the export: whether it was read, what it holds, and a sentence
    for the reader when it holds nothing or could not be read."""

    read: bool
    events: list[dict[str, Any]] = field(default_factory=list)
    note: dict[str, str] | None = None
    account: str | None = None  # the identity service's: the account named

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "events": self.events,
            "note": self.note,
            "account": self.account,
        }


def store_entry(record: StoredRecord, opener: Opener) -> dict[str, Any]:
    """One stored event as the export shows it: when, where, what, its data opened."""
    from audit.timeline import entry_from_store

    entry = entry_from_store(record)
    moment = entry.occurred_at if entry else recorded_at(record)
    return _shown(record.service, f"{record.aggregate}.{record.name}", moment, record.state, opener)


def _shown(
    service: str, event: str, moment: datetime, data: dict[str, Any], opener: Opener
) -> dict[str, Any]:
    visible = {k: v for k, v in data.items() if k not in HIDDEN_FIELDS}
    shown = opener.shown(jsonable(visible))
    return {
        "service": service,
        "event": event,
        "when": both_calendars(moment),
        "erased": any(is_shown_erased(v) for v in shown.values()),
        "data": shown,
    }


def recorded_at(record: StoredRecord) -> datetime:
    value = record.state.get("timestamp")
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value)) if value else datetime.fromtimestamp(0, UTC)


def jsonable(value: Any) -> Any:
    from audit.timeline import _json_default

    return json.loads(json.dumps(value, default=_json_default, ensure_ascii=False))


# --- the stream -----------------------------------------------------------------------


def stream_entry(record: StreamRecord, opener: Opener) -> dict[str, Any]:
    event = record.event
    assert event is not None
    payload = json.loads(event.payload.model_dump_json())
    entry = _shown(
        f"stream #{record.sequence}",
        event.event_type,
        event.occurred_at,
        payload,
        opener,
    )
    return {**entry, "produced_by": PRODUCERS.get(event.event_type), "case_ref": event.case_ref}


def _names_subject(event: IntegrationEvent, subject: Subject) -> bool:
    """True for an event that carries the person's key id or blind index, or (sent
    before encryption) their national id in plain."""
    payload = event.payload
    if (
        getattr(payload, "subject_index", None) == subject.index
        or getattr(payload, "personal_key", None) in subject.key_ids
    ):
        return True
    applicant = getattr(payload, "applicant", None)
    national_id = getattr(applicant, "national_id", None)
    return national_id is not None and normalised_national_id(national_id) == subject.national_id


def _erases_subject(event: IntegrationEvent, key_ids: frozenset[str], cases: set[str]) -> bool:
    if event.event_type != "PersonalDataErased":
        return False
    payload: Any = event.payload
    return bool(set(payload.key_ids) & key_ids) or bool({str(c) for c in payload.case_ids} & cases)


@dataclass
class StreamCopies:
    """The person's events on the stream, by case id, and the erasures of their keys."""

    part: Part
    by_case: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    case_refs: dict[str, str] = field(default_factory=dict)


def stream_copies(
    settings: AuditSettings, subject: Subject, cases: set[str], opener: Opener
) -> StreamCopies:
    """Reads the stream twice: the person's cases it names, then their events."""
    if not settings.nats_url:
        return StreamCopies(Part(read=False, note=STREAM_NOT_READ))
    try:
        cases = cases | _cases_on_stream(settings, subject)
        copies = StreamCopies(Part(read=True))
        for record in _stream(settings):
            event = record.event
            if event is None or event.association_id != subject.association_id:
                continue
            if _erases_subject(event, subject.key_ids, cases):
                copies.part.events.append(stream_entry(record, opener))
            elif str(event.case_id) in cases:
                copies.by_case.setdefault(str(event.case_id), []).append(
                    stream_entry(record, opener)
                )
                copies.case_refs[str(event.case_id)] = event.case_ref
    except StreamUnavailable as unavailable:
        return StreamCopies(Part(read=False, note=unavailable.message))
    return copies


def _stream(settings: AuditSettings) -> Any:
    assert settings.nats_url
    return replay_stream(
        settings.nats_url, user=settings.nats_user, password=settings.nats_password
    )


def _cases_on_stream(settings: AuditSettings, subject: Subject) -> set[str]:
    return {
        str(record.event.case_id)
        for record in _stream(settings)
        if record.event is not None
        and record.event.association_id == subject.association_id
        and _names_subject(record.event, subject)
    }


STREAM_NOT_READ = {
    "ar": "لم يُقرأ تدفق الأحداث (KHIDMA_NATS_URL غير مضبوط): نُسخ أحداثك عليه غير مدرجة.",
    "en": "The event stream was not read (KHIDMA_NATS_URL is not set): the copies of "
    "your events on it are not included.",
}


# --- the privacy service ----------------------------------------------------------------


def privacy_records(settings: AuditSettings, subject: Subject, opener: Opener) -> Part:
    """The privacy service's record of the person: their cases, erasure requests,
    legal holds, the destruction of their keys."""
    from services.privacy.domain import subject_id

    if not store_exists(PRIVACY, settings):
        return Part(read=False, note=PRIVACY_NOT_FOUND)
    wanted = str(subject_id(subject.association_id, subject.index))
    events = [
        store_entry(record, opener)
        for record in replay_store(PRIVACY, settings)
        if record.originator_id == wanted
    ]
    return Part(read=True, events=events, note=None if events else PRIVACY_NOTHING)


PRIVACY_NOT_FOUND = {
    "ar": "لم يوجد مخزن خدمة الخصوصية: لا سجلات لطلبات المحو أو الحجز.",
    "en": "The privacy service's store was not found: no erasure or hold records.",
}
PRIVACY_NOTHING = {
    "ar": "لا تحفظ خدمة الخصوصية عنك شيئًا: لا طلب محو ولا حجز.",
    "en": "The privacy service holds nothing on you: no erasure request, no hold.",
}


# --- the identity service -------------------------------------------------------------


def identity_records(settings: AuditSettings, username: str | None, opener: Opener) -> Part:
    """A staff member's account, when the officer names it (see the module's doc)."""
    if username is None:
        return Part(read=False, note=IDENTITY_APPLICANT_ONLY)
    from services.identity.domain import normalise_username, user_id

    account = normalise_username(username)
    if not store_exists(IDENTITY, settings):
        return Part(read=False, note=IDENTITY_NOT_FOUND, account=account)
    wanted = str(user_id(account))
    events = [
        store_entry(record, opener)
        for record in replay_store(IDENTITY, settings)
        if record.originator_id == wanted
    ]
    note = None if events else _no_account(account)
    return Part(read=True, events=events, note=note, account=account)


IDENTITY_APPLICANT_ONLY = {
    "ar": "لا تحفظ خدمة الهوية عنك شيئًا: لا حساب لك فيها (هي لحسابات الموظفين، "
    "ولا تحفظ رقم هوية أحد).",
    "en": "The identity service holds nothing on you: you have no account there (it "
    "keeps staff accounts, and no one's national id).",
}
IDENTITY_NOT_FOUND = {
    "ar": "لم يوجد مخزن خدمة الهوية: لم يُقرأ الحساب.",
    "en": "The identity service's store was not found: the account was not read.",
}


def _no_account(account: str) -> dict[str, str]:
    return {
        "ar": f"لا يوجد في خدمة الهوية حساب باسم {account}.",
        "en": f"The identity service has no account named {account}.",
    }
