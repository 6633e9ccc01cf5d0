"""What the adapter does with a letter, against stand-ins for intake and the sender:
refusals answered in both languages, intake's outage left for a retry, no reply to
automatic mail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from khidma.nats_server import free_port
from services.channels.adapters.letters import Letters, LettersSettings, RelaySender, TryLater
from services.channels.intake import IntakeRefused
from services.channels.outbound import Reply
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "letters"
SIDR = "letters@sidr.example.org"


class Intake:
    def __init__(self, answer: Any = None, channels: tuple[str, ...] = ("letter",)):
        self.answer = answer
        self.channels = channels
        self.submitted: list[dict[str, Any]] = []

    def serves(self, channel: str) -> bool:
        return channel in self.channels

    async def submit(self, submission: dict[str, Any]) -> dict[str, Any]:
        self.submitted.append(submission)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return dict(self.answer)


class Sent:
    def __init__(self) -> None:
        self.replies: list[Reply] = []

    async def send(self, reply: Reply) -> None:
        self.replies.append(reply)


def letters(intake: Intake) -> tuple[Letters, Sent]:
    app = FastAPI()
    sent = Sent()
    app.state.packs = load_packs(DEFAULT_POLICIES_DIR)
    app.state.intake = intake
    app.state.senders = {"letter": sent}
    return Letters(app, LettersSettings(addresses={SIDR: "sidr"})), sent


LETTER = (FIXTURES / "seedlings_arabic_pdf.eml").read_bytes()


async def test_intake_s_refusal_is_answered_in_both_languages():
    refusal = IntakeRefused(
        422, "invalid_request", "The phone is not valid.", "رقم الجوال غير صحيح."
    )
    handler, sent = letters(Intake(refusal))
    assert await handler.handle(LETTER) == "refused"
    [reply] = sent.replies
    assert "The phone is not valid." in reply.text and "رقم الجوال غير صحيح." in reply.text
    assert "Service:" in reply.text  # and what to send
    assert reply.to == "abdullah.q@example.sa" and reply.case_ref is None
    assert reply.extra["in_reply_to"] == "<5d0c2a8e-7f3b-4e1c-9a51-2b6f0e1d3c44@example.sa>"


@pytest.mark.parametrize(
    "outage",
    [
        IntakeRefused(503, "unavailable", "Try later.", "لاحقًا."),
        httpx.ConnectError("refused"),
    ],
)
async def test_an_intake_that_does_not_answer_leaves_the_letter_for_a_retry(outage):
    handler, sent = letters(Intake(outage))
    with pytest.raises(TryLater):
        await handler.handle(LETTER)
    assert sent.replies == []


async def test_a_channel_without_a_client_is_refused_and_nothing_is_submitted():
    intake = Intake({"case_ref": "SDR-1448-000001"}, channels=())
    handler, sent = letters(intake)
    assert await handler.handle(LETTER) == "channel_not_enabled"
    assert intake.submitted == []
    [reply] = sent.replies
    assert "does not take requests by letter" in reply.text and "بالرسائل" in reply.text


async def test_a_reply_names_nothing_of_the_applicant():
    answer = {"case_ref": "SDR-1448-000007", "access_code": "K7Q-2M9", "duplicate": False}
    handler, sent = letters(Intake(answer))
    assert await handler.handle(LETTER) == "submitted"
    [reply] = sent.replies
    assert "SDR-1448-000007" in reply.text and "K7Q-2M9" in reply.text
    for personal in ("1000000008", "١٠٠٠٠٠٠٠٠٨", "عبدالله", "0500000001", "abdullah.q"):
        assert personal not in reply.text
    assert reply.message_id.startswith("letter-") and "example.sa" not in reply.message_id


async def test_automatic_mail_is_never_answered():
    raw = LETTER.replace(b"User-Agent:", b"Auto-Submitted: auto-replied\r\nUser-Agent:", 1)
    handler, sent = letters(Intake({"case_ref": "SDR-1448-000002"}))
    await handler.handle(raw)
    assert sent.replies == []


async def test_a_relay_that_does_not_answer_leaves_the_reply_in_the_outbox():
    # The request is recorded and its secret code shown once: the reply is not lost.
    handler, _ = letters(Intake({"case_ref": "SDR-1448-000003", "access_code": "C0DE"}))
    outbox = Sent()
    handler.app.state.outbox = outbox
    dead = LettersSettings(relay_host="127.0.0.1", relay_port=free_port(), relay_timeout_seconds=5)
    handler.app.state.senders["letter"] = RelaySender(dead)
    assert await handler.handle(LETTER) == "submitted"
    [reply] = outbox.replies
    assert "C0DE" in reply.text


async def test_a_letter_from_an_association_s_own_address_is_not_answered():
    raw = LETTER.replace(
        b"From: =?UTF-8?B?", b"Reply-To: letters@sidr.example.org\r\nFrom: =?UTF-8?B?"
    )
    handler, sent = letters(Intake({"case_ref": "SDR-1448-000004"}))
    await handler.handle(raw)
    assert sent.replies == []


async def test_a_maildir_letter_intake_could_not_take_stays_for_the_next_round(tmp_path):
    import asyncio
    import mailbox

    from services.channels.adapters.letters import poll_maildir

    box = mailbox.Maildir(tmp_path / "maildir", create=True)
    box.add(LETTER)
    rounds: list[str] = []

    class Flaky:
        async def handle(self, raw: bytes) -> str:
            rounds.append("try")
            if len(rounds) == 1:
                raise TryLater("intake down")
            return "submitted"

    task = asyncio.create_task(poll_maildir(Flaky(), tmp_path / "maildir", 0.01))  # type: ignore[arg-type]
    try:
        for _ in range(500):
            if len(rounds) >= 2 and not list(box.iterkeys()):
                break
            if len(rounds) == 1:
                assert len(list(box.iterkeys())) == 1  # kept after the failed round
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert rounds == ["try", "try"]
    assert list(box.iterkeys()) == []
