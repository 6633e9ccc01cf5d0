"""The outbound port: how an invitation leaves Khidma for the applicant's channel.

A sender receives one `Invitation` at a time. It must be idempotent on
`invitation.message_id`: the dispatcher records that an invitation was sent
only after `send` returned, so a crash between the two sends it again, and a
real channel adapter passes the id on as its provider's idempotency key.

The dispatcher hands over only invitations with a usable contact, the phone
number in E.164 (+9665XXXXXXXX for a Saudi mobile).

The default adapter is a logged outbox: one JSON line per message in a file,
and a log line, for an officer (or a later adapter) to carry to the channel.
The file is personal data's neighbour, so it holds the contact only sealed
under the applicant's key (`{"sealed": "v1", ...}`, opened with the keyring by
whoever carries the message; unreadable once the applicant is erased), and no
contact at all for a request published before encryption (no key to seal it
with). The link, the case and the text are not personal. The file is made 0600.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Protocol

from services.surveys.invitations import Invitation
from shared.files import append_private
from shared.personal.sealing import Sealer

log = logging.getLogger(__name__)


class InvitationSender(Protocol):
    def send(self, invitation: Invitation) -> None:
        """Delivers the message or raises; may be called twice for one message_id."""


def invitation_links(path: Path) -> dict[str, str]:
    """The link each case's applicant was sent, from a logged outbox (case id ->
    link): what an applicant holds, and only they (the API never shows a token)."""
    links: dict[str, str] = {}
    if not Path(path).exists():
        return links
    with Path(path).open(encoding="utf-8") as lines:
        for line in lines:
            try:
                message = json.loads(line)
                links[str(message["case_id"])] = str(message["link"])
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line after a crash
    return links


def token_of_link(link: str) -> str:
    """The survey's token: the last segment of its link (…/surveys/<token>)."""
    return link.rstrip("/").rsplit("/", 1)[-1]


def logged_record(invitation: Invitation, sealer: Sealer | None) -> dict[str, Any]:
    """The outbox's line for an invitation: its contact sealed under the applicant's
    key, or left out when there is no key (or no keyring) to seal it with."""
    record = invitation.as_json()
    contact = record.pop("contact")
    key_id = record.pop("personal_key", None)
    record["contact"] = sealer.seal(key_id, contact) if sealer and key_id else None
    return record


def opened_contact(record: dict[str, Any], sealer: Sealer) -> Any:
    """The contact of an outbox line, for whoever carries the message to the channel."""
    return sealer.open(record.get("contact"))


class LoggedOutbox:
    """Appends each invitation as one JSON line to a file, once per message id."""

    def __init__(self, path: Path, sealer: Sealer | None = None):
        self.path = Path(path)
        self.sealer = sealer
        self._lock = threading.Lock()
        self._sent: set[str] | None = None

    def _already_sent(self) -> set[str]:
        if self._sent is None:
            sent: set[str] = set()
            if self.path.exists():
                with self.path.open(encoding="utf-8") as lines:
                    for line in lines:
                        try:
                            sent.add(json.loads(line)["message_id"])
                        except (ValueError, KeyError, TypeError):
                            continue  # a torn last line after a crash: not sent
            self._sent = sent
        return self._sent

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as outbox:
            outbox.seek(-1, os.SEEK_END)
            return outbox.read(1) == b"\n"

    def send(self, invitation: Invitation) -> None:
        with self._lock:
            sent = self._already_sent()
            if invitation.message_id in sent:
                log.info("invitation %s already in the outbox", invitation.message_id)
                return
            line = json.dumps(logged_record(invitation, self.sealer), ensure_ascii=False) + "\n"
            with append_private(self.path) as outbox:
                if outbox.tell() > 0 and not self._ends_with_newline():
                    line = "\n" + line  # close a torn line left by a crash
                outbox.write(line)
                outbox.flush()
                os.fsync(outbox.fileno())
            sent.add(invitation.message_id)
        # No contact details in the log: they are only in the outbox file, sealed.
        log.info(
            "survey invitation %s for %s queued on channel %s",
            invitation.message_id,
            invitation.case_ref,
            invitation.channel,
        )
