"""The privacy service's message handlers: one thin handler per consumed event."""

from __future__ import annotations

from eventsourcing.application import ProcessingEvent

from services.privacy.application import PrivacyApplication
from shared.consumer import Handler
from shared.events import CommitteeDecided, IntegrationEvent, RequestReceived, ServiceDelivered


def consumer_handlers(app: PrivacyApplication) -> dict[str, Handler]:
    def on_request_received(event: IntegrationEvent, processing: ProcessingEvent) -> None:
        assert isinstance(event, RequestReceived)
        app.on_request_received(event, processing)

    def on_committee_decided(event: IntegrationEvent, processing: ProcessingEvent) -> None:
        assert isinstance(event, CommitteeDecided)
        app.on_committee_decided(event, processing)

    def on_service_delivered(event: IntegrationEvent, processing: ProcessingEvent) -> None:
        assert isinstance(event, ServiceDelivered)
        app.on_service_delivered(event, processing)

    return {
        "RequestReceived": on_request_received,
        "CommitteeDecided": on_committee_decided,
        "ServiceDelivered": on_service_delivered,
    }
