"""A local SMTP relay that keeps what it is given: aiosmtpd's server on a free port,
speaking real SMTP, standing in for an association's mail relay.

    with FakeSmtpRelay() as relay:
        ... KHIDMA_LETTERS_RELAY_HOST=relay.host, KHIDMA_LETTERS_RELAY_PORT=relay.port
        message = relay.wait_for(lambda m: "SDR-" in m["Subject"])
"""

from __future__ import annotations

import email
import threading
import time
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from typing import Any, Self

from aiosmtpd.controller import Controller

from khidma.nats_server import free_port


class _Keeper:
    def __init__(self, relay: FakeSmtpRelay):
        self.relay = relay

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self.relay.lock:
            self.relay.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.relay.messages.append(message)
        return "250 OK"


class FakeSmtpRelay:
    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.lock = threading.Lock()
        self.controller = Controller(_Keeper(self), hostname=self.host, port=self.port)

    def __enter__(self) -> Self:
        self.controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.controller.stop()

    def received(self) -> list[EmailMessage]:
        with self.lock:
            return list(self.messages)

    def wait_for(
        self, condition: Callable[[EmailMessage], bool], timeout: float = 20.0
    ) -> EmailMessage:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.received():
                if condition(message):
                    return message
            time.sleep(0.05)
        raise AssertionError(
            f"the relay received no such message in {timeout}s; it has {len(self.received())}"
        )
