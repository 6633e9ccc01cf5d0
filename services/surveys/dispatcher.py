"""The dispatcher: sends the invitations recorded but not yet sent, once each.

Sending is never a second write inside a command. The dispatcher tails the
notification log for `Survey.Invited`, hands each invitation not yet sent to
the outbound port, then records `Survey.InvitationSent` together with the
invitation's position (one transaction). After a restart it resumes from the
last position recorded, and the survey itself says whether it was sent, so an
invitation is not sent twice. A crash between `send` and the record sends the
same `message_id` again: senders are idempotent on it (the logged outbox is).

Invitations go out in the order they were recorded; a sender that fails is
retried with a growing pause, and the later invitations wait behind it.

The phone number goes out in E.164. An invitation with no contact a channel can
use (no phone or email, or a number that cannot be read) is not sent: it is
recorded as `Survey.InvitationUndeliverable` with the reason, once. The
dispatcher also reads `Survey.RequestRevised`: when the applicant's corrected
request brings another contact, an invitation waiting to be sent is tried again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from eventsourcing.utils import get_topic

from services.surveys.application import SurveysApplication
from services.surveys.domain import Survey
from services.surveys.invitations import Undeliverable
from services.surveys.outbound import InvitationSender
from shared.store import StoreRunner

log = logging.getLogger(__name__)

INVITED_TOPIC = get_topic(Survey.Invited)
# What can make an invitation sendable: its recording, or a corrected contact.
DISPATCH_TOPICS = (INVITED_TOPIC, get_topic(Survey.RequestRevised))


class InvitationDispatcher:
    def __init__(
        self,
        app: SurveysApplication,
        store: StoreRunner,
        sender: InvitationSender,
        *,
        base_url: str,
        batch_size: int = 100,
        poll_interval: float = 0.25,
        max_backoff: float = 30.0,
    ):
        self.app = app
        self.store = store
        self.sender = sender
        self.base_url = base_url
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self.position = 0
        self.sent = 0
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def dispatch_batch(self) -> int:
        """Sends what the next batch of invitations holds; returns how many it read."""
        notifications = await self.store.run(
            self.app.read_notifications, self.position, self.batch_size, DISPATCH_TOPICS
        )
        for notification in notifications:
            case_id = notification.originator_id
            invitation = await self.store.run(self.app.invitation_to_send, case_id, self.base_url)
            if isinstance(invitation, Undeliverable):
                log.warning("survey invitation of case %s not sent: %s", case_id, invitation.reason)
                await self.store.run(
                    self.app.record_undeliverable, case_id, invitation.reason, notification.id
                )
            elif invitation is not None:
                # The port may block (a file, a network call): off the loop and the store thread.
                await asyncio.to_thread(self.sender.send, invitation)
                await self.store.run(
                    self.app.record_sent, case_id, invitation.message_id, notification.id
                )
                self.sent += 1
            self.position = notification.id
        return len(notifications)

    async def run(self) -> None:
        self.position = await self.store.run(self.app.dispatch_position)
        backoff = self.poll_interval
        while True:
            self._wake.clear()
            try:
                moved = await self.dispatch_batch()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sending survey invitations failed; retrying in %.1fs", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            backoff = self.poll_interval
            if moved < self.batch_size:
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that
                    # arrives as the wake fires, and stopping the service then hangs.
                    async with asyncio.timeout(self.poll_interval):
                        await self._wake.wait()
                except TimeoutError:
                    pass

    async def lag(self) -> int:
        """Invitations (and corrected requests) recorded past the dispatcher's position."""
        pending: Any = await self.store.run(
            self.app.read_notifications, self.position, 10_000, DISPATCH_TOPICS
        )
        return len(pending)
