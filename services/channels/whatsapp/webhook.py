"""The Cloud API's webhook as Meta sends it: the signature of the raw body, and the
messages of a notification.

A notification (`object: whatsapp_business_account`) holds `entry[]`, each with
`changes[]`; a change of `field: messages` has a `value` with `metadata`
(`phone_number_id`, the business number it came to), `contacts`, and either
`messages[]` (what applicants sent: `from`, `id` (the wamid), `timestamp`, `type`,
`text.body`) or `statuses[]` (what became of our replies: ignored here).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

SIGNATURE_HEADER = "X-Hub-Signature-256"
SIGNATURE_PREFIX = "sha256="


def signature_of(body: bytes, app_secret: str) -> str:
    """The header's value for this raw body: `sha256=` and the hex HMAC-SHA256."""
    digest = hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def signature_holds(body: bytes, header: str | None, app_secret: str) -> bool:
    """Whether the header is the app's signature of exactly these bytes (constant time)."""
    if not header or not app_secret or not header.startswith(SIGNATURE_PREFIX):
        return False
    expected = signature_of(body, app_secret)
    return hmac.compare_digest(
        expected.encode("ascii"), header.strip().lower().encode("ascii", "replace")
    )


@dataclass(frozen=True)
class Inbound:
    """One applicant's message as the webhook carries it."""

    phone_number_id: str  # the business number it was sent to
    sender: str  # `from`: the applicant's WhatsApp number (wa_id), digits only
    wamid: str
    timestamp: str
    type: str
    text: str  # `text.body` of a text message; empty for the other types


class MalformedNotification(ValueError):
    """The body is JSON but not a notification of the Cloud API."""


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedNotification(f"{what} is not a list")
    return value


def messages_of(notification: Any) -> list[Inbound]:
    """The applicants' messages of a notification, in order; statuses and other
    fields (account updates, templates) give none."""
    if not isinstance(notification, dict):
        raise MalformedNotification("the notification is not an object")
    if notification.get("object") != "whatsapp_business_account":
        return []
    found: list[Inbound] = []
    for entry in _list(notification.get("entry"), "entry"):
        if not isinstance(entry, dict):
            raise MalformedNotification("an entry is not an object")
        for change in _list(entry.get("changes"), "changes"):
            if not isinstance(change, dict) or not isinstance(change.get("value"), dict):
                raise MalformedNotification("a change has no value")
            if change.get("field") != "messages":
                continue
            value = change["value"]
            metadata = value.get("metadata")
            if not isinstance(metadata, dict) or not metadata.get("phone_number_id"):
                raise MalformedNotification("a change has no metadata.phone_number_id")
            for message in _list(value.get("messages"), "messages"):
                found.append(_inbound(str(metadata["phone_number_id"]), message))
    return found


def _inbound(phone_number_id: str, message: Any) -> Inbound:
    if not isinstance(message, dict):
        raise MalformedNotification("a message is not an object")
    for key in ("from", "id", "type"):
        if not isinstance(message.get(key), str) or not message[key]:
            raise MalformedNotification(f"a message has no {key}")
    text = message.get("text")
    body = text.get("body") if isinstance(text, dict) else None
    return Inbound(
        phone_number_id=phone_number_id,
        sender=message["from"],
        wamid=message["id"],
        timestamp=str(message.get("timestamp", "")),
        type=message["type"],
        text=body if isinstance(body, str) else "",
    )
