"""The init step declares each service's durable consumer as the service itself would."""

from __future__ import annotations

import importlib

import pytest

from shared.consumer import TrackingConsumer
from shared.stream import SERVICES, inbox_prefix, service_durables

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("service", SERVICES)
def test_the_init_step_declares_the_durable_each_service_consumes_with(service: str) -> None:
    module = importlib.import_module(f"services.{service}.handlers")
    # The handlers only close over the application; their names are what counts.
    handlers = module.consumer_handlers(None)
    # A service that holds cases (intake) also reads every service's dead letters.
    watcher = getattr(module, "dead_letter_handler", None)
    as_the_service_would = TrackingConsumer(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        service=service,
        handlers=handlers,
        on_dead_letter=watcher(None) if watcher else None,
    ).consumer_config()
    assert service_durables()[service] == as_the_service_would


def test_each_service_has_its_own_inbox_prefix() -> None:
    prefixes = {inbox_prefix(service) for service in SERVICES}
    assert len(prefixes) == len(SERVICES)
    assert all(p.startswith("_INBOX_") and "." not in p for p in prefixes)
