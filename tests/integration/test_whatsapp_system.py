"""WhatsApp against the real system: `make run`'s services as processes (EmbeddedSystem),
the channels service among them with its `adapter-social_media` client, a webhook
signed as Meta signs it, and the replies captured by the local fake of the Graph API."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from khidma.run import EmbeddedSystem
from tests import personal_data
from tests.fakes.graph_api import (
    ACCESS_TOKEN,
    APPLICANT_NUMBER,
    PHONE_NUMBER_ID,
    GraphApiFake,
    notification,
    seedlings_request,
    signed,
    text_message,
    whatsapp_environment,
)

pytestmark = pytest.mark.integration

REFERENCE = re.compile(r"SDR-[0-9]{4}-[0-9]{6}")
CODE = re.compile(r"[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}")
NATIONAL_ID = "1000000024"
NAME = "سارة العتيبي"


@pytest.fixture(scope="module")
def graph() -> Iterator[GraphApiFake]:
    with GraphApiFake(ACCESS_TOKEN) as fake:
        yield fake


@pytest.fixture(scope="module")
def system(
    tmp_path_factory: pytest.TempPathFactory, graph: GraphApiFake
) -> Iterator[EmbeddedSystem]:
    data_dir = tmp_path_factory.mktemp("khidma")
    with EmbeddedSystem(
        data_dir, fixed_ports=False, service_env=whatsapp_environment(graph.url)
    ) as running:
        yield running


def webhook(system: EmbeddedSystem, payload: dict[str, object]) -> httpx.Response:
    body, headers = signed(payload)
    return httpx.post(
        f"{system.services['channels'].url}/whatsapp/webhook",
        content=body,
        headers=headers,
        timeout=10,
    )


def test_a_whatsapp_request_is_a_case_confirmed_once_and_its_status_answered(
    system: EmbeddedSystem, graph: GraphApiFake
) -> None:
    request = notification(text_message(seedlings_request(national_id=NATIONAL_ID)))
    assert webhook(system, request).status_code == 200
    [confirmation] = graph.wait_for_messages(1, timeout=30)
    assert confirmation.path == f"/v21.0/{PHONE_NUMBER_ID}/messages"
    assert confirmation.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert confirmation.body["to"] == APPLICANT_NUMBER
    text = confirmation.body["text"]["body"]
    reference_found, code_found = REFERENCE.search(text), CODE.search(text)
    assert reference_found and code_found, text
    reference, code = reference_found.group(), code_found.group()

    # Meta redelivers the notification: no second case, no second reply.
    assert webhook(system, request).status_code == 200

    # Intake's own answer to the applicant, with the code the reply gave.
    status = httpx.get(
        f"{system.services['intake'].url}/cases/{reference}/status",
        headers={"X-Case-Code": code},
        timeout=10,
    )
    assert status.status_code == 200, status.text
    label = status.json()["status_label"]

    # "Where is my request?", in Arabic, with Arabic-Indic digits.
    eastern = reference.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    assert webhook(system, notification(text_message(f"حالة {eastern} {code}"))).status_code == 200
    replies = graph.wait_for_messages(2, timeout=30)
    answer = replies[-1].body["text"]["body"]
    assert reference in answer and label["ar"] in answer and label["en"] in answer

    # One more message: by its reply, the redelivery has long been processed.
    assert webhook(system, notification(text_message("شكرا"))).status_code == 200
    replies = graph.wait_for_messages(3, timeout=30)
    assert "/a/sidr/seedlings/apply" in replies[-1].body["text"]["body"]
    confirmations = [r for r in graph.messages() if CODE.search(r.body["text"]["body"])]
    assert len(confirmations) == 1 and len(graph.messages()) == 3


def test_a_bad_signature_is_refused_by_the_running_service(
    system: EmbeddedSystem, graph: GraphApiFake
) -> None:
    body, headers = signed(notification(text_message("hello")), secret="wrong")
    response = httpx.post(
        f"{system.services['channels'].url}/whatsapp/webhook",
        content=body,
        headers=headers,
        timeout=10,
    )
    assert response.status_code == 401


def test_nothing_of_the_applicant_is_in_plain_in_the_data_folder(
    system: EmbeddedSystem, graph: GraphApiFake
) -> None:
    # After the request above (module order): the number, id and name are sealed or absent.
    assert graph.messages(), "the request test runs first"
    personal_data.assert_no_plaintext(
        Path(system.data_dir), [NATIONAL_ID, NAME, APPLICANT_NUMBER, "+" + APPLICANT_NUMBER]
    )
