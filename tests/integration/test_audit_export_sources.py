"""The access export beyond the four services' stores (audit.export_sources): the
person's events on the KHIDMA stream, opened; the privacy service's records about
them; a staff member's identity account, and for an applicant, that identity holds
nothing on them.

On the histories of tests.integration.test_audit_personal (Fatimah's approved case,
Khalid's rejected one, sealed, in the stores and on a NATS server of the test's own).
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from audit.api import create_app
from audit.cli import main as audit_main
from audit.export import render_export_html, subject_export
from audit.settings import AuditSettings
from audit.stores import store_env
from services.identity.domain import User
from services.privacy.domain import Subject
from shared.events import Actor, PersonalDataErased, PersonalDataErasedPayload
from shared.roles import PRIVACY_OFFICER
from shared.store import ServiceApplication, open_application
from tests.auth import as_role
from tests.integration.test_audit_personal import (  # noqa: F401 (the fixture)
    FATIMAH,
    KHALID,
    _publish,
    erase,
    world,
)
from tests.unit.test_audit_compliance import T0

pytestmark = pytest.mark.integration

HOLD_REASON = "قضية منظورة أمام لجنة المراجعة HOLD-77"
ERASURE_REASON = "طلبت صاحبة البيانات المحو ERASE-42"
PASSWORD_HASH = "$argon2id$v=19$m=65536,t=3,p=4$SECRET-HASH-NEVER-SHOWN"


def export_json(settings: AuditSettings, *extra: str) -> dict[str, Any]:
    args = ["--data-dir", str(settings.data_dir), *extra]
    out = settings.data_dir.parent / f"export-{uuid4().hex[:6]}.json"
    assert audit_main([*args, "export", "--association", "sidr", "--national-id",
                       FATIMAH["national_id"], "--out", str(out)]) == 0
    return dict(json.loads(out.read_text(encoding="utf-8")))


def stream_args(settings: AuditSettings) -> list[str]:
    return ["--nats-url", str(settings.nats_url)]


# The stream -------------------------------------------------------------------------


def test_the_export_holds_the_persons_events_on_the_stream_opened(world: dict[str, Any]) -> None:
    settings = world["settings"]
    document = export_json(settings, *stream_args(settings))
    assert document["stream"]["read"] is True
    [case] = document["cases"]
    published = [e["event"] for e in case["stream"]]
    assert published[0] == "RequestReceived" and "CommitteeDecided" in published
    [request] = [e for e in case["stream"] if e["event"] == "RequestReceived"]
    assert request["data"]["applicant"]["name"] == FATIMAH["name"]  # opened, as the stores'
    text = json.dumps(document, ensure_ascii=False)
    assert KHALID["name"] not in text and "SDR-1448-000002" not in text

    erase(world, world["fatimah"])
    document = export_json(settings, *stream_args(settings))
    [case] = document["cases"]
    [request] = [e for e in case["stream"] if e["event"] == "RequestReceived"]
    assert request["data"]["applicant"]["ar"] == "مُحيت" and request["erased"] is True
    assert FATIMAH["name"] not in json.dumps(document, ensure_ascii=False)


def test_the_erasure_of_the_persons_keys_on_the_stream_is_in_the_export(world: dict[str, Any]) -> None:
    settings = world["settings"]
    fatimah, khalid = world["fatimah"], world["khalid"]

    def erased(key_id: str) -> PersonalDataErased:
        erasure_id = uuid4()
        return PersonalDataErased(
            event_id=uuid4(), occurred_at=T0 + timedelta(days=40), association_id="sidr",
            case_id=erasure_id, case_ref=f"ERASURE-{erasure_id.hex[:8]}", correlation_id=erasure_id,
            causation_id=None, actor=Actor(kind="system", id="privacy"),
            payload=PersonalDataErasedPayload(erasure_id=erasure_id, reason_code="request",
                                              key_ids=[key_id]))

    class Published:
        def __init__(self, event: PersonalDataErased):
            self.published = [event]

    ours, theirs = erased(fatimah.key_id), erased(khalid.key_id)
    asyncio.run(_publish(str(settings.nats_url), [Published(ours), Published(theirs)]))  # type: ignore[list-item]
    document = export_json(settings, *stream_args(settings))
    assert [e["data"]["erasure_id"] for e in document["stream"]["events"]] == [str(ours.payload.erasure_id)]


def test_a_case_only_on_the_stream_is_found_by_the_blind_index_it_carries(
    world: dict[str, Any],
) -> None:
    """The stores may not hold a case the stream still does (a store restored from an
    older backup): the stream's RequestReceived names the person by blind index."""
    settings = world["settings"]
    for service in ("intake", "verification", "committee", "surveys"):
        settings.sqlite_path(service).unlink()
    document = export_json(settings, *stream_args(settings))
    [case] = document["cases"]
    assert case["case_ref"] == "SDR-1448-000001" and case["events"] == []
    assert {e["event"] for e in case["stream"]} >= {"RequestReceived", "CommitteeDecided"}


