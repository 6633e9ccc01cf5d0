"""The replies' real sender: the Cloud API's messages endpoint.

`POST {base_url}/{version}/{phone_number_id}/messages` with the app's access token
(`Authorization: Bearer …`) and Meta's text message body (`messaging_product:
whatsapp`, `to`, `type: text`, `text.body`). Idempotent on the reply's
`message_id`: the ids sent are kept in a private file (0600) that holds only those
ids (digests of the applicant's wamid, no number and no text), so a redelivered
message, even after a restart, is not answered twice.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx

from services.channels.outbound import Reply
from shared.errors import Refused
from shared.files import append_private

log = logging.getLogger(__name__)

# The longest text body the Cloud API takes.
MAX_TEXT = 4096


class CloudApiRefused(Refused):
    """The Cloud API did not take the reply (its status; never the body or number)."""


class CloudApiSender:
    def __init__(
        self,
        base_url: str,
        version: str,
        access_token: str,
        client: httpx.AsyncClient,
        sent_file: Path,
    ):
        self.base_url = base_url.rstrip("/")
        self.version = version
        self.access_token = access_token
        self.client = client
        self.sent_file = Path(sent_file)
        self._lock = asyncio.Lock()
        self._sent: set[str] | None = None

    def _known(self) -> set[str]:
        if self._sent is None:
            self._sent = (
                set(self.sent_file.read_text(encoding="utf-8").split())
                if self.sent_file.exists()
                else set()
            )
        return self._sent

    def _remember(self, message_id: str) -> None:
        with append_private(self.sent_file) as file:
            file.write(message_id + "\n")
        self._known().add(message_id)

    async def send(self, reply: Reply) -> None:
        phone_number_id = reply.extra.get("phone_number_id")
        if not phone_number_id:
            raise ValueError("a WhatsApp reply names the business number it is sent from")
        async with self._lock:
            if reply.message_id in self._known():
                return
            response = await self.client.post(
                f"{self.base_url}/{self.version}/{phone_number_id}/messages",
                headers={"Authorization": f"Bearer {self.access_token}"},
                json={
                    "messaging_product": "whatsapp",
                    "recipient_type": "individual",
                    "to": reply.to,
                    "type": "text",
                    "text": {"preview_url": False, "body": reply.text[:MAX_TEXT]},
                },
            )
            if not response.is_success:
                log.warning(
                    "the Cloud API refused a reply",
                    extra={"status": response.status_code, "message_id": reply.message_id},
                )
                raise CloudApiRefused(
                    "whatsapp_send_refused",
                    f"The WhatsApp Cloud API refused the reply ({response.status_code}).",
                    f"رفضت واجهة واتساب السحابية الرد ({response.status_code}).",
                )
            self._remember(reply.message_id)
