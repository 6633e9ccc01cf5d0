"""The applicant's personal data in intake (issue 10, docs/decisions.md 24): sealed
under their key in the store, found by their blind index, shown "erased" once their
key is destroyed, and a store from before encryption still read.

Intake in process (real application, routes and read model on SQLite files in a
temporary data folder, with the keyring there), and the application on a copy of
an older version's store (tests/fixtures/v1)."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.utils import get_topic

from services.intake.application import IntakeApplication
from services.intake.domain import Case, OpenRequest, legacy_open_request_id, open_request_id
from services.intake.integration import TRANSLATORS, translators
from services.intake.views import CASES, project
from shared.events import Correction, RequestReceived
from shared.personal import Sealer
from shared.personal.requests import open_request
from shared.personal.sealing import ERASED_TEXT
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from shared.roles import FRONT_DESK
from shared.settings import ServiceSettings
from shared.views import ProjectionRunner, ViewStore
from tests import builders, personal_data
from tests.auth import as_adapter, as_role, as_staff
from tests.in_process import InProcessService

pytestmark = pytest.mark.unit

Start = Callable[..., Awaitable[InProcessService]]

ADAPTER = as_adapter(["website", "phone"], ["sidr"])
STAFF = as_staff()
OFFICER = as_role(FRONT_DESK, subject="officer-1", name="Officer One")
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "v1"

# Two applicants, each with what a person is recognised by.
AISHA = {
    "national_id": "1098765437",
    "name": "عائشة بنت سعيد القحطاني",
    "phone": "0551234567",
    "email": "aisha.qahtani@example.org",
}
AISHA_PHONE_E164 = "+966551234567"
AISHA_CORRECTED_ID = "1098765445"
OMAR = {"national_id": "2087654329", "name": "Omar Al-Harbi", "phone": "0569876543"}
# Text of the applicant's own in the request's fields.
AISHA_SITE = "مزرعة القحطاني في وادي حنيفة"


def submission(applicant: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {
        "association_id": "sidr",
        "channel": "website",
        "channel_ref": f"form-{uuid4().hex[:8]}",
        "service_code": "seedlings",
        "applicant": applicant,
        "fields": {"planting_site": AISHA_SITE, "seedling_count": 20},
        "documents": [
            {"code": "national_id_card", "number": applicant["national_id"], "expires_on": "2030-01-01"}
        ],
        "attestation": {"attested": True, "method": "one_time_code"},
        **overrides,
    }


async def submit(intake: InProcessService, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    response = await intake.client.post("/submissions", json=body, headers=ADAPTER)
    assert response.status_code == status, response.text
    return response.json()


def published(intake: InProcessService, case_id: str) -> list[RequestReceived]:
    """What the outbox publishes of the case: its translators, built with the app's sealer."""
    translate = translators(intake.app.sealer)
    return [
        translate[get_topic(type(event))](event)
        for event in intake.app.events.get(UUID(case_id))
        if isinstance(event, Case.Completed | Case.Resubmitted)
    ]


async def discrepancies_found(intake: InProcessService, case_id: str) -> None:
    await intake.deliver(
        builders.data_verified(
            published(intake, case_id)[-1],
            outcome="discrepancies",
            corrections=[Correction(field="national_id", ar="صحح رقم الهوية", en="Fix the ID")],
        )
    )


def personal_values(applicant: dict[str, str]) -> list[str]:
    return [value for value in applicant.values() if value]


# At rest ----------------------------------------------------------------------------


