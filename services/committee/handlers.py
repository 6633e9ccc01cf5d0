"""The committee's message handlers: events from the stream, each handed to the application."""

from __future__ import annotations

from eventsourcing.application import ProcessingEvent

from services.committee.application import CommitteeApplication
from shared.consumer import Handler
from shared.events import (
    DataVerified,
    IntegrationEvent,
    ReferredToResearcher,
    RequestReceived,
)


def consumer_handlers(app: CommitteeApplication) -> dict[str, Handler]:
    def on_request_received(event: IntegrationEvent, processing: ProcessingEvent) -> None:
        assert isinstance(event, RequestReceived)
        app.on_request_received(event, processing)

    def on_data_verified(event: IntegrationEvent, processing: ProcessingEvent) -> None:
        assert isinstance(event, DataVerified)
        app.on_data_verified(event, processing)

    def on_referred_to_researcher(event: IntegrationEvent, processing: ProcessingEvent) -> None:
        assert isinstance(event, ReferredToResearcher)
        app.on_referred_to_researcher(event, processing)

    return {
        "RequestReceived": on_request_received,
        "DataVerified": on_data_verified,
        "ReferredToResearcher": on_referred_to_researcher,
    }
