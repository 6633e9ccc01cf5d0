"""Letters end to end: a real SMTP client (smtplib) sends .eml files to the adapter's
aiosmtpd endpoint in a real channels app, the request reaches a real intake (in
process), and the reply is captured by a local SMTP relay (aiosmtpd)."""

from __future__ import annotations

import asyncio
import json
import re
import smtplib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from khidma.nats_server import free_port
from services.channels.intake import IntakeGateway
from services.channels.main import build
from services.channels.settings import ChannelsSettings
from shared.roles import channel_role
from tests.auth import ISSUER, as_staff
from tests.fakes.smtp_relay import FakeSmtpRelay
from tests.helpers import async_wait_for
from tests.in_process import InProcessService
from tests.personal_data import assert_no_plaintext

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "letters"
SIDR = "letters@sidr.example.org"
CASE_REF = re.compile(r"SDR-\d{4}-\d+")
# What the fixtures' applicants wrote: none of it may rest in plain under the data folder.
PERSONAL = [
    "1000000008",
    "عبدالله بن سعيد القحطاني",
    "abdullah.q@example.sa",
    "0500000001",
    "1000000016",
    "Fatimah Al-Harbi",
    "fatimah.h@example.com",
    "+966500000002",
    "sender@example.net",
]


class AdapterToken:
    """The letter channel's machine client token, signed by the tests' issuer."""

    async def get(self) -> str:
        roles = {"sidr": [channel_role("letter")]}
        return ISSUER.token("adapter-letter", roles, kind="machine")


@dataclass
class Running:
    app: FastAPI
    intake: InProcessService
    relay: FakeSmtpRelay
    smtp_port: int
    data_dir: Path

    async def send(self, raw: bytes, sender: str, to: str = SIDR) -> None:
        """Hands the letter over as a mail server would (in a thread: the endpoint
        runs on this test's loop)."""

        def deliver() -> None:
            with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=30) as smtp:
                smtp.sendmail(sender, [to], raw)

        await asyncio.to_thread(deliver)

    async def reply(self, condition: Any) -> EmailMessage:
        return await asyncio.to_thread(self.relay.wait_for, condition)

    async def cases(self) -> list[dict[str, Any]]:
        await self.intake.settle()
        response = await self.intake.client.get(
            "/cases", params={"association_id": "sidr"}, headers=as_staff()
        )
        assert response.status_code == 200, response.text
        cases: list[dict[str, Any]] = response.json()
        return cases


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


