"""The WhatsApp Business adapter (channel `social_media`): the Cloud API's webhook.

- `GET /whatsapp/webhook`: Meta's verification handshake (`hub.mode=subscribe`,
  `hub.verify_token`, answered with `hub.challenge` as plain text; else 403).
- `POST /whatsapp/webhook`: a notification, taken only when `X-Hub-Signature-256`
  is the app secret's HMAC-SHA256 of the raw body (401 otherwise, 400 for a body
  that is not a notification; nothing is recorded either way). It is answered 200 at
  once and its messages are processed afterwards, each once: the wamid is the
  submission's `channel_ref`, and the reply's `message_id` is derived from it, so a
  redelivered notification opens no second case and sends no second reply.

Which association: the number the message was sent to (`value.metadata.
phone_number_id`), by `KHIDMA_WHATSAPP_NUMBERS`, where its pack enables
`social_media`. What is answered: `services.channels.whatsapp.conversation`.
Replies go to the Cloud API when `KHIDMA_WHATSAPP_ACCESS_TOKEN` is set, else to the
logged outbox. Nothing of a message (number, text) is kept or logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from opentelemetry.trace import SpanKind

from services.channels.intake import IntakeRefused
from services.channels.main import enabled, sender_of
from services.channels.outbound import Reply
from services.channels.whatsapp import conversation
from services.channels.whatsapp.cloud_api import CloudApiSender
from services.channels.whatsapp.conversation import CHANNEL, Unusable
from services.channels.whatsapp.settings import WhatsAppSettings, load_whatsapp_settings
from services.channels.whatsapp.webhook import (
    SIGNATURE_HEADER,
    Inbound,
    MalformedNotification,
    messages_of,
    signature_holds,
)
from shared import tracing
from shared.errors import Refused

log = logging.getLogger(__name__)

router = APIRouter(prefix="/whatsapp", tags=["whatsapp"])

SENT_FILE = "whatsapp-sent.txt"
# How many recent messages this process remembers having taken (a redelivery of an
# older one is still one case, by intake, and one reply, by the sender).
REMEMBERED = 10_000


def reply_id(wamid: str) -> str:
    """The reply's `message_id`: derived from the applicant's wamid (which encodes
    their number), so it is the same on a redelivery and names nobody."""
    return "whatsapp-" + hashlib.sha256(wamid.encode("utf-8")).hexdigest()[:40]


@dataclass
class WhatsAppAdapter:
    app: FastAPI
    settings: WhatsAppSettings
    taken: OrderedDict[str, None] = field(default_factory=OrderedDict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def take(self, message: Inbound) -> bool:
        """Starts processing a message unless this process has already taken it."""
        key = reply_id(message.wamid)
        if key in self.taken:
            return False
        self.taken[key] = None
        while len(self.taken) > REMEMBERED:
            self.taken.popitem(last=False)
        task = asyncio.create_task(self.process(message), name="whatsapp message")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    async def idle(self) -> None:
        """Returns once every message taken so far is processed (tests, shutdown)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def process(self, message: Inbound) -> None:
        # Answered after its webhook: a trace of its own, the case's when it asks intake.
        with tracing.request_span("answer WhatsApp message", None, kind=SpanKind.INTERNAL):
            await self._process(message)

    async def _process(self, message: Inbound) -> None:
        association_id = self.settings.numbers.get(message.phone_number_id)
        if association_id is None:
            log.warning(
                "a WhatsApp message to a number no association is configured for",
                extra={"phone_number_id": message.phone_number_id},
            )
            return
        try:
            text, case_ref, secret = await self.answer(association_id, message)
        except (Refused, OSError) as error:  # intake or the issuer unreachable
            log.warning(
                "a WhatsApp message could not be processed",
                extra={"association_id": association_id, "problem": type(error).__name__},
            )
            # Forgotten, and answered under an id of its own: a redelivery processed
            # later still gets its real answer.
            self.taken.pop(reply_id(message.wamid), None)
            text, case_ref, secret = conversation.unavailable(), None, None
            message_id = reply_id(message.wamid + ":unavailable")
        else:
            message_id = reply_id(message.wamid)
        reply = Reply(
            channel=CHANNEL,
            association_id=association_id,
            to=message.sender,
            text=text,
            message_id=message_id,
            case_ref=case_ref,
            extra={"phone_number_id": message.phone_number_id},
            secret=secret,
        )
        try:
            await sender_of(self.app, CHANNEL).send(reply)
        except Exception as error:  # noqa: BLE001 - logged without the reply's contents
            log.warning(
                "a WhatsApp reply could not be sent",
                extra={"message_id": reply.message_id, "problem": type(error).__name__},
            )
            return
        log.info(
            "WhatsApp message answered",
            extra={"association_id": association_id, "message_id": reply.message_id},
        )

    async def answer(
        self, association_id: str, message: Inbound
    ) -> tuple[str, str | None, str | None]:
        """The reply's text, the case it is about, and the secret code it carries."""
        pack = self.app.state.packs.get(association_id)
        if pack is None or not enabled(self.app, association_id, CHANNEL):
            return conversation.not_served(pack), None, None
        intake = self.app.state.intake
        question = conversation.status_question(message.text)
        if question is not None:
            try:
                view = await intake.status(*question)
            except IntakeRefused as refusal:
                if refusal.status >= 500:
                    raise
                return conversation.refusal(refusal.ar, refusal.en), None, None
            reference = str(view.get("case_ref") or question[0])
            return conversation.status_answer(view), reference, None
        lines = conversation.structured(message.text)
        if lines is None:
            links = self.app.state.form_links
            return conversation.menu(pack, links, message.sender), None, None
        try:
            body = conversation.submission(pack, lines, wamid=message.wamid, sender=message.sender)
            answer: dict[str, Any] = await intake.submit(body)
        except Unusable as unusable:
            if unusable.body is not None:
                links = self.app.state.form_links
                return conversation.refused(pack, unusable.body, unusable, links), None, None
            return conversation.refusal(unusable.ar, unusable.en), None, None
        except IntakeRefused as refusal:
            if refusal.status >= 500:
                raise
            return conversation.refused(pack, body, refusal, self.app.state.form_links), None, None
        code = answer.get("access_code")
        return (
            conversation.confirmation(answer),
            str(answer["case_ref"]),
            str(code) if code else None,
        )


