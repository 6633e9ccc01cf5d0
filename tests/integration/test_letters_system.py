"""Letters in the whole system as make run starts it: the channels service as its own
process with its `adapter-letter` client from the identity service, intake and the
rest behind it, a real SMTP client sending, the fake relay receiving the reply, and
nothing personal in plain in the data folder (stores, outboxes, every service's log)."""

from __future__ import annotations

import json
import re
import smtplib
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from khidma.nats_server import free_port
from khidma.run import EmbeddedSystem
from tests.auth import as_staff
from tests.fakes.smtp_relay import FakeSmtpRelay
from tests.helpers import wait_for
from tests.personal_data import assert_no_plaintext

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "letters"
SIDR = "letters@sidr.example.org"


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def relay() -> Iterator[FakeSmtpRelay]:
    with FakeSmtpRelay() as running:
        yield running


def test_a_letter_through_the_running_system(
    tmp_path_factory: pytest.TempPathFactory, relay: FakeSmtpRelay
):
    data_dir = tmp_path_factory.mktemp("khidma-letters")
    smtp_port = free_port()
    environment = {
        "KHIDMA_LETTERS_SMTP_PORT": str(smtp_port),
        "KHIDMA_LETTERS_ADDRESSES": json.dumps({SIDR: "sidr"}),
        "KHIDMA_LETTERS_RELAY_HOST": relay.host,
        "KHIDMA_LETTERS_RELAY_PORT": str(relay.port),
    }
    with EmbeddedSystem(data_dir, fixed_ports=False, service_env=environment) as system:
        wait_for(lambda: listening(smtp_port), timeout=30, what="the letters' SMTP endpoint")
        raw = (FIXTURES / "seedlings_arabic_pdf.eml").read_bytes()
        for _ in range(2):  # a retried delivery is the same letter
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=60) as smtp:
                smtp.sendmail("abdullah.q@example.sa", [SIDR], raw)
        reply = relay.wait_for(lambda m: m["To"] == "abdullah.q@example.sa", timeout=30)
        assert reply["In-Reply-To"] == "<5d0c2a8e-7f3b-4e1c-9a51-2b6f0e1d3c44@example.sa>"
        ref = re.search(r"SDR-\d{4}-\d+", reply.get_content())
        assert ref, reply.get_content()

        intake = system.services["intake"].url

        def cases() -> list[dict[str, str]]:
            response = httpx.get(
                f"{intake}/cases", params={"association_id": "sidr"}, headers=as_staff()
            )
            response.raise_for_status()
            found: list[dict[str, str]] = response.json()
            return found

        found = wait_for(cases, timeout=20, what="the case in intake's read model")
        assert [c["case_ref"] for c in found] == [ref.group(0)]
        assert found[0]["channel"] == "letter"
        assert len(relay.received()) == 1
    assert_no_plaintext(
        data_dir, ["1000000008", "عبدالله بن سعيد القحطاني", "abdullah.q@example.sa", "0500000001"]
    )
