"""Intake's message handlers: events from the stream, submissions on request/reply."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from eventsourcing.application import ProcessingEvent
from faststream.nats import NatsBroker, NatsMessage
from pydantic import ValidationError

from services.intake.application import IntakeApplication
from shared.consumer import Handler
from shared.errors import Refused
from shared.events import CommitteeDecided, DataVerified, IntegrationEvent
from shared.store import StoreRunner
from shared.subjects import SUBMISSIONS_WILDCARD
from shared.submissions import Submission, SubmissionBody

log = logging.getLogger(__name__)


def consumer_handlers(app: IntakeApplication) -> dict[str, Handler]:
    def on_data_verified(event: IntegrationEvent, processing: ProcessingEvent) -> None:
        assert isinstance(event, DataVerified)
        app.on_data_verified(event, processing)

    def on_committee_decided(event: IntegrationEvent, processing: ProcessingEvent) -> None:
        assert isinstance(event, CommitteeDecided)
        app.on_committee_decided(event, processing)

    return {"DataVerified": on_data_verified, "CommitteeDecided": on_committee_decided}


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


def register_submission_subscriber(
    broker: NatsBroker,
    app: IntakeApplication,
    store: StoreRunner,
    recorded: Callable[[], None],
) -> None:
    """Adapters submit on `khidma.submissions.<association_id>.<channel>` and wait for the reply."""

    @broker.subscriber(SUBMISSIONS_WILDCARD, queue="intake")
    async def on_submission(message: NatsMessage) -> dict[str, Any]:
        _, _, association_id, channel = message.raw_message.subject.split(".")
        try:
            body = SubmissionBody.model_validate_json(message.body)
            submission = Submission(
                association_id=association_id, channel=channel, **body.model_dump()
            )
        except ValidationError as error:
            return invalid_reply(
                [
                    {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]}
                    for e in error.errors()
                ]
            )
        except (ValueError, TypeError):
            return invalid_reply([{"field": "(body)", "problem": "not a JSON object"}])
        actor = {"kind": "adapter", "id": f"nats:{channel}"}
        try:
            result = await store.run(app.submit, submission, actor)
        except Refused as refused:
            # Unknown association, channel not enabled, service not in the catalogue.
            return {"ok": False, **refused.as_dict()}
        recorded()
        return {"ok": True, **result.as_dict()}