def adapter(app: FastAPI) -> WhatsAppAdapter:
    """The app's adapter, made on first use from the settings (a wrong setting stops
    the service at start: `run` makes it first)."""
    found: WhatsAppAdapter | None = getattr(app.state, "whatsapp", None)
    if found is None:
        settings = load_whatsapp_settings(app.state.packs)
        found = WhatsAppAdapter(app, settings)
        app.state.whatsapp = found
        if settings.sends:
            app.state.senders[CHANNEL] = CloudApiSender(
                settings.api_base_url,
                settings.api_version,
                settings.access_token.get_secret_value(),
                app.state.client,
                app.state.settings.data_dir / SENT_FILE,
            )
    return found


async def run(app: FastAPI) -> None:
    """Reads the settings at start (and stops the service if they are wrong); on
    shutdown, lets the messages already taken finish."""
    whatsapp = adapter(app)
    log.info(
        "WhatsApp adapter",
        extra={
            "receives": whatsapp.settings.receives,
            "sends": "cloud_api" if whatsapp.settings.sends else "logged_outbox",
            "numbers": len(whatsapp.settings.numbers),
        },
    )
    try:
        await asyncio.Event().wait()
    finally:
        for task in list(whatsapp.tasks):
            task.cancel()


def _refused(status: int, code: str, en: str, ar: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": {"en": en, "ar": ar}}, status_code=status)


def _answers(*statuses: int) -> dict[int | str, dict[str, Any]]:
    words = {
        400: "The body is not a Cloud API notification.",
        401: "X-Hub-Signature-256 is missing or wrong.",
        403: "The verify token does not match.",
        503: "WhatsApp is not configured here: Meta retries its notifications.",
    }
    return {status: {"description": words[status]} for status in statuses}


@router.get(
    "/webhook",
    response_model=None,
    responses={200: {"content": {"text/plain": {}}}, **_answers(403)},
)
async def verify(request: Request) -> Response:
    """Meta's handshake: the challenge back, as plain text, to the right token."""
    settings = adapter(request.app).settings
    params = request.query_params
    expected = settings.verify_token.get_secret_value()
    given = params.get("hub.verify_token", "")
    challenge = params.get("hub.challenge", "")
    if (
        params.get("hub.mode") == "subscribe"
        and expected
        and challenge
        and hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
    ):
        return PlainTextResponse(challenge)
    return _refused(
        403,
        "whatsapp_verification_refused",
        "The webhook's verify token does not match.",
        "رمز التحقق من عنوان الاستقبال غير مطابق.",
    )


@router.post("/webhook", response_model=None, responses=_answers(400, 401, 503))
async def receive(request: Request) -> Response:
    """A notification of the Cloud API: verified, answered at once, processed after."""
    whatsapp = adapter(request.app)
    secret = whatsapp.settings.app_secret.get_secret_value()
    if not secret:
        return _refused(
            503,
            "whatsapp_not_configured",
            "WhatsApp is not configured here (KHIDMA_WHATSAPP_APP_SECRET).",
            "لم يُضبط واتساب في هذا النظام (KHIDMA_WHATSAPP_APP_SECRET).",
        )
    body = await request.body()
    if not signature_holds(body, request.headers.get(SIGNATURE_HEADER), secret):
        return _refused(
            401,
            "whatsapp_signature_refused",
            "The notification's X-Hub-Signature-256 is missing or wrong.",
            "توقيع الإشعار (X-Hub-Signature-256) مفقود أو غير صحيح.",
        )
    try:
        messages = messages_of(json.loads(body))
    except (ValueError, MalformedNotification):
        return _refused(
            400,
            "whatsapp_malformed_notification",
            "The body is not a WhatsApp Cloud API notification.",
            "المحتوى ليس إشعارًا من واجهة واتساب السحابية.",
        )
    taken = sum(1 for message in messages if whatsapp.take(message))
    return JSONResponse({"received": len(messages), "taken": taken})
