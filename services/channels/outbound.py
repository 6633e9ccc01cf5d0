"""The outbound port: how an adapter answers the applicant on their own channel.

A sender is idempotent on `Reply.message_id` (an adapter that crashed after sending
sends again). The default sender of every channel is a logged outbox: one JSON line
per reply in a private file (0600). It never holds the address in plain: it keeps a
keyed blind index of it (the keyring's HMAC), the channel, the text (the secret
code in it masked: a log keeps no credential) and the case reference, so an
operator sees what was answered and to whom (by index), and the file is no list of
applicants' phones and e-mails, nor of their codes. A channel whose real sender is
configured (the WhatsApp Cloud API, an SMTP relay) sends through it instead.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from shared.files import append_private
from shared.personal.keyring import SubjectKeyring


@dataclass(frozen=True)
class Reply:
    channel: str
    association_id: str
    to: str  # the address on the channel: a WhatsApp number, an e-mail address
    text: str
    message_id: str  # idempotency: the same reply twice is sent once
    case_ref: str | None = None
    # Channel-specific extras (an e-mail's subject and In-Reply-To, …).
    extra: dict[str, str] = field(default_factory=dict)
    # The applicant's secret code when the reply carries it: a real sender delivers
    # it, a log never keeps it (the outbox masks it).
    secret: str | None = None

    def logged_text(self) -> str:
        """The text as a log may keep it: the secret code masked."""
        if not self.secret:
            return self.text
        return self.text.replace(self.secret, SECRET_MASK)


SECRET_MASK = "••••"


class Sender(Protocol):
    async def send(self, reply: Reply) -> None:
        """Delivers the reply or raises; may be called twice for one message_id."""


class LoggedOutbox:
    """The default sender: the reply in a private JSON-lines file, the address only
    as its blind index."""

    def __init__(self, path: Path, keyring: SubjectKeyring):
        self.path = Path(path)
        self.keyring = keyring
        self._lock = asyncio.Lock()

    def _sent(self) -> set[str]:
        if not self.path.exists():
            return set()
        found = set()
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                found.add(str(json.loads(line)["message_id"]))
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line after a crash
        return found

    async def send(self, reply: Reply) -> None:
        async with self._lock:
            if reply.message_id in self._sent():
                return
            record = {
                "message_id": reply.message_id,
                "channel": reply.channel,
                "association_id": reply.association_id,
                "to_index": self.keyring.subject_index(reply.association_id, reply.to),
                "case_ref": reply.case_ref,
                "text": reply.logged_text(),
            }
            with append_private(self.path) as file:
                file.write(json.dumps(record, ensure_ascii=False) + "\n")
