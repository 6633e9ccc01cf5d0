"""The plain JSON endpoint of the help-request and volunteering channels, on a real
channels service against a real intake (EmbeddedSystem)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from khidma.run import CHANNEL_CLIENTS_FILE, EmbeddedSystem
from tests.auth import as_adapter, as_staff
from tests.helpers import stream_messages_sync, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedSystem]:
    with EmbeddedSystem(tmp_path_factory.mktemp("khidma"), fixed_ports=False) as running:
        yield running


def client_token(system: EmbeddedSystem, channel: str) -> dict[str, str]:
    """The channel's client at the system's identity service (client credentials)."""
    client = json.loads((system.data_dir / CHANNEL_CLIENTS_FILE).read_text())[channel]
    response = httpx.post(
        f"{system.services['identity'].url}/oauth/token",
        data={"grant_type": "client_credentials", **client},
        timeout=20,
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def body(**overrides: Any) -> dict[str, Any]:
    return {
        "association_id": "health-coop",
        "channel": "volunteering",
        "channel_ref": "crm-msg-0001",
        "service_code": "volunteering",
        "applicant": {"national_id": "1968013456", "name": "سلمان العنزي", "phone": "0501234567"},
        "fields": {"availability": "مساء الخميس"},
        **overrides,
    }


def post(system: EmbeddedSystem, payload: Any, headers: dict[str, str] | None) -> httpx.Response:
    return httpx.post(
        f"{system.services['channels'].url}/requests", json=payload, headers=headers or {},
        timeout=30,
    )  # fmt: skip


def cases_of(system: EmbeddedSystem, association_id: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{system.services['intake'].url}/cases",
        params={"association_id": association_id, "limit": 1000},
        headers=as_staff(),
        timeout=20,
    )
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def test_a_request_opens_one_case_however_often_it_is_sent(system):
    token = client_token(system, "volunteering")
    first = post(system, body(), token)
    assert first.status_code == 201, first.text
    answer = first.json()
    assert answer["case_ref"].startswith("HLT-") and answer["access_code"]
    assert answer["duplicate"] is False
    again = post(system, body(), token)
    assert again.status_code == 200, again.text
    assert again.json()["case_ref"] == answer["case_ref"] and again.json()["duplicate"] is True
    assert again.json()["access_code"] is None
    found = [c for c in cases_of(system, "health-coop") if c["case_ref"] == answer["case_ref"]]
    assert len(found) == 1 and len(cases_of(system, "health-coop")) == 1
    assert found[0]["channel"] == "volunteering"


def test_a_help_request_goes_through_its_own_client(system):
    response = post(
        system,
        body(channel="help_request", channel_ref="crm-77", service_code="medical-support",
             applicant={"national_id": "1816969776", "name": "منى"},
             fields={"diagnosis": "ربو", "monthly_income": 3000}),
        client_token(system, "help_request"),
    )  # fmt: skip
    assert response.status_code == 201, response.text
    assert response.json()["case_ref"].startswith("HLT-")


def test_without_a_token_nothing_is_recorded(system):
    before = len(cases_of(system, "health-coop"))
    response = post(system, body(channel_ref="crm-no-token"), None)
    assert response.status_code == 401
    assert response.json()["message"]["ar"]
    assert post(system, body(channel_ref="x"), {"Authorization": "Bearer x.y.z"}).status_code == 401
    assert len(cases_of(system, "health-coop")) == before


def test_a_channel_the_pack_does_not_enable_is_refused_in_both_languages(system):
    # elites enables volunteering, not help_request.
    response = post(
        system,
        body(association_id="elites", channel="help_request", service_code="volunteering"),
        client_token(system, "help_request"),
    )
    assert response.status_code == 404
    answer = response.json()
    assert answer["error"] == "channel_not_enabled"
    assert "help_request" in answer["message"]["en"] and "help_request" in answer["message"]["ar"]
    assert cases_of(system, "elites") == []


def test_only_the_two_channels_and_only_with_the_channels_role(system):
    other = post(system, body(channel="branch_office"), client_token(system, "volunteering"))
    assert other.status_code == 422 and other.json()["message"]["ar"]
    # A token of the letters' channel may not submit volunteering requests.
    letters = post(system, body(channel_ref="crm-letter"), as_adapter(["letter"]))
    assert letters.status_code == 403 and letters.json()["message"]["ar"]


def test_intakes_refusal_comes_back_with_its_status_and_both_languages(system):
    response = post(
        system, body(channel_ref="crm-bad-service", service_code="no-such-service"),
        client_token(system, "volunteering"),
    )  # fmt: skip
    assert response.status_code == 422, response.text
    answer = response.json()
    assert "no-such-service" in answer["message"]["en"] and answer["message"]["ar"]


def test_the_case_history_names_the_calling_system_itself(system):
    crm = as_adapter(["volunteering"], ["health-coop"], subject="crm-of-health-coop")
    sent = post(
        system,
        body(channel_ref="crm-msg-actor", applicant={"national_id": "1757491186", "name": "هند"},
             attestation={"attested": True, "method": "in_person"}),
        crm,
    )  # fmt: skip
    assert sent.status_code == 201, sent.text
    messages = wait_for(
        lambda: stream_messages_sync(system.admin_nats_url, f"khidma.*.{sent.json()['case_id']}.*"),
        what="the case's first event on the stream (a complete request is received)",
    )
    assert messages[0]["event"]["actor"]["id"] == "crm-of-health-coop"
