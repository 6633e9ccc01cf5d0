"""The data subject's access export (PDPL): everything Khidma holds on one person.

    python -m audit export --association A --national-id N [--username U]
                           [--format html|json] [--out FILE]
    POST /subjects/export {"association_id", "national_id", "username", "format"}
        (audit.api; the national id in the body, never in a URL; role privacy_officer
        of the association)

A person is a data subject within one association. They are found without
comparing national ids in the records: by their keyed blind index
(`keyring.subject_index`), which names their subject keys in the keyring, and by
those keys' ids (`personal_key`) in the events that hold their data; events
recorded before encryption are found by the national id they hold in plain.
Every case one of those events belongs to is theirs, and so is every event of an
aggregate they were found in (their member record): the export gathers the
events of each service's store for those cases and records, opened with the
keyring (a value whose key was destroyed shows "erased" / "مُحيت"). A survey
answer given anonymously is left out: it is not to be joined back to its person.

Beside the four services' stores (audit.export_sources): the copies of the
person's events on the KHIDMA stream, opened the same way (when the audit reads
the stream, `KHIDMA_NATS_URL`; the export says so when it does not), the privacy
service's records about them (their erasure requests and legal holds), and, for a
staff member whose account the officer names (`username`), the identity service's
account: an applicant has none, and the export says that identity holds nothing
on them.

Each export is logged as a read (shared/access_log.py) in the audit's own store,
`data/audit.sqlite` (PostgreSQL: the schema `audit`), naming the subject by
their blind index, never by the national id: `python -m audit access` lists it.

The HTML is rendered from a Jinja2 template with autoescaping, in Arabic (right
to left) with the English beside it; the JSON holds the same document.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from audit.export_sources import (
    Part,
    StreamCopies,
    Subject,
    identity_records,
    privacy_records,
    store_entry,
    stream_copies,
)
from audit.personal import Opener, audit_keyring, is_shown_erased
from audit.replay import StoredRecord, replay_store
from audit.settings import AuditSettings
from audit.stores import SERVICES, own_store_env, store_exists
from shared.dates import both_calendars
from shared.errors import Refused
from shared.personal.keyring import SubjectKeyring, normalised_national_id

SUBJECT_EXPORT = "subject_export"


def needs_master_key(settings: AuditSettings) -> Refused:
    return Refused(
        "export_needs_master_key",
        f"The export opens the person's data with the master key file "
        f"({settings.master_key_path}, KHIDMA_MASTER_KEY_FILE) and the keyring: not found.",
        f"يتطلب التصدير ملف المفتاح الرئيسي ({settings.master_key_path}) وسجل المفاتيح: غير موجودين.",
    )


def subject_of(keyring: SubjectKeyring, association_id: str, national_id: str) -> Subject:
    index = keyring.subject_index(association_id, national_id)
    return Subject(
        association_id=association_id,
        national_id=normalised_national_id(national_id),
        index=index,
        key_ids=frozenset(r.key_id for r in keyring.records(subject_index=index)),
    )


@dataclass
class HeldRecord:
    """One case or record of the person, its events as the services' stores hold
    them and (a case) their copies on the stream."""

    kind: str  # "case" or "record"
    record_id: str
    case_ref: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    stream: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SubjectExport:
    association_id: str
    subject_index: str
    generated_at: datetime
    keys: list[dict[str, Any]]
    cases: list[HeldRecord]
    records: list[HeldRecord]
    # The stream (read or not; the erasures of the person's keys on it), the privacy
    # service's records and the identity service's account (audit.export_sources).
    stream: Part = field(default_factory=lambda: Part(read=False))
    privacy: Part = field(default_factory=lambda: Part(read=False))
    identity: Part = field(default_factory=lambda: Part(read=False))

    @property
    def erased(self) -> bool:
        return any(k["destroyed_at"] for k in self.keys)

    def to_dict(self) -> dict[str, Any]:
        def held(item: HeldRecord) -> dict[str, Any]:
            shown = {"id": item.record_id, "case_ref": item.case_ref, "events": item.events}
            return {**shown, "stream": item.stream} if item.kind == "case" else shown

        return {
            "association_id": self.association_id,
            "subject_index": self.subject_index,
            "generated_at": both_calendars(self.generated_at),
            "erased": self.erased,
            "keys": self.keys,
            "cases": [held(c) for c in self.cases],
            "records": [held(r) for r in self.records],
            "stream": self.stream.to_dict(),
            "privacy": self.privacy.to_dict(),
            "identity": self.identity.to_dict(),
        }


def _is_anonymous_answer(record: StoredRecord) -> bool:
    return record.state.get("anonymous") is True


def _find(
    subject: Subject, settings: AuditSettings, services: Iterable[str]
) -> tuple[set[str], set[str]]:
    """The person's case ids and the ids of the other aggregates they were found in."""
    cases: set[str] = set()
    aggregates: set[str] = set()
    for service in services:
        for record in replay_store(service, settings):
            if _is_anonymous_answer(record) or not subject.holds(record):
                continue
            if record.case_id:
                cases.add(record.case_id)
            else:
                aggregates.add(record.originator_id)
    return cases, aggregates


