"""Dates beyond the Hijri table (1924-08-01 .. 2077-11-16) as real processes: refused
at the door, and, where an earlier version stored them, shown in Gregorian alone
without stopping a read, a rebuild or the case (decision 28)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from khidma.nats_server import NatsServer
from khidma.processes import ServiceProcess
from services.verification.application import VerificationApplication
from services.verification.main import VerificationSettings
from services.verification.members import Member
from shared.events import Applicant, Attestation, Document
from shared.personal import Sealer
from shared.personal.keyring import open_keyring
from shared.personal.master import MasterKeys
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from shared.store import open_application
from tests import builders
from tests.auth import as_adapter, as_staff
from tests.helpers import stream_messages_sync, wait_for
from tests.integration.test_verification_policy_service import publish, shown

pytestmark = pytest.mark.integration

MEMBER = "1000000008"
NEWCOMER = "2000000006"


def put_member(service: ServiceProcess, national_id: str, **entry: str) -> httpx.Response:
    body = {"name": "Omar", "joined_on": "2019-05-01", "status": "good", "status_since": "2019-05-01"}
    return httpx.put(
        f"{service.url}/members/sidr/{national_id}",
        json={**body, **entry},
        headers=as_staff(),
        timeout=5.0,
    )


def get_member(service: ServiceProcess, national_id: str) -> httpx.Response:
    return httpx.get(f"{service.url}/members/sidr/{national_id}", headers=as_staff(), timeout=5.0)


def store_a_member_as_an_earlier_version_did(nats_url: str, data_dir: Path) -> None:
    """Joined "1441-05-20" (typed in Hijri, read as the Gregorian year 1441) and
    suspended from 2099: dates the door now refuses, already in the store."""
    settings = VerificationSettings(nats_url=nats_url, data_dir=data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    MasterKeys.ensure(settings.master_key_path)
    keyring = open_keyring(settings)
    try:
        app = open_application(
            VerificationApplication,
            settings.eventsourcing_env(),
            packs=load_packs(DEFAULT_POLICIES_DIR),
            sealer=Sealer(keyring),
        )
        keys = app.subject_keys
        app.save(
            Member.register(
                association_id="sidr",
                national_id=MEMBER,
                subject_index=keys.subject_index("sidr", MEMBER),
                personal_key=keys.key_for("sidr", MEMBER),
                name="Aisha",
                joined_on=date(1441, 5, 20),
                status="suspended",
                status_since=date(2099, 1, 1),
            )
        )
        app.close()
    finally:
        keyring.close()


def assert_member_shown_in_gregorian(service: ServiceProcess) -> None:
    response = get_member(service, MEMBER)
    assert response.status_code == 200, response.text
    member: dict[str, Any] = response.json()
    assert member["joined_on"] == "1441-05-20"
    assert member["joined_on_display"]["hijri"] is None
    assert member["status_since_display"]["gregorian"] == "2099-01-01"
    assert member["status_since_display"]["ar"] and member["status_since_display"]["en"]


def test_a_member_with_a_date_that_cannot_be_real_is_refused_in_both_languages(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    service = ServiceProcess("verification", nats_server.url, tmp_path / "data").start()
    try:
        for entry in (
            {"joined_on": "1441-05-20", "status_since": "1441-05-20"},
            {"joined_on": "2099-01-01", "status_since": "2099-01-01"},
            {"status": "suspended", "status_since": "2099-01-01"},
        ):
            response = put_member(service, NEWCOMER, **entry)
            assert response.status_code == 422, response.text
            body = response.json()
            assert body["error"] == "invalid_member"
            assert body["message"]["en"] and body["message"]["ar"]
            assert body["message"]["en"] != body["message"]["ar"]
        assert get_member(service, NEWCOMER).status_code == 404  # nothing was stored
        marked = put_member(service, NEWCOMER, joined_on="1441-05-20h", status_since="1441-05-20h")
        assert marked.status_code == 200, marked.text
        assert marked.json()["joined_on"] == "2020-01-15"
    finally:
        service.stop(timeout=5)


def test_stored_dates_beyond_the_table_break_no_read_no_rebuild_and_no_case(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    store_a_member_as_an_earlier_version_did(nats_server.url, data_dir)
    service = ServiceProcess("verification", nats_server.url, data_dir).start()
    try:
        assert_member_shown_in_gregorian(service)
        # The member's next request, with a card that expires in 2090.
        request = builders.request_received(
            case_ref="SDR-1446-000001",
            service_code="member-service",
            applicant=Applicant(national_id=MEMBER, name="Aisha", phone="0501234567"),
            fields={"request_details": "A seedling nursery visit"},
            documents=[Document(code="national_id_card", number="x", expires_on=date(2090, 1, 1))],
            attestation=Attestation(attested=True),
            submitted_at=datetime(2025, 3, 1, 9, 30, tzinfo=UTC),
        )
        publish(nats_server.url, request)
        doc = shown(service, request.case_id)
        assert doc["suggested_outcome"] == "verified", doc["checks"]
        assert "2090" in str(doc["checks"])
        confirmed = httpx.post(
            f"{service.url}/verifications/{request.case_id}/confirmation",
            json={"officer": "officer-7"},
            headers=as_staff(),
        )
        assert confirmed.status_code == 202, confirmed.text
        (message,) = wait_for(
            lambda: stream_messages_sync(nats_server.url, "khidma.*.*.DataVerified"),
            timeout=10,
            what="DataVerified published",
        )
        assert message["event"]["payload"]["outcome"] == "verified"
        assert stream_messages_sync(nats_server.url, "khidma.deadletter.>") == []
    finally:
        service.stop(timeout=5)

    # A rebuild: the read models dropped and made again from the store.
    for views in data_dir.glob("verification-views.sqlite*"):
        views.unlink()
    service = ServiceProcess("verification", nats_server.url, data_dir).start()
    try:
        assert_member_shown_in_gregorian(service)
        rebuilt = wait_for(
            lambda: (d := shown(service, request.case_id))["status"] == "confirmed" and d,
            timeout=10,
            what="the verification rebuilt",
        )
        assert rebuilt["confirmed_at_display"]["hijri"]
    finally:
        service.stop(timeout=5)


def test_intake_refuses_a_document_expiring_absurdly_far_ahead(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    intake = ServiceProcess("intake", nats_server.url, tmp_path / "data").start()
    try:
        submission = {
            "association_id": "sidr",
            "channel": "website",
            "channel_ref": "form-dates",
            "service_code": "seedlings",
            "applicant": {"national_id": MEMBER, "name": "علي", "phone": "0500000000"},
            "fields": {"planting_site": "وادي حنيفة", "seedling_count": 20},
            "documents": [{"code": "national_id_card", "number": MEMBER, "expires_on": "2090-01-01"}],
            "attestation": {"attested": True, "method": "one_time_code"},
        }
        adapter = as_adapter(["website"])
        response = httpx.post(f"{intake.url}/submissions", json=submission, headers=adapter)
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["error"] == "date_too_far"
        assert "2090-01-01" in body["message"]["en"] and "2090-01-01" in body["message"]["ar"]
        hijri = {**submission["documents"][0], "expires_on": "1455-01-01h"}  # type: ignore[dict-item]
        accepted = httpx.post(
            f"{intake.url}/submissions", json={**submission, "documents": [hijri]}, headers=adapter
        )
        assert accepted.status_code == 201, accepted.text
    finally:
        intake.stop()
