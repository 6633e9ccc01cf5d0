"""The testing-only fault injection of the tracking consumer: off unless asked for."""

from __future__ import annotations

import pytest

from shared import consumer as consumer_module
from shared.consumer import FAULT_EXIT_CODE, TrackingConsumer
from shared.settings import ServiceSettings

pytestmark = pytest.mark.unit


def consumer(exit_after_commit: str | None) -> TrackingConsumer:
    return TrackingConsumer(
        None, None, None,  # type: ignore[arg-type]  # only the fault point is exercised
        service="effects",
        handlers={},
        exit_after_commit=exit_after_commit,
    )


@pytest.fixture
def exits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    codes: list[int] = []
    monkeypatch.setattr(consumer_module.os, "_exit", codes.append)
    return codes


def test_the_fault_injection_is_off_unless_the_variable_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KHIDMA_FAULT_EXIT_AFTER_COMMIT", raising=False)
    assert ServiceSettings(nats_url="nats://unused").fault_exit_after_commit is None
    monkeypatch.setenv("KHIDMA_FAULT_EXIT_AFTER_COMMIT", "RequestReceived")
    assert ServiceSettings(nats_url="nats://unused").fault_exit_after_commit == "RequestReceived"


def test_the_process_exits_after_the_commit_of_the_named_event_type_only(
    exits: list[int],
) -> None:
    injected = consumer("RequestReceived")
    injected._exit_if_injected("DataVerified", 1)
    assert exits == []
    injected._exit_if_injected("RequestReceived", 2)
    assert exits == [FAULT_EXIT_CODE]


def test_any_makes_the_process_exit_after_the_commit_of_every_event_type(
    exits: list[int],
) -> None:
    consumer("any")._exit_if_injected("DataVerified", 1)
    assert exits == [FAULT_EXIT_CODE]