def subject_export(
    settings: AuditSettings,
    association_id: str,
    national_id: str,
    *,
    username: str | None = None,
    now: datetime | None = None,
) -> SubjectExport:
    """Everything Khidma holds on one person, opened (see the module's doc):
    `username` names their staff account, if they have one."""
    keyring = audit_keyring(settings)
    if keyring is None:
        raise needs_master_key(settings)
    subject = subject_of(keyring, association_id, national_id)
    services = [s for s in SERVICES if store_exists(s, settings)]
    cases, aggregates = _find(subject, settings, services)
    opener = Opener(keyring)
    held = _held_in_stores(settings, services, cases, aggregates, opener)
    copies = stream_copies(settings, subject, cases, opener)
    _add_stream_copies(held, copies)
    for item in held.values():
        item.events.sort(key=lambda e: e["when"].get("at") or e["when"]["gregorian"])
    return SubjectExport(
        association_id=association_id,
        subject_index=subject.index,
        generated_at=now or datetime.now(UTC),
        keys=_keys(keyring, subject),
        cases=sorted((h for h in held.values() if h.kind == "case"), key=lambda h: h.case_ref),
        records=[h for h in held.values() if h.kind == "record"],
        stream=copies.part,
        privacy=privacy_records(settings, subject, opener),
        identity=identity_records(settings, username, opener),
    )


def _held_in_stores(
    settings: AuditSettings,
    services: list[str],
    cases: set[str],
    aggregates: set[str],
    opener: Opener,
) -> dict[str, HeldRecord]:
    """The person's cases and records, each with its events from every store."""
    held: dict[str, HeldRecord] = {}
    for service in services:
        for record in replay_store(service, settings):
            if _is_anonymous_answer(record):
                continue
            key = record.case_id if record.case_id in cases else None
            key = key or (record.originator_id if record.originator_id in aggregates else None)
            if key is None:
                continue
            item = held.setdefault(key, HeldRecord("case" if key in cases else "record", key))
            item.case_ref = item.case_ref or str(record.state.get("case_ref") or "")
            item.events.append(store_entry(record, opener))
    return held


def _add_stream_copies(held: dict[str, HeldRecord], copies: StreamCopies) -> None:
    """Each case's events on the stream beside its stores' (a case found only on the
    stream is a case of the export too)."""
    for case_id, entries in copies.by_case.items():
        item = held.setdefault(case_id, HeldRecord("case", case_id, copies.case_refs[case_id]))
        item.stream.extend(entries)


def _keys(keyring: SubjectKeyring, subject: Subject) -> list[dict[str, Any]]:
    return [
        {
            "key_id": r.key_id,
            "created_at": r.created_at,
            "destroyed_at": r.destroyed_at,
            "erasure_id": r.erasure_id,
        }
        for r in keyring.records(subject_index=subject.index)
    ]


def render_export_html(export: SubjectExport, lang: str = "ar") -> str:
    """The export as one HTML file: Arabic, right to left, with the English beside
    it; or (`lang` "en") English, left to right, with the Arabic beside it."""
    if lang not in ("ar", "en"):
        raise ValueError(f"lang: ar or en, not {lang!r}")
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    environment = Environment(
        loader=PackageLoader("audit.report", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template("subject-export.html.j2").render(
        export=export.to_dict(), is_erased=is_shown_erased, lang=lang
    )


# --- the access log of the exports ----------------------------------------------------


def log_export(settings: AuditSettings, actor: dict[str, Any], export: SubjectExport) -> None:
    """One read of the person's data, in the audit's own store (shared/access_log.py)."""
    from shared.store import ServiceApplication, open_application

    class AuditLog(ServiceApplication):
        name = "audit"

    app = open_application(AuditLog, own_store_env(settings))
    try:
        app.record_access(actor, export.association_id, SUBJECT_EXPORT, export.subject_index)
    finally:
        app.close()