async def test_the_store_the_views_and_the_logs_hold_none_of_the_applicants_data_in_plain(
    in_process: Start, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    intake = await in_process("intake")
    aisha = await submit(intake, submission(AISHA))
    # Another channel, the same person and service: linked to her open request.
    linked = await submit(
        intake, submission(AISHA, channel="phone", fields={}, documents=[]), status=200
    )
    assert linked["linked"] is True and linked["case_id"] == aisha["case_id"]
    # Omar's request arrives incomplete, then gets what it lacked.
    omar = await submit(intake, submission(OMAR, documents=[], attestation=None))
    added = await intake.client.post(
        f"/cases/{omar['case_id']}/information",
        json={
            "documents": submission(OMAR)["documents"],
            "attestation": {"attested": True, "method": "in_person", "attested_by": OMAR["name"]},
        },
        headers=OFFICER,
    )
    assert added.status_code == 200 and added.json()["status"] == "received", added.text
    # Aisha corrects her national ID and name after verification asked her to.
    await discrepancies_found(intake, aisha["case_id"])
    corrected = await intake.client.post(
        f"/cases/{aisha['case_id']}/corrections",
        json={
            "applicant": {"national_id": AISHA_CORRECTED_ID, "name": AISHA["name"] + " ب"},
            "attestation": {"attested": True, "method": "one_time_code"},
        },
        headers={"X-Case-Code": aisha["access_code"]},
    )
    assert corrected.status_code == 200 and corrected.json()["revision"] == 2, corrected.text
    for case in (aisha, omar):
        listed = await intake.client.get(f"/cases/{case['case_ref']}", headers=STAFF)
        assert listed.status_code == 200
    await intake.settle()

    secrets = [
        *personal_values(AISHA),
        AISHA_PHONE_E164,
        AISHA_CORRECTED_ID,
        AISHA_SITE,
        *personal_values(OMAR),
    ]
    data_dir = tmp_path / "intake"
    assert {"intake.sqlite", "intake-views.sqlite"} <= {p.name for p in data_dir.iterdir()}
    assert personal_data.plaintext_in_files(data_dir, secrets) == []
    assert personal_data.plaintext_in(caplog.text.encode("utf-8"), secrets) == []
    # And yet intake holds it all: the case file opens it.
    file = (await intake.client.get(f"/cases/{aisha['case_id']}/file", headers=STAFF)).json()
    assert file["applicant"]["national_id"] == AISHA_CORRECTED_ID
    assert file["revisions"][0]["applicant"]["email"] == AISHA["email"]
    assert file["fields"]["planting_site"] == AISHA_SITE and file["erased"] is False


async def test_what_is_published_is_sealed_under_the_applicants_key_with_their_blind_index(
    in_process: Start,
) -> None:
    intake = await in_process("intake")
    case = await submit(intake, submission(AISHA))
    keyring = intake.app.sealer.keys
    (event,) = published(intake, case["case_id"])
    payload = event.payload
    assert payload.subject_index == keyring.subject_index("sidr", AISHA["national_id"])
    assert payload.personal_key == keyring.key_for("sidr", AISHA["national_id"])
    body = event.model_dump_json()
    secrets = [*personal_values(AISHA), AISHA_PHONE_E164, AISHA_SITE]
    assert personal_data.plaintext_in(body.encode("utf-8"), secrets) == []
    for name in ("applicant", "fields", "documents", "attestation"):
        sealed = getattr(payload, name).model_dump()
        assert sealed["sealed"] == "v1" and sealed["key"] == payload.personal_key
    # A consumer with the keyring opens it at its boundary.
    opened = open_request(payload, Sealer(keyring))
    assert opened.applicant is not None and opened.applicant.email == AISHA["email"]
    assert opened.applicant.phone == AISHA_PHONE_E164
    assert opened.fields["planting_site"] == AISHA_SITE
    assert opened.attestation is not None and opened.attestation.data_hash == case["data_hash"]
    # The translators without a sealer (the audit's) publish a stored event's sealed
    # values as they are kept.
    (notification,) = intake.app.read_notifications(
        0, 100, topics=[get_topic(Case.Completed)]
    )
    raw = json.loads(notification.state)
    assert raw["applicant"]["sealed"] == "v1" and raw["personal_key"] == payload.personal_key


# The blind index ---------------------------------------------------------------------


async def test_one_open_request_per_applicant_per_service_is_kept_by_the_blind_index(
    in_process: Start,
) -> None:
    intake = await in_process("intake")
    keyring = intake.app.sealer.keys
    first = await submit(intake, submission(AISHA))
    index = keyring.subject_index("sidr", AISHA["national_id"])
    open_index = intake.app.repository.get(open_request_id("sidr", index, "seedlings"))
    assert isinstance(open_index, OpenRequest) and open_index.case_id == UUID(first["case_id"])
    # Nothing is derived from the number itself any more.
    assert not intake.app.recorder.select_events(
        legacy_open_request_id("sidr", AISHA["national_id"], "seedlings")
    )
    (opened,) = intake.app.recorder.select_events(open_index.id)
    assert AISHA["national_id"].encode() not in opened.state
    # The same person again, by another channel, even with the digits written in
    # Arabic-Indic: linked to the open request, not a second one.
    for national_id in (AISHA["national_id"], "١٠٩٨٧٦٥٤٣٧"):
        again = await submit(
            intake,
            submission({**AISHA, "national_id": national_id}, channel="phone"),
            status=200,
        )
        assert again["case_id"] == first["case_id"] and again["linked"] is True
    # The same channel reference again from the same person is the same request.
    body = submission(OMAR)
    omar = await submit(intake, body)
    repeated = await submit(intake, body, status=200)
    assert repeated["duplicate"] is True and repeated["case_id"] == omar["case_id"]
    # A national ID cannot be corrected to one with an open request for the service.
    await discrepancies_found(intake, omar["case_id"])
    refused = await intake.client.post(
        f"/cases/{omar['case_id']}/corrections",
        json={"applicant": {"national_id": AISHA["national_id"]}},
        headers=OFFICER,
    )
    assert refused.status_code == 409 and refused.json()["error"] == "already_open"


# Erasure -------------------------------------------------------------------------------


async def test_after_the_applicants_key_is_destroyed_the_case_file_shows_erased_and_the_views_rebuild(
    in_process: Start, tmp_path: Path
) -> None:
    intake = await in_process("intake")
    keyring = intake.app.sealer.keys
    case = await submit(intake, submission(AISHA))
    other = await submit(intake, submission(OMAR))
    (received,) = published(intake, case["case_id"])
    await intake.settle()

    destroyed = keyring.destroy(keyring.subject_index("sidr", AISHA["national_id"]), "erasure-1")
    assert destroyed == [received.payload.personal_key]

    response = await intake.client.get(f"/cases/{case['case_ref']}/file", headers=STAFF)
    assert response.status_code == 200, response.text
    file = response.json()
    assert file["erased"] is True
    for name in ("applicant", "fields", "documents", "attestation"):
        assert file[name] == ERASED_TEXT
        assert file["revisions"][0][name] == ERASED_TEXT
    assert file["case_ref"] == case["case_ref"] and file["status"] == "received"
    # Another applicant's request is untouched.
    kept = (await intake.client.get(f"/cases/{other['case_id']}/file", headers=STAFF)).json()
    assert kept["applicant"]["name"] == OMAR["name"] and kept["erased"] is False
    # Where the request stands still reads, for staff and for the applicant's code.
    assert (await intake.client.get(f"/cases/{case['case_ref']}", headers=STAFF)).status_code == 200
    status = await intake.client.get(
        f"/cases/{case['case_ref']}/status", headers={"X-Case-Code": case["access_code"]}
    )
    assert status.status_code == 200 and status.json()["status"] == "received"
    # Nothing personal can be added to an erased request.
    refused = await intake.client.post(
        f"/cases/{case['case_id']}/information",
        json={"fields": {"seedling_count": 3}},
        headers=OFFICER,
    )
    assert refused.status_code == 409 and refused.json()["error"] == "personal_data_erased"
    assert refused.json()["message"]["ar"]

    # The views rebuild from the store, the erased case included.
    views = ViewStore(tmp_path / "rebuilt-views.sqlite")
    ProjectionRunner(intake.app, intake.runtime.store, views, project).catch_up()
    assert views.count(CASES) == 2
    assert views.get(CASES, case["case_id"])["status"] == "received"

    # What the committee decides still reaches the case, and closes it: her open
    # request is released by her blind index (her number is gone).
    await intake.deliver(builders.committee_decided(received, decision="rejected"))
    assert (await intake.client.get(f"/cases/{case['case_ref']}/file", headers=STAFF)).json()[
        "status"
    ] == "rejected"
    again = await submit(intake, submission(AISHA))
    assert again["case_id"] != case["case_id"] and again["duplicate"] is False
    (new,) = published(intake, again["case_id"])
    assert new.payload.personal_key != received.payload.personal_key  # a new key
    # A request erased before its outbox published it goes out sealed under the
    # destroyed key: it opens as erased wherever it is read.
    (stale,) = published(intake, case["case_id"])
    assert open_request(stale.payload, Sealer(keyring)).erased is True


# Data from before encryption ------------------------------------------------------------


def fixture_app(data_dir: Path, *, sealed: bool = True) -> IntakeApplication:
    settings = ServiceSettings(
        service_name="intake", nats_url="nats://unused.invalid:4222", data_dir=data_dir
    )
    keyring = personal_data.keyring_of(data_dir)
    return IntakeApplication(
        env=settings.eventsourcing_env(),
        packs=load_packs(DEFAULT_POLICIES_DIR),
        sealer=Sealer(keyring) if sealed else None,
    )


def test_a_store_written_before_encryption_still_reads_and_its_open_requests_still_hold(
    tmp_path: Path,
) -> None:
    shutil.copy(FIXTURE / "intake.sqlite", tmp_path / "intake.sqlite")
    app = fixture_app(tmp_path)
    cases = {case["kind"]: case for case in json.loads((FIXTURE / "cases.json").read_text())["cases"]}
    for recorded in cases.values():
        file = app.case_file(UUID(recorded["case_id"]))
        assert file["status"] == recorded["status"] and file["erased"] is False
        assert file["applicant"]["national_id"] and file["applicant"]["name"]
    # Its RequestReceived, translated from the store as it is kept, is plain as it was published.
    old = next(
        n for n in app.read_notifications(0, 10_000) if n.topic == get_topic(Case.Completed)
    )
    translated = TRANSLATORS[old.topic](app.mapper.to_domain_event(old))
    assert translated.payload.personal_key is None and translated.payload.applicant.name

    # The applicant of a request still open submits again: linked to it (the index
    # derived from the number, before the blind index, is still read).
    waiting = app.case_file(UUID(cases["received-not-verified"]["case_id"]))
    from shared.submissions import Submission

    def again(file: dict[str, Any]) -> Submission:
        return Submission(
            association_id="sidr",
            channel="website",
            channel_ref=f"form-{uuid4().hex[:8]}",
            service_code=file["service_code"],
            applicant=file["applicant"],
            fields=file["fields"],
            documents=file["documents"],
            attestation={"attested": True, "method": "one_time_code"},
        )

    linked = app.submit(again(waiting), {"kind": "adapter", "id": "test"})
    assert linked.linked is True and str(linked.case_id) == waiting["case_id"]
    # Once an old request is delivered, its old index is released, and the same
    # person's next request is indexed by the blind index.
    approved = app.case_file(UUID(cases["approved-not-delivered"]["case_id"]))
    app.deliver(
        UUID(approved["case_id"]), delivered="seedlings", delivered_by="o1",
        actor={"kind": "officer", "id": "o1"},
    )
    fresh = app.submit(again(approved), {"kind": "adapter", "id": "test"})
    assert fresh.duplicate is False and str(fresh.case_id) != approved["case_id"]
    keys = app.subject_keys
    assert keys is not None
    index = keys.subject_index("sidr", approved["applicant"]["national_id"])
    assert app.repository.get(open_request_id("sidr", index, approved["service_code"])).case_id == fresh.case_id


def test_a_case_recorded_before_encryption_is_sealed_from_its_next_event_on(tmp_path: Path) -> None:
    plain = fixture_app(tmp_path, sealed=False)
    from shared.submissions import Submission

    body = submission(AISHA, documents=[], attestation=None)
    result = plain.submit(Submission(**body), {"kind": "adapter", "id": "test"})
    plain.close()
    before = len(plain_events(tmp_path, result.case_id))
    app = fixture_app(tmp_path)
    app.add_information(
        result.case_id,
        documents=submission(AISHA)["documents"],
        attestation={"attested": True, "method": "one_time_code"},
        actor={"kind": "adapter", "id": "test"},
    )
    written = plain_events(tmp_path, result.case_id)[before:]
    assert [topic.rsplit(".", 1)[-1] for topic, _ in written] == [
        "SubjectKeyed", "InformationAdded", "Completed",
    ]
    for _, state in written:
        assert AISHA["name"].encode() not in state and AISHA["national_id"].encode() not in state
    (completed,) = published_by(app, result.case_id)
    opened = open_request(completed.payload, app.sealer)
    assert opened.applicant is not None and opened.applicant.name == AISHA["name"]
    assert completed.payload.subject_index == app.subject_index("sidr", AISHA["national_id"])
    # Her open request, opened before the blind index, still refuses a second one.
    again = app.submit(Submission(**submission(AISHA)), {"kind": "adapter", "id": "test"})
    assert again.linked is True and again.case_id == result.case_id


def plain_events(data_dir: Path, case_id: UUID) -> list[tuple[str, bytes]]:
    import sqlite3

    connection = sqlite3.connect(data_dir / "intake.sqlite")
    try:
        rows = connection.execute(
            "SELECT topic, state FROM stored_events WHERE originator_id = ? ORDER BY originator_version",
            (case_id.hex,),
        ).fetchall()
    finally:
        connection.close()
    return [(str(topic), bytes(state)) for topic, state in rows]


def published_by(app: IntakeApplication, case_id: UUID) -> list[RequestReceived]:
    translate = translators(app.sealer)
    return [
        translate[get_topic(type(event))](event)
        for event in app.events.get(case_id)
        if isinstance(event, Case.Completed | Case.Resubmitted)
    ]