async def listening(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


@pytest.fixture
async def running(
    in_process: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Running]:
    intake: InProcessService = await in_process("intake")
    smtp_port = free_port()
    with FakeSmtpRelay() as relay:
        monkeypatch.setenv("KHIDMA_LETTERS_SMTP_PORT", str(smtp_port))
        monkeypatch.setenv("KHIDMA_LETTERS_ADDRESSES", json.dumps({SIDR: "sidr"}))
        monkeypatch.setenv("KHIDMA_LETTERS_RELAY_HOST", relay.host)
        monkeypatch.setenv("KHIDMA_LETTERS_RELAY_PORT", str(relay.port))
        settings = ChannelsSettings(
            intake_url="http://intake",
            token_url="http://issuer.invalid/oauth/token",
            data_dir=tmp_path / "channels",
            # The system's one keyring (the outbox's blind index of the addresses).
            master_key_file=tmp_path / "intake" / "master-key.json",
            keyring_file=tmp_path / "intake" / "subject-keys.sqlite",
        )
        app = build(settings)
        app.state.intake = IntakeGateway("http://intake", {"letter": AdapterToken()}, intake.client)  # type: ignore[dict-item]
        async with app.router.lifespan_context(app):
            await async_wait_for(lambda: listening(smtp_port), what="the SMTP endpoint")
            yield Running(app, intake, relay, smtp_port, tmp_path)


async def test_a_mailed_letter_opens_a_case_and_the_reply_carries_its_reference(running):
    raw = fixture("seedlings_arabic_pdf.eml")
    await running.send(raw, "abdullah.q@example.sa")
    reply = await running.reply(lambda m: m["To"] == "abdullah.q@example.sa")

    message_id = "<5d0c2a8e-7f3b-4e1c-9a51-2b6f0e1d3c44@example.sa>"
    assert reply["In-Reply-To"] == message_id
    assert reply["References"] == message_id
    assert reply["From"] == SIDR
    assert reply["Auto-Submitted"] == "auto-replied"
    text = reply.get_content()
    ref = CASE_REF.search(text)
    assert ref, text
    assert ref.group(0) in reply["Subject"] and "طلب شتلات" in reply["Subject"]
    assert "وصل طلبك" in text and "Your request was received" in text
    code = re.search(r"Your secret code to follow the request: (\S+)", text)
    assert code, text

    [case] = await running.cases()
    assert case["case_ref"] == ref.group(0)
    assert case["service_code"] == "seedlings"
    assert case["status"] == "received", case  # fields, the PDF as its document, the declaration
    # The applicant's "where is my request?" answers with the code the letter gave.
    status = await running.intake.client.get(
        f"/cases/{ref.group(0)}/status", headers={"X-Case-Code": code.group(1)}
    )
    assert status.status_code == 200, status.text

    # The same letter again (a retried delivery): one case, no second reply.
    await running.send(raw, "abdullah.q@example.sa")
    letters = running.app.state.letters
    await async_wait_for(
        lambda: asyncio.sleep(0, result=len(letters.outcomes) == 2), what="the second letter"
    )
    assert list(letters.outcomes) == [f"submitted {ref.group(0)}", f"duplicate {ref.group(0)}"]
    assert len(await running.cases()) == 1
    assert len(running.relay.received()) == 1


async def test_an_html_letter_with_a_jpeg_is_submitted_too(running):
    await running.send(fixture("seedlings_html_jpeg.eml"), "fatimah.h@example.com")
    reply = await running.reply(lambda m: m["To"] == "fatimah.h@example.com")
    assert reply["In-Reply-To"] == "<CAFx7Jr2Q+9v0kq1mZ=8hP3fJtT4dX0w@mail.example.com>"
    assert CASE_REF.search(reply.get_content())
    [case] = await running.cases()
    file = await running.intake.client.get(f"/cases/{case['case_ref']}/file", headers=as_staff())
    assert file.status_code == 200, file.text
    assert "هوية.jpg" in file.text  # the document names the file; its bytes went nowhere


async def test_an_unreadable_letter_is_told_what_to_send_and_nothing_is_recorded(running):
    await running.send(fixture("no_service_arabic.eml"), "sender@example.net")
    reply = await running.reply(lambda m: m["To"] == "sender@example.net")
    assert reply["In-Reply-To"] == "<no-service-1448@example.net>"
    text = reply.get_content()
    assert "لم تذكر الرسالة الخدمة المطلوبة" in text and "The letter names no service" in text
    assert "الخدمة:" in text and "Service:" in text and "National ID:" in text
    assert "طلب شتلات أشجار برية" in text and "Wild tree seedlings" in text
    assert await running.cases() == []


async def test_mail_that_is_no_letter_is_answered_from_its_envelope(running):
    await running.send(b"\x00\x01 this is not mail", "someone@example.org")
    reply = await running.reply(lambda m: m["To"] == "someone@example.org")
    assert "تعذّرت قراءة رسالتك" in reply.get_content()
    assert "Service:" in reply.get_content()
    assert await running.cases() == []


async def test_an_address_of_no_association_is_refused_at_the_envelope(running):
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        await running.send(fixture("seedlings_arabic_pdf.eml"), "a@example.sa", "x@nowhere.org")
    assert await running.cases() == []
    assert running.relay.received() == []


async def test_no_plaintext_personal_data_rests_under_the_data_folder(running):
    await running.send(fixture("seedlings_arabic_pdf.eml"), "abdullah.q@example.sa")
    await running.send(fixture("seedlings_html_jpeg.eml"), "fatimah.h@example.com")
    await running.send(fixture("no_service_arabic.eml"), "sender@example.net")
    await async_wait_for(
        lambda: asyncio.sleep(0, result=len(running.relay.received()) == 3), what="three replies"
    )
    assert len(await running.cases()) == 2
    assert_no_plaintext(running.data_dir, PERSONAL)


async def test_a_letter_intake_cannot_take_now_is_answered_451_for_the_sender_to_retry(running):
    import httpx

    async with httpx.AsyncClient(timeout=5) as client:
        down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        running.app.state.intake = IntakeGateway(down, {"letter": AdapterToken()}, client)  # type: ignore[dict-item]
        with pytest.raises(smtplib.SMTPDataError) as raised:
            await running.send(fixture("seedlings_arabic_pdf.eml"), "abdullah.q@example.sa")
    assert raised.value.smtp_code == 451
    assert running.relay.received() == []
    assert await running.cases() == []
