"""Intake's message handlers: events from the stream, submissions on request/reply."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from eventsourcing.application import ProcessingEvent
from faststream import Response
from faststream.message import StreamMessage
from faststream.nats import NatsBroker, NatsMessage
from pydantic import ValidationError

from services.intake.access import submitting_role
from services.intake.application import IntakeApplication
from services.intake.submitting import SubmissionGroup, submit_through
from shared import tracing
from shared.auth import AuthRefused, AuthUnavailable, Forbidden, Principal, Verifier, token_missing
from shared.consumer import DeadLetterHandler, Handler
from shared.dead_letter import DeadLetter
from shared.errors import Refused
from shared.events import CommitteeDecided, DataVerified, IntegrationEvent
from shared.inputs import printable
from shared.subjects import SUBMISSIONS_WILDCARD
from shared.submissions import Submission, SubmissionBody

log = logging.getLogger(__name__)

# How many submission messages are handled at once (each waits for its batch's commit).
SUBMISSION_WORKERS = 128


def consumer_handlers(app: IntakeApplication) -> dict[str, Handler]:
    def on_data_verified(event: IntegrationEvent, processing: ProcessingEvent) -> None:
        assert isinstance(event, DataVerified)
        app.on_data_verified(event, processing)

    def on_committee_decided(event: IntegrationEvent, processing: ProcessingEvent) -> None:
        assert isinstance(event, CommitteeDecided)
        app.on_committee_decided(event, processing)

    return {"DataVerified": on_data_verified, "CommitteeDecided": on_committee_decided}


def dead_letter_handler(app: IntakeApplication) -> DeadLetterHandler:
    """Every service's dead letters and replay notices: they hold and release cases."""

    def on_dead_letter(notice: DeadLetter, processing: ProcessingEvent) -> None:
        app.on_dead_letter(notice, processing)

    return on_dead_letter


def invalid_reply(problems: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "ok": False,
        "error": "invalid_submission",
        "message": {
            "en": "The submission is not valid; see the problems listed.",
            "ar": "الطلب المقدم غير صالح؛ راجع المشكلات المذكورة.",
        },
        "problems": problems,
    }


def refused_reply(refusal: AuthRefused) -> dict[str, Any]:
    """The caller refused, as over HTTP: `refused` says which way (as 401, 403, 503 would)."""
    if isinstance(refusal, Forbidden):
        kind = "forbidden"
    elif isinstance(refusal, AuthUnavailable):
        kind = "unavailable"
    else:
        kind = "unauthenticated"
    return {"ok": False, "refused": kind, **refusal.as_dict()}


def bearer_token(headers: dict[str, Any] | None) -> str | None:
    """The token of the message's `Authorization: Bearer …` header, if any."""
    headers = headers or {}
    value = headers.get("Authorization") or headers.get("authorization")
    if not isinstance(value, str):
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authenticated_submitter(verifier: Verifier, headers: dict[str, Any] | None) -> Principal:
    """The adapter (or front-desk officer) behind a submission message, from the
    bearer token in its `Authorization` header; refused as over HTTP."""
    token = bearer_token(headers)
    if token is None:
        raise token_missing()
    return await verifier.verify(token)


def register_submission_subscriber(
    broker: NatsBroker,
    app: IntakeApplication,
    submissions: SubmissionGroup,
    recorded: Callable[[], None],
    verifier: Verifier,
) -> None:
    """Adapters submit on `khidma.submissions.<association_id>.<channel>` and wait for the reply.

    The adapter sends its bearer token in the message header `Authorization`,
    verified as the HTTP edge verifies it (the same `Verifier`): without a valid
    one, or without the channel's role (or the front desk's) in the association,
    the reply is a bilingual refusal and nothing is recorded.

    Messages are handled concurrently (up to SUBMISSION_WORKERS at a time), so that
    those arriving together are recorded together (the group commit).
    """

    # The body is decoded here, not by faststream: its decoder gives up on a body no
    # JSON parser should follow (nested 20,000 deep, an integer of 5,000 digits) with
    # an exception that leaves the adapter without any reply.
    @broker.subscriber(
        SUBMISSIONS_WILDCARD,
        queue="intake",
        decoder=_body_as_sent,
        max_workers=SUBMISSION_WORKERS,
    )
    async def on_submission(message: NatsMessage) -> Response:
        # One trace with the case it opens, as over HTTP (shared/tracing.py).
        subject = {"messaging.destination.name": message.raw_message.subject}
        with tracing.request_span(f"submit {SUBMISSIONS_WILDCARD}", None, subject):
            try:
                reply = await _answer(message, app, submissions, recorded, verifier)
            except Exception:
                log.exception("a submission could not be processed")
                reply = failed_reply()
        return Response(reply_bytes(reply), headers={"content-type": "application/json"})


def _body_as_sent(message: StreamMessage[Any]) -> Any:
    return message.body


def reply_bytes(reply: dict[str, Any]) -> bytes:
    """The reply as UTF-8 JSON, whatever text of the submission it repeats."""
    return json.dumps(printable(reply), ensure_ascii=False).encode("utf-8")


def failed_reply() -> dict[str, Any]:
    return {
        "ok": False,
        "error": "submission_failed",
        "message": {
            "en": "The submission could not be processed; nothing was recorded. Try again later.",
            "ar": "تعذّرت معالجة الطلب المقدم ولم يُسجَّل شيء؛ حاول مرة أخرى لاحقًا.",
        },
    }


def _submission(association_id: str, channel: str, body: bytes) -> Submission | dict[str, Any]:
    """The submission the message carries, or the reply that refuses it."""
    try:
        parsed = SubmissionBody.model_validate_json(body)
        return Submission(association_id=association_id, channel=channel, **parsed.model_dump())
    except ValidationError as error:
        return invalid_reply(
            [
                {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "problem": e["msg"]}
                for e in error.errors()
            ]
        )
    except (ValueError, TypeError):
        return invalid_reply([{"field": "(body)", "problem": "not a JSON object"}])


async def _answer(
    message: NatsMessage,
    app: IntakeApplication,
    submissions: SubmissionGroup,
    recorded: Callable[[], None],
    verifier: Verifier,
) -> dict[str, Any]:
    _, _, association_id, channel = message.raw_message.subject.split(".")
    try:
        principal = await authenticated_submitter(verifier, message.headers)
        # What the association serves is public: refused first, as over HTTP.
        app.check_channel(association_id, channel)
        role = submitting_role(principal, association_id, channel)
    except AuthRefused as refusal:
        return refused_reply(refusal)
    except Refused as refused:
        return {"ok": False, **refused.as_dict()}
    submission = _submission(association_id, channel, message.body)
    if isinstance(submission, dict):
        return submission
    try:
        result = await submit_through(submissions, submission, principal.actor(role))
    except Refused as refused:
        # Unknown association, channel not enabled, service not in the catalogue,
        # fields the service does not take.
        return {"ok": False, **refused.as_dict()}
    recorded()
    return {"ok": True, **result.as_dict()}
