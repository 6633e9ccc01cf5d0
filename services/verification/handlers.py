"""Verification's message handlers: the events it consumes from the stream."""

from __future__ import annotations

from eventsourcing.application import ProcessingEvent

from services.verification.application import VerificationApplication
from shared.consumer import Handler
from shared.events import IntegrationEvent, RequestReceived


def consumer_handlers(app: VerificationApplication) -> dict[str, Handler]:
    def on_request_received(event: IntegrationEvent, processing: ProcessingEvent) -> None:
        assert isinstance(event, RequestReceived)
        app.on_request_received(event, processing)

    return {"RequestReceived": on_request_received}