def test_without_the_stream_the_export_says_it_was_not_read(world: dict[str, Any]) -> None:
    document = export_json(world["settings"])
    assert document["stream"]["read"] is False
    assert "KHIDMA_NATS_URL" in document["stream"]["note"]["en"]
    assert document["cases"][0]["stream"] == []


# The privacy service's records --------------------------------------------------------


def record_privacy(settings: AuditSettings, world: dict[str, Any]) -> None:
    """The privacy service's store: Fatimah's case held, released, her erasure asked;
    Khalid's case opened."""
    app = open_application(ServiceApplication, {**store_env("privacy", settings), "CREATE_TABLE": "y"})
    officer = {"kind": "officer", "id": "privacy-1", "role": PRIVACY_OFFICER}
    try:
        first, second = world["histories"]
        fatimah = Subject(association_id="sidr", subject_index=world["fatimah"].index)
        fatimah.open_case(case_id=first.case_id, case_ref=first.ref,
                          personal_key=world["fatimah"].key_id, opened_at=T0)
        fatimah.place_hold(case_id=first.case_id, reason=HOLD_REASON, actor=officer, placed_at=T0)
        fatimah.release_hold(case_id=first.case_id, reason="انتهت المراجعة", actor=officer,
                             released_at=T0 + timedelta(days=1))
        fatimah.request_erasure(erasure_id=uuid4(), reason_code="request", reason=ERASURE_REASON,
                                legal_basis="PDPL art. 18", actor=officer,
                                requested_at=T0 + timedelta(days=2))
        khalid = Subject(association_id="sidr", subject_index=world["khalid"].index)
        khalid.open_case(case_id=second.case_id, case_ref=second.ref,
                         personal_key=world["khalid"].key_id, opened_at=T0)
        app.save(fatimah, khalid)
    finally:
        app.close()


def test_the_export_holds_the_privacy_services_records_about_the_person(world: dict[str, Any]) -> None:
    settings = world["settings"]
    document = export_json(settings)
    assert document["privacy"]["read"] is False  # no privacy store yet: said so
    assert document["privacy"]["note"]["en"].startswith("The privacy service's store was not found")

    record_privacy(settings, world)
    document = export_json(settings)
    privacy = document["privacy"]
    assert privacy["read"] is True
    assert [e["event"] for e in privacy["events"]] == [
        "Subject.Registered", "Subject.CaseOpened", "Subject.HoldPlaced", "Subject.HoldReleased",
        "Subject.ErasureRequested"]
    assert privacy["events"][2]["data"]["reason"] == HOLD_REASON
    assert privacy["events"][4]["data"]["reason"] == ERASURE_REASON
    assert "SDR-1448-000002" not in json.dumps(privacy, ensure_ascii=False)  # Khalid's record


# The identity service ----------------------------------------------------------------


