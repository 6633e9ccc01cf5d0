"""Surveys as a real process: the invitation goes out through the logged outbox once, even
across a restart; the applicant opens the survey by its link; packs are checked at start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest

from khidma.nats_server import NatsServer
from khidma.processes import PROJECT_ROOT, ServiceProcess
from shared.events import RequestReceived
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from shared.roles import SURVEYS_OFFICER
from tests.auth import as_role
from services.surveys.outbound import opened_contact
from tests.helpers import stream_messages_sync, survey_token, wait_for
from tests.personal_data import assert_no_plaintext, keyring_sealer, sealed
from tests.integration.test_surveys_service import (
    OFFICER,
    answer,
    committee_decided,
    invitation,
    publish,
    request_received,
    service_delivered,
)

pytestmark = pytest.mark.integration

PUBLIC = "https://khidma.example.org/s"
SIDR = load_packs(DEFAULT_POLICIES_DIR)["sidr"]


def start(nats_server: NatsServer, data_dir: Path) -> ServiceProcess:
    return ServiceProcess(
        "surveys", nats_server.url, data_dir, env={"KHIDMA_PUBLIC_BASE_URL": PUBLIC}
    ).start()


def outbox(data_dir: Path) -> list[dict[str, Any]]:
    path = data_dir / "surveys-outbox.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def with_phone(received: RequestReceived, phone: str) -> RequestReceived:
    applicant = received.payload.applicant.model_copy(update={"phone": phone})
    payload = received.payload.model_copy(update={"applicant": applicant})
    return received.model_copy(update={"payload": payload})


def sent_of(service: ServiceProcess, case_id: Any, association_id: str = "sidr") -> dict[str, Any]:
    """The invitation once sent, as the surveys officer of its association reads it."""
    officer = as_role(SURVEYS_OFFICER, association_id)

    def sent() -> dict[str, Any] | None:
        doc = httpx.get(
            f"{service.url}/surveys/by-case/{case_id}", headers=officer, timeout=2.0
        ).json()
        return doc if doc.get("sent") else None

    return wait_for(sent, timeout=15.0, what=f"the invitation of {case_id} to be sent")


def test_an_invitation_is_sent_once_through_the_outbox_even_after_a_restart(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    service = start(nats_server, data_dir)
    # The service's own keyring (its data folder's master key and subject keys).
    sealer = keyring_sealer(data_dir)
    try:
        first = sealed(with_phone(request_received(channel="phone"), "+966500000001"), sealer)
        publish(nats_server.url, first, service_delivered(first))
        doc = sent_of(service, first.case_id)
        assert doc["sent_at_display"]["hijri"] and doc["invited_at_display"]["ar"]
        assert "phone" not in doc
    finally:
        service.stop()

    lines = outbox(data_dir)
    assert len(lines) == 1
    line = lines[0]
    assert line["case_id"] == str(first.case_id)
    assert line["channel"] == "phone" and line["stage"] == "delivered"
    assert opened_contact(line, sealer) == {"phone": "+966500000001", "email": None}
    assert_no_plaintext(data_dir / "surveys-outbox.jsonl", ["+966500000001", "500000001"])
    assert "token" not in doc
    assert line["link"].startswith(f"{PUBLIC}/surveys/") and len(line["link"]) > len(PUBLIC) + 20
    assert SIDR.name.ar in line["text"]["ar"] and SIDR.name.en in line["text"]["en"]
    assert line["text"]["ar"].endswith(line["link"]) and line["text"]["en"].endswith(line["link"])

    restarted = start(nats_server, data_dir)
    try:
        second = request_received()
        publish(nats_server.url, second, committee_decided(second, "rejected"))
        sent_of(restarted, second.case_id)
        ready = httpx.get(f"{restarted.url}/ready").json()
        assert ready["invitations_lag"] == 0
        # This process sent only the new invitation, not the first one again.
        assert ready["invitations_sent"] == 1
    finally:
        restarted.stop()

    lines = outbox(data_dir)
    assert [line["case_id"] for line in lines] == [str(first.case_id), str(second.case_id)]
    assert lines[1]["stage"] == "rejected"


def test_the_applicant_opens_the_survey_by_its_link_until_answering(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    service = start(nats_server, tmp_path / "data")
    try:
        received = request_received()
        publish(nats_server.url, received, committee_decided(received, "rejected"))
        invitation(service, received.case_id)
        token = survey_token(tmp_path / "data" / "surveys-outbox.jsonl", received.case_id)

        form = httpx.get(f"{service.url}/surveys/{token}")
        assert form.status_code == 200
        survey = form.json()
        assert survey["association"]["name"] == {"ar": SIDR.name.ar, "en": SIDR.name.en}
        assert survey["stage"] == "rejected"
        assert survey["questions"][0]["text"]["ar"] == SIDR.survey.satisfaction_question.ar
        assert survey["invited_at_display"]["hijri"]
        assert "token" not in str(survey["association"])

        assert answer(service, token, {"ratings": {"satisfaction": 2}}).status_code == 202

        gone = httpx.get(f"{service.url}/surveys/{token}")
        assert gone.status_code == 410
        assert gone.json()["error"] == "already_answered"
        assert gone.json()["message"]["en"] and gone.json()["message"]["ar"]

        unknown = httpx.get(f"{service.url}/surveys/no-such-token")
        assert unknown.status_code == 404
        assert unknown.json()["message"]["ar"]

        def answered() -> dict[str, Any] | None:
            doc = httpx.get(
                f"{service.url}/surveys/by-case/{received.case_id}", headers=OFFICER
            ).json()
            return doc if doc["answered"] else None

        doc = wait_for(answered, what="the answer in the invitations view")
        assert doc["answered_at_display"]["gregorian"] and doc["answered_at_display"]["ar"]
    finally:
        service.stop()


def test_an_event_of_an_association_without_a_pack_is_dead_lettered_at_once(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    # No association without a pack exists anywhere (intake refuses its requests): an
    # event of one is filed wrongly, and is set aside at once with its reason (issue 13;
    # docs/decisions.md, 29), where surveys once sent it a generic invitation.
    data_dir = tmp_path / "data"
    service = start(nats_server, data_dir)
    try:
        received = request_received().model_copy(update={"association_id": "no-pack"})
        publish(nats_server.url, received, service_delivered(received))
        dead = wait_for(
            lambda: len(found := stream_messages_sync(nats_server.url, "khidma.deadletter.surveys")) == 2
            and found,
            what="both events dead-lettered",
        )
        assert all(
            "association no-pack is not served here" in m["headers"]["Khidma-Dead-Letter-Reason"]
            for m in dead
        )
        assert httpx.get(f"{service.url}/health").json()["alive"] is True
    finally:
        service.stop()
    assert outbox(data_dir) == []


def test_a_broken_policy_pack_stops_the_service_at_start_with_file_and_key(
    tmp_path: Path,
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    broken = (DEFAULT_POLICIES_DIR / "sidr.toml").read_text(encoding="utf-8")
    broken = broken.replace("decision_window_days = 14", "decision_window_days = 0")
    (policies / "sidr.toml").write_text(broken, encoding="utf-8")

    finished = subprocess.run(
        [sys.executable, "-m", "services.surveys"],
        cwd=PROJECT_ROOT,
        env={
            **os.environ,
            "KHIDMA_NATS_URL": "nats://127.0.0.1:1",
            "KHIDMA_DATA_DIR": str(tmp_path / "data"),
            "KHIDMA_POLICIES_DIR": str(policies),
        },
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert finished.returncode == 2
    assert "sidr.toml" in finished.stderr and "decision_window_days" in finished.stderr


def test_an_invitation_already_in_the_outbox_before_a_crash_is_not_written_again(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    # A crash after the sender wrote the line and before InvitationSent was recorded
    # leaves exactly this: the line in the outbox, the survey not marked as sent.
    data_dir = tmp_path / "data"
    data_dir.mkdir(parents=True)
    received = request_received()
    torn_before = json.dumps({"message_id": f"survey-invitation:{received.case_id}"})
    (data_dir / "surveys-outbox.jsonl").write_text(torn_before + "\n", encoding="utf-8")

    service = start(nats_server, data_dir)
    try:
        publish(nats_server.url, received, service_delivered(received))
        sent_of(service, received.case_id)
    finally:
        service.stop()

    assert [line["message_id"] for line in outbox(data_dir)] == [
        f"survey-invitation:{received.case_id}"
    ]


def corrected(received: RequestReceived, revision: int, **changes: Any) -> RequestReceived:
    """The request published again, whole, at `revision`, as intake does after a correction."""
    applicant = received.payload.applicant.model_copy(
        update={k: v for k, v in changes.items() if k in ("phone", "email")}
    )
    payload = received.payload.model_copy(
        update={
            **{k: v for k, v in changes.items() if k == "channel"},
            "applicant": applicant,
            "revision": revision,
            "corrects": uuid4(),
        }
    )
    return received.model_copy(update={"event_id": uuid4(), "payload": payload})


def test_a_corrected_request_is_invited_once_at_its_corrected_number_in_e164(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    service = start(nats_server, data_dir)
    sealer = keyring_sealer(data_dir)
    try:
        # Revision 1 holds the number as typed, as requests received before intake
        # normalised numbers do; revision 2 corrects it (and the channel); a copy
        # of revision 1 arriving after it changes nothing.
        plain = request_received(channel="phone", phone="050 000 0001")
        first = sealed(plain, sealer)
        second = sealed(corrected(plain, 2, phone="٠٥٠ ٩٩٩ ٩٩٩٩", channel="website"), sealer)
        late = sealed(corrected(plain, 1, phone="0500000003"), sealer)
        publish(nats_server.url, first, second, late, service_delivered(first))
        doc = sent_of(service, first.case_id)
        assert doc["channel"] == "website"
        ready = httpx.get(f"{service.url}/ready").json()
        assert ready["invitations_sent"] == 1 and ready["dead_letters"] == 0
    finally:
        service.stop()

    [line] = outbox(data_dir)
    assert line["case_id"] == str(first.case_id)
    assert opened_contact(line, sealer) == {"phone": "+966509999999", "email": None}
    assert line["channel"] == "website"


def test_an_invitation_with_no_usable_number_is_recorded_with_why_and_not_sent(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    service = start(nats_server, data_dir)
    try:
        received = request_received(phone="12345")
        publish(nats_server.url, received, service_delivered(received))

        def recorded() -> dict[str, Any] | None:
            doc = httpx.get(
                f"{service.url}/surveys/by-case/{received.case_id}", headers=OFFICER
            ).json()
            return doc if doc.get("undeliverable") else None

        doc = wait_for(recorded, timeout=15.0, what="the invitation recorded as undeliverable")
        assert doc["sent"] is False
        assert doc["undeliverable"]["code"] == "unusable_contact"
        assert doc["undeliverable"]["en"] and doc["undeliverable"]["ar"]
        assert doc["undeliverable_at_display"]["hijri"]
        assert httpx.get(f"{service.url}/ready").json()["invitations_lag"] == 0
    finally:
        service.stop()

    assert outbox(data_dir) == []
