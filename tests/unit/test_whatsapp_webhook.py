"""The WhatsApp adapter's webhook on the real channels app, against intake's real API
in process and a local fake of the Graph API (a real HTTP server)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.channels.adapters import whatsapp as adapter_module
from services.channels.intake import IntakeGateway
from services.channels.main import build
from services.channels.settings import ChannelsSettings
from services.channels.whatsapp.conversation import message_ref
from shared.form_link import ensure_key, load_key
from shared.personal import MasterKeys
from tests.auth import ISSUER, as_adapter, as_staff
from tests.fakes.graph_api import (
    ACCESS_TOKEN,
    APPLICANT_NUMBER,
    PHONE_NUMBER_ID,
    VERIFY_TOKEN,
    GraphApiFake,
    delivered_status,
    notification,
    replies,
    seedlings_request,
    signed,
    text_message,
    whatsapp_environment,
)
from tests.in_process import InProcessService

pytestmark = pytest.mark.unit

PUBLIC_BASE_URL = "https://khidma.example.org"
FORM_LINK = re.compile(
    re.escape(PUBLIC_BASE_URL) + r"/a/sidr/([a-z-]+)/apply\?prefill=([A-Za-z0-9_-]+)"
)
REFERENCE = re.compile(r"SDR-[0-9]{4}-[0-9]{6}")
CODE = re.compile(r"[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}")


class AdapterToken:
    """The channel's machine token, from the tests' issuer (as the identity service
    gives `adapter-social_media`)."""

    async def get(self) -> str:
        roles = {"sidr": ["channel:social_media"]}
        return ISSUER.token("adapter-social_media", roles, kind="machine")


@dataclass
class Harness:
    app: FastAPI
    client: httpx.AsyncClient
    intake: InProcessService
    graph: GraphApiFake
    data_dir: Path

    async def post(self, payload: dict[str, Any] | bytes, **headers: str) -> httpx.Response:
        body, signed_headers = signed(payload)
        return await self.client.post(
            "/whatsapp/webhook", content=body, headers={**signed_headers, **headers}
        )

    async def idle(self) -> None:
        await asyncio.wait_for(adapter_module.adapter(self.app).idle(), timeout=20)

    async def cases(self) -> list[dict[str, Any]]:
        await self.intake.settle()
        response = await self.intake.client.get("/cases", headers=as_staff())
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()
        return found


async def start_channels(
    tmp_path: Path,
    intake: InProcessService,
    stack: AsyncExitStack,
    monkeypatch: pytest.MonkeyPatch,
    graph_url: str | None,
) -> tuple[FastAPI, httpx.AsyncClient]:
    for name, value in whatsapp_environment(graph_url).items():
        monkeypatch.setenv(name, value)
    if graph_url is None:
        monkeypatch.delenv("KHIDMA_WHATSAPP_ACCESS_TOKEN", raising=False)
    settings = ChannelsSettings(
        data_dir=tmp_path / "channels",
        intake_url="http://intake",
        token_url="http://issuer.invalid/oauth/token",
        public_base_url=PUBLIC_BASE_URL,
        channel_clients={
            "social_media": {"client_id": "adapter-social_media", "client_secret": "s"}
        },
    )
    MasterKeys.ensure(settings.master_key_path)
    ensure_key(settings.form_link_key_path)  # as the runner makes it on the first start
    app = build(settings)
    # Intake in process: the gateway's requests go to its ASGI app, with the token
    # the issuer would give the channel's client.
    app.state.intake = IntakeGateway(
        "http://intake", {"social_media": AdapterToken()}, intake.client
    )  # type: ignore[dict-item]
    await stack.enter_async_context(app.router.lifespan_context(app))
    client = await stack.enter_async_context(
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://channels")
    )
    return app, client


Start = Callable[..., Awaitable[InProcessService]]


@pytest.fixture
async def whatsapp(
    tmp_path: Path, in_process: Start, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Harness]:
    intake = await in_process("intake")
    with GraphApiFake(ACCESS_TOKEN) as graph:
        async with AsyncExitStack() as stack:
            app, client = await start_channels(tmp_path, intake, stack, monkeypatch, graph.url)
            yield Harness(app, client, intake, graph, tmp_path / "channels")


# The handshake ---------------------------------------------------------------------


async def test_the_handshake_answers_the_challenge_as_plain_text(whatsapp: Harness) -> None:
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    response = await whatsapp.client.get("/whatsapp/webhook", params=params)
    assert response.status_code == 200
    assert response.text == "1158201444"
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "not-the-token", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
    ],
)
async def test_the_handshake_is_refused_without_the_token(
    whatsapp: Harness, params: dict[str, str]
) -> None:
    response = await whatsapp.client.get("/whatsapp/webhook", params=params)
    assert response.status_code == 403
    assert response.json()["message"]["ar"] and response.json()["message"]["en"]
    assert "1" != response.text


# Refused notifications ----------------------------------------------------------


async def assert_nothing_recorded(whatsapp: Harness) -> None:
    """Nothing recorded for the refused ones: a message taken after them is the only
    reply, and intake holds no case."""
    response = await whatsapp.post(notification(text_message("مرحبا")))
    assert response.status_code == 200
    await replies(whatsapp.graph, 1)
    await whatsapp.idle()
    assert len(whatsapp.graph.messages()) == 1
    assert await whatsapp.cases() == []


async def test_a_wrong_or_missing_signature_is_refused_and_nothing_recorded(
    whatsapp: Harness,
) -> None:
    payload = notification(text_message(seedlings_request()))
    body, headers = signed(payload, secret="another-apps-secret")
    wrong = await whatsapp.client.post("/whatsapp/webhook", content=body, headers=headers)
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "whatsapp_signature_refused"
    body, headers = signed(payload)
    missing = await whatsapp.client.post(
        "/whatsapp/webhook", content=body, headers={"Content-Type": "application/json"}
    )
    assert missing.status_code == 401
    # The signature of other bytes (the same JSON, re-encoded) is not the raw body's.
    reencoded = json.dumps(payload).encode()
    assert reencoded != body
    changed = await whatsapp.client.post("/whatsapp/webhook", content=reencoded, headers=headers)
    assert changed.status_code == 401
    await assert_nothing_recorded(whatsapp)


@pytest.mark.parametrize(
    "body",
    [
        b'{"object": "whatsapp_business_account", "entry": [',
        b"\xff\xfe not json",
        b'{"object": "whatsapp_business_account", "entry": {"id": "1"}}',
        (
            b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": '
            b'"messages", "value": {"messages": [{"from": "966500000123"}]}}]}]}'
        ),
    ],
)
async def test_a_malformed_notification_is_refused_and_nothing_recorded(
    whatsapp: Harness, body: bytes
) -> None:
    response = await whatsapp.post(body)
    assert response.status_code == 400
    assert response.json()["message"]["ar"]
    await assert_nothing_recorded(whatsapp)


async def test_statuses_are_ignored(whatsapp: Harness) -> None:
    response = await whatsapp.post(notification(statuses=[delivered_status()]))
    assert response.status_code == 200
    assert response.json() == {"received": 0, "taken": 0}
    await assert_nothing_recorded(whatsapp)


async def test_a_message_to_a_number_of_no_association_is_not_answered(whatsapp: Harness) -> None:
    response = await whatsapp.post(
        notification(text_message(seedlings_request()), phone_number_id="999999999999")
    )
    assert response.status_code == 200
    await whatsapp.idle()
    assert whatsapp.graph.messages() == []
    assert await whatsapp.cases() == []


# The conversation ---------------------------------------------------------------


async def test_a_first_message_gets_the_services_and_their_form_links(whatsapp: Harness) -> None:
    message = text_message("السلام عليكم، أريد شتلات")
    response = await whatsapp.post(notification(message))
    assert response.status_code == 200
    [sent] = await replies(whatsapp.graph, 1)
    # Meta's messages endpoint, with the app's token and its text message body.
    assert sent.path == f"/v21.0/{PHONE_NUMBER_ID}/messages"
    assert sent.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert sent.body["messaging_product"] == "whatsapp"
    assert sent.body["to"] == APPLICANT_NUMBER
    assert sent.body["type"] == "text"
    text = sent.body["text"]["body"]
    assert f"{PUBLIC_BASE_URL}/a/sidr/seedlings/apply?prefill=" in text
    assert f"{PUBLIC_BASE_URL}/a/sidr/member-service/apply?prefill=" in text
    assert "طلب شتلات أشجار برية" in text and "Wild tree seedlings" in text
    # Each link opens, with the web app's key, to the sender's phone filled in.
    key = load_key(whatsapp.data_dir / "form-link.key", configured=True)
    assert key is not None
    links = FORM_LINK.findall(text)
    sidr = whatsapp.app.state.packs["sidr"]
    assert {code for code, _ in links} == {service.code for service in sidr.services}
    for code, token in links:
        opened = key.open(token, "sidr", code, datetime.now(UTC))
        assert opened == {"applicant": {"phone": "+" + APPLICANT_NUMBER}}
    assert APPLICANT_NUMBER not in text
    assert await whatsapp.cases() == []


async def test_a_refused_structured_requests_link_opens_to_its_lines(whatsapp: Harness) -> None:
    too_long = "1" * 21  # intake takes at most 20 characters of a national id
    message = text_message(seedlings_request(national_id=too_long) + "\nemail: sara@example.org")
    await whatsapp.post(notification(message))
    [sent] = await replies(whatsapp.graph, 1)
    text = sent.body["text"]["body"]
    assert "applicant.national_id" in text
    [(code, token), *_] = FORM_LINK.findall(text)
    key = load_key(whatsapp.data_dir / "form-link.key", configured=True)
    assert key is not None and code == "seedlings"
    assert key.open(token, "sidr", "seedlings", datetime.now(UTC)) == {
        "applicant": {
            "national_id": too_long,
            "name": "سارة العتيبي",
            "phone": "+" + APPLICANT_NUMBER,
            "email": "sara@example.org",
        },
        "fields": {"planting_site": "وادي حنيفة", "seedling_count": "20"},
        "documents": [
            {"code": "national_id_card", "number": "1000000008", "expires_on": "2030-01-01"}
        ],
    }
    assert too_long not in text and "sara@example.org" not in text
    assert await whatsapp.cases() == []


async def test_a_structured_request_is_submitted_once_and_answered_once(
    whatsapp: Harness,
) -> None:
    message = text_message(seedlings_request())
    payload = notification(message)
    # Meta redelivers: twice at once, then again after the adapter restarted.
    first, second = await asyncio.gather(whatsapp.post(payload), whatsapp.post(payload))
    assert first.status_code == second.status_code == 200
    [sent] = await replies(whatsapp.graph, 1)
    await whatsapp.idle()
    del whatsapp.app.state.whatsapp
    del whatsapp.app.state.senders["social_media"]
    again = await whatsapp.post(payload)
    assert again.json()["taken"] == 1  # a fresh process takes it ...
    await whatsapp.idle()
    assert len(whatsapp.graph.messages()) == 1  # ... and sends no second reply
    [case] = await whatsapp.cases()
    assert case["channel"] == "social_media"
    assert case["channel_ref"] == message_ref(message["id"])
    text = sent.body["text"]["body"]
    assert case["case_ref"] in text
    assert REFERENCE.search(text) and CODE.search(text)
    assert "رقم الطلب" in text and "Reference" in text


async def test_the_status_question_is_answered_with_the_status_label(whatsapp: Harness) -> None:
    # A case created through intake first (the website's client), its code shown once.
    submission = {
        "association_id": "sidr",
        "channel": "website",
        "channel_ref": "form-77",
        "service_code": "seedlings",
        "applicant": {"national_id": "1000000016", "name": "Ali", "phone": "0500000016"},
        "fields": {"planting_site": "Wadi", "seedling_count": 20},
        "documents": [
            {"code": "national_id_card", "number": "1000000016", "expires_on": "2030-01-01"}
        ],
        "attestation": {"attested": True, "method": "one_time_code"},
    }
    opened = await whatsapp.intake.client.post(
        "/submissions", json=submission, headers=as_adapter(["website"])
    )
    assert opened.status_code == 201, opened.text
    reference, code = opened.json()["case_ref"], opened.json()["access_code"]
    await whatsapp.intake.settle()
    eastern = reference.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    status = await whatsapp.intake.client.get(
        f"/cases/{reference}/status", headers={"X-Case-Code": code}
    )
    label = status.json()["status_label"]
    await whatsapp.post(notification(text_message(f"حالة {eastern} {code.lower()}")))
    [right] = await replies(whatsapp.graph, 1)
    answer = right.body["text"]["body"]
    assert label["ar"] in answer and label["en"] in answer and reference in answer
    # A wrong code reads as no such request: no status.
    await whatsapp.post(notification(text_message(f"status {reference} AAAA-BBBB-CCCC")))
    wrong = (await replies(whatsapp.graph, 2))[1].body["text"]["body"]
    assert label["en"] not in wrong and label["ar"] not in wrong


async def test_every_message_of_a_batched_notification_is_answered(whatsapp: Harness) -> None:
    first, second = text_message("hello"), text_message("مرحبا", sender="966500000777")
    response = await whatsapp.post(notification(first, second))
    assert response.json() == {"received": 2, "taken": 2}
    found = await replies(whatsapp.graph, 2)
    assert sorted(m.body["to"] for m in found) == sorted([first["from"], second["from"]])


async def test_a_refused_reply_is_logged_and_the_adapter_goes_on(whatsapp: Harness) -> None:
    whatsapp.graph.access_token = "another-token"  # the operator's token was revoked
    await whatsapp.post(notification(text_message("hello")))
    await whatsapp.idle()
    [refused] = whatsapp.graph.messages()
    whatsapp.graph.access_token = ACCESS_TOKEN
    await whatsapp.post(notification(text_message("hello again")))
    found = await replies(whatsapp.graph, 2)
    assert refused.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert len(found) == 2


async def test_a_structured_request_for_no_such_service_lists_the_services(
    whatsapp: Harness,
) -> None:
    await whatsapp.post(notification(text_message("service: palm-trees\nname: x\nnational_id: 1")))
    [sent] = await replies(whatsapp.graph, 1)
    assert "seedlings" in sent.body["text"]["body"]
    await whatsapp.idle()
    assert await whatsapp.cases() == []


async def test_an_association_that_does_not_enable_whatsapp_is_not_served(
    whatsapp: Harness,
) -> None:
    packs = dict(whatsapp.app.state.packs)
    packs["sidr"] = packs["sidr"].model_copy(update={"channels": ["website", "interview"]})
    whatsapp.app.state.packs = packs
    await whatsapp.post(notification(text_message(seedlings_request())))
    [sent] = await replies(whatsapp.graph, 1)
    assert "لا تستقبل" in sent.body["text"]["body"]
    assert "does not take requests on WhatsApp" in sent.body["text"]["body"]
    await whatsapp.idle()
    assert await whatsapp.cases() == []


# Without the Cloud API's token: the logged outbox --------------------------------

SECRET_CODE = re.compile(r"\b[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}\b")


async def test_without_an_access_token_replies_go_to_the_logged_outbox(
    tmp_path: Path, in_process: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    intake = await in_process("intake")
    async with AsyncExitStack() as stack:
        app, client = await start_channels(tmp_path, intake, stack, monkeypatch, None)
        body, headers = signed(notification(text_message(seedlings_request())))
        response = await client.post("/whatsapp/webhook", content=body, headers=headers)
        assert response.status_code == 200
        await asyncio.wait_for(adapter_module.adapter(app).idle(), timeout=20)
    outbox = tmp_path / "channels" / "channels-outbox.jsonl"
    [line] = outbox.read_text(encoding="utf-8").splitlines()
    record = json.loads(line)
    assert record["channel"] == "social_media" and REFERENCE.search(record["text"])
    assert APPLICANT_NUMBER not in outbox.read_text(encoding="utf-8")
    # The secret code was in the reply, and is masked in the log: no credential kept.
    assert "Secret code: ••••" in record["text"] and "الرمز السري: ••••" in record["text"]
    assert not SECRET_CODE.search(outbox.read_text(encoding="utf-8"))
    assert outbox.stat().st_mode & 0o777 == 0o600


async def test_unconfigured_the_webhook_takes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """make run's channels service without WhatsApp settings starts, and its webhook
    refuses both the handshake and every notification."""
    for name in whatsapp_environment("http://unused.invalid"):
        monkeypatch.delenv(name, raising=False)
    settings = ChannelsSettings(
        data_dir=tmp_path / "channels",
        intake_url="http://intake.invalid",
        token_url="http://issuer.invalid/oauth/token",
    )
    MasterKeys.ensure(settings.master_key_path)
    ensure_key(settings.form_link_key_path)  # as the runner makes it on the first start
    app = build(settings)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://channels")
        )
        params = {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"}
        assert (await client.get("/whatsapp/webhook", params=params)).status_code == 403
        body, headers = signed(notification(text_message("hello")))
        refused = await client.post("/whatsapp/webhook", content=body, headers=headers)
        assert refused.status_code == 503
        assert refused.json()["error"] == "whatsapp_not_configured"
    assert not (tmp_path / "channels" / "channels-outbox.jsonl").exists()
