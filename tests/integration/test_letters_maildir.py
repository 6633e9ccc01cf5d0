"""Letters from a maildir, answered through the logged outbox (no relay configured):
the letter is taken from `new/` and removed, the case opened at a real intake (in
process), and the outbox holds the reply with the address only as its blind index."""

from __future__ import annotations

import json
import re
import mailbox
from pathlib import Path
from typing import Any

import pytest

from services.channels.intake import IntakeGateway
from services.channels.main import build
from services.channels.settings import ChannelsSettings
from tests.auth import as_staff
from tests.helpers import async_wait_for
from tests.integration.test_letters_smtp import CASE_REF, FIXTURES, PERSONAL, SIDR, AdapterToken
from tests.personal_data import assert_no_plaintext

pytestmark = pytest.mark.integration


async def test_a_letter_in_the_maildir_is_submitted_and_answered_in_the_outbox(
    in_process: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    intake = await in_process("intake")
    folder = tmp_path / "maildir"
    box = mailbox.Maildir(folder, create=True)
    box.add((FIXTURES / "seedlings_arabic_pdf.eml").read_bytes())
    box.add((FIXTURES / "no_service_arabic.eml").read_bytes())
    monkeypatch.delenv("KHIDMA_LETTERS_SMTP_PORT", raising=False)
    monkeypatch.delenv("KHIDMA_LETTERS_RELAY_HOST", raising=False)
    monkeypatch.setenv("KHIDMA_LETTERS_MAILDIR", str(folder))
    monkeypatch.setenv("KHIDMA_LETTERS_POLL_SECONDS", "0.1")
    monkeypatch.setenv("KHIDMA_LETTERS_ADDRESSES", json.dumps({SIDR.upper(): "sidr"}))
    settings = ChannelsSettings(
        intake_url="http://intake",
        token_url="http://issuer.invalid/oauth/token",
        data_dir=tmp_path / "channels",
        master_key_file=tmp_path / "intake" / "master-key.json",
        keyring_file=tmp_path / "intake" / "subject-keys.sqlite",
    )
    app = build(settings)
    app.state.intake = IntakeGateway("http://intake", {"letter": AdapterToken()}, intake.client)  # type: ignore[dict-item]
    outbox = settings.outbox_file

    async def two_replies() -> list[dict[str, Any]] | None:
        if not outbox.exists():
            return None
        lines = [json.loads(line) for line in outbox.read_text(encoding="utf-8").splitlines()]
        return lines if len(lines) == 2 else None

    async with app.router.lifespan_context(app):
        replies = await async_wait_for(two_replies, what="two replies in the outbox")
        assert "letter" not in app.state.senders  # no relay: the logged outbox answers

    by_case = {bool(r["case_ref"]): r for r in replies}
    answered = by_case[True]
    ref = CASE_REF.search(answered["text"])
    assert ref and ref.group(0) == answered["case_ref"]
    assert answered["channel"] == "letter" and answered["association_id"] == "sidr"
    assert answered["to_index"] == app.state.keyring.subject_index("sidr", "abdullah.q@example.sa")
    assert "The letter names no service" in by_case[False]["text"]
    # The reply gave the secret code; the log keeps it masked.
    assert "Your secret code to follow the request: ••••" in answered["text"]
    assert not re.search(r"\b[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}\b", outbox.read_text("utf-8"))
    assert outbox.stat().st_mode & 0o777 == 0o600
    assert list(mailbox.Maildir(folder).iterkeys()) == []  # taken, and not kept

    await intake.settle()
    cases = (await intake.client.get("/cases", headers=as_staff())).json()
    assert [c["case_ref"] for c in cases] == [ref.group(0)]
    assert_no_plaintext(tmp_path, PERSONAL)