def record_account(settings: AuditSettings) -> None:
    class IdentityStore(ServiceApplication):
        name = "identity"

    app = open_application(IdentityStore, {**store_env("identity", settings), "CREATE_TABLE": "y"})
    try:
        user = User.register(username="fatimah.z", display_name=FATIMAH["name"],
                             password_hash=PASSWORD_HASH, temporary_password=False,
                             registered_by="admin", at=T0)
        user.grant(role="verifier", association_id="sidr", associations=["sidr"], by="admin", at=T0)
        other = User.register(username="omar", display_name="Omar", password_hash=PASSWORD_HASH,
                              temporary_password=False, registered_by="admin", at=T0)
        app.save(user, other)
    finally:
        app.close()


def test_an_applicant_only_is_told_that_identity_holds_nothing_on_them(world: dict[str, Any]) -> None:
    settings = world["settings"]
    record_account(settings)
    identity = export_json(settings)["identity"]
    assert identity["read"] is False and identity["events"] == []
    assert identity["note"]["en"].startswith("The identity service holds nothing on you")
    assert "لا تحفظ خدمة الهوية عنك شيئًا" in identity["note"]["ar"]


def test_a_staff_members_account_is_in_the_export_without_its_password_hash(
    world: dict[str, Any],
) -> None:
    settings = world["settings"]
    record_account(settings)
    identity = _export_with_account(settings, "Fatimah.Z")
    assert identity["read"] is True and identity["account"] == "fatimah.z"
    assert [e["event"] for e in identity["events"]] == ["User.Registered", "User.RoleGranted"]
    assert identity["events"][0]["data"]["display_name"] == FATIMAH["name"]
    assert identity["events"][1]["data"]["role"] == "verifier"
    text = json.dumps(identity, ensure_ascii=False)
    assert "SECRET-HASH" not in text and "password_hash" not in text and "omar" not in text
    # An account that does not exist is said so.
    missing = _export_with_account(settings, "nobody")
    assert missing["events"] == [] and "no account named nobody" in missing["note"]["en"]


def _export_with_account(settings: AuditSettings, username: str) -> dict[str, Any]:
    out = settings.data_dir.parent / f"export-{uuid4().hex[:6]}.json"
    assert audit_main(["--data-dir", str(settings.data_dir), "export", "--association", "sidr",
                       "--national-id", FATIMAH["national_id"], "--username", username,
                       "--out", str(out)]) == 0
    return dict(json.loads(out.read_text(encoding="utf-8"))["identity"])


def test_the_export_route_takes_the_account_and_reads_the_stream(world: dict[str, Any]) -> None:
    settings = world["settings"]
    record_account(settings)
    client = TestClient(create_app(settings))
    body = {"association_id": "sidr", "national_id": FATIMAH["national_id"], "username": "fatimah.z"}
    answer = client.post("/subjects/export", json=body, headers=as_role(PRIVACY_OFFICER, "sidr"))
    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert document["identity"]["account"] == "fatimah.z" and document["identity"]["events"]
    assert document["stream"]["read"] is True and document["cases"][0]["stream"]


def test_the_html_shows_every_source_in_arabic_and_english(world: dict[str, Any]) -> None:
    settings = world["settings"]
    record_privacy(settings, world)
    export = subject_export(settings, "sidr", FATIMAH["national_id"])
    arabic, english = render_export_html(export), render_export_html(export, lang="en")
    for html in (arabic, english):
        for part in ('id="stream"', 'id="privacy"', 'id="identity"', "تدفق الأحداث", "The event stream",
                     HOLD_REASON, "The identity service holds nothing on you", FATIMAH["name"]):
            assert part in html, part
    assert '<html lang="ar" dir="rtl">' in arabic and '<html lang="en" dir="ltr">' in english
    # Each language first in its own version, the other beside it.
    assert arabic.index("الطلبات") < arabic.index("Requests")
    assert english.index("Requests") < english.index("الطلبات")
