"""The init step declares each service's durable consumer as the service itself would."""

from __future__ import annotations

import importlib

import pytest

from shared.consumer import TrackingConsumer
from shared.stream import SERVICES, inbox_prefix, service_durables

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("service", SERVICES)
def test_the_init_step_declares_the_durable_each_service_consumes_with(service: str) -> None:
    handlers = importlib.import_module(f"services.{service}.handlers").consumer_handlers(
        None  # the handlers only close over the application; their names are what counts
    )
    as_the_service_would = TrackingConsumer(
        None, None, None, service=service, handlers=handlers  # type: ignore[arg-type]
    ).consumer_config()
    assert service_durables()[service] == as_the_service_would


def test_each_service_has_its_own_inbox_prefix() -> None:
    prefixes = {inbox_prefix(service) for service in SERVICES}
    assert len(prefixes) == len(SERVICES)
    assert all(p.startswith("_INBOX_") and "." not in p for p in prefixes)
