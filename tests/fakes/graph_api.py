"""A local fake of the Graph API's WhatsApp messages endpoint: a real HTTP server on a
free port that captures each request.

`POST /{version}/{phone_number_id}/messages` with `Authorization: Bearer <token>`
and a JSON body answers as the Cloud API does (`messaging_product`, `contacts`,
`messages[].id`); a wrong or missing token is Graph's OAuthException (401), another
path is 404.

    with GraphApiFake(access_token="tok") as graph:
        ... KHIDMA_WHATSAPP_API_BASE_URL=graph.url ...
        sent = graph.wait_for_messages(1)

It also builds what Meta sends the adapter: webhook notifications as its Webhooks
reference documents them (`object: whatsapp_business_account`, `entry[].id` (the
business account), `changes[].field: messages`, and a `value` with
`messaging_product`, `metadata` (`display_phone_number`, `phone_number_id`),
`contacts` (`profile.name`, `wa_id`) and `messages` (`from`, `id`, `timestamp`,
`text.body`, `type`) or `statuses`), signed as Meta signs them.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from services.channels.whatsapp.webhook import signature_of

_PATH = re.compile(r"^/(v[0-9]+\.[0-9]+)/([0-9A-Za-z_-]+)/messages$")


@dataclass(frozen=True)
class Captured:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    version: str | None
    phone_number_id: str | None


class GraphApiFake:
    def __init__(self, access_token: str, host: str = "127.0.0.1"):
        self.access_token = access_token
        self.requests: list[Captured] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                match = _PATH.match(self.path)
                captured = Captured(
                    "POST",
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    match.group(1) if match else None,
                    match.group(2) if match else None,
                )
                with fake._lock:
                    fake.requests.append(captured)
                if match is None:
                    self._answer(404, {"error": {"message": "Unknown path", "code": 803}})
                elif self.headers.get("Authorization") != f"Bearer {fake.access_token}":
                    self._answer(
                        401,
                        {
                            "error": {
                                "message": "Invalid OAuth access token - Cannot parse access token",
                                "type": "OAuthException",
                                "code": 190,
                                "fbtrace_id": uuid.uuid4().hex,
                            }
                        },
                    )
                elif not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
                    self._answer(
                        400,
                        {
                            "error": {
                                "message": "(#100) The parameter messaging_product is required.",
                                "type": "OAuthException",
                                "code": 100,
                            }
                        },
                    )
                else:
                    to = str(body.get("to", ""))
                    self._answer(
                        200,
                        {
                            "messaging_product": "whatsapp",
                            "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
                            "messages": [{"id": f"wamid.fake{uuid.uuid4().hex}"}],
                        },
                    )

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass  # quiet

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def messages(self) -> list[Captured]:
        """The replies taken (the requests to the messages endpoint)."""
        with self._lock:
            return [r for r in self.requests if r.phone_number_id is not None]

    def wait_for_messages(self, count: int, timeout: float = 20.0) -> list[Captured]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.messages()
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(
            f"timed out after {timeout}s waiting for {count} replies; got {len(self.messages())}"
        )

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


async def replies(graph: GraphApiFake, count: int, timeout: float = 20.0) -> list[Captured]:
    """Waits, without blocking the event loop, until the fake holds `count` replies."""
    import asyncio

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = graph.messages()
        if len(found) >= count:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {count} replies; got {len(graph.messages())}"
    )


# What Meta sends the adapter -------------------------------------------------

APP_SECRET = "test-app-secret-6f1c"
VERIFY_TOKEN = "test-verify-token-93ad"
ACCESS_TOKEN = "EAAtestaccesstoken"
BUSINESS_ACCOUNT_ID = "102290129340398"
PHONE_NUMBER_ID = "106540352242922"  # sidr's business number
DISPLAY_NUMBER = "15550783881"
APPLICANT_NUMBER = "966500000123"


def wamid() -> str:
    return "wamid.HBgMOTY2NTAwMDAwMTIzFQIAEhgg" + uuid.uuid4().hex.upper()


def text_message(
    body: str, *, sender: str = APPLICANT_NUMBER, id: str | None = None
) -> dict[str, Any]:
    return {
        "from": sender,
        "id": id or wamid(),
        "timestamp": str(int(time.time())),
        "text": {"body": body},
        "type": "text",
    }


def notification(
    *messages: dict[str, Any],
    statuses: list[dict[str, Any]] | None = None,
    phone_number_id: str = PHONE_NUMBER_ID,
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": phone_number_id},
    }
    if messages:
        value["contacts"] = [
            {"profile": {"name": "Sara"}, "wa_id": message["from"]} for message in messages
        ]
        value["messages"] = list(messages)
    if statuses is not None:
        value["statuses"] = statuses
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": BUSINESS_ACCOUNT_ID, "changes": [{"value": value, "field": "messages"}]}],
    }


def delivered_status(recipient: str = APPLICANT_NUMBER) -> dict[str, Any]:
    """A status notification's entry: a reply of ours was delivered."""
    return {
        "id": wamid(),
        "status": "delivered",
        "timestamp": str(int(time.time())),
        "recipient_id": recipient,
        "conversation": {"id": uuid.uuid4().hex, "origin": {"type": "service"}},
        "pricing": {"billable": True, "pricing_model": "CBP", "category": "service"},
    }


def signed(
    payload: dict[str, Any] | bytes, secret: str = APP_SECRET
) -> tuple[bytes, dict[str, str]]:
    """The raw body and the headers Meta sends with it."""
    body = (
        payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
    )
    return body, {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": signature_of(body, secret),
    }


def whatsapp_environment(graph_url: str | None) -> dict[str, str]:
    """The adapter's settings, as an operator gives them."""
    environment = {
        "KHIDMA_WHATSAPP_APP_SECRET": APP_SECRET,
        "KHIDMA_WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
        "KHIDMA_WHATSAPP_NUMBERS": json.dumps({PHONE_NUMBER_ID: "sidr"}),
    }
    if graph_url:
        environment["KHIDMA_WHATSAPP_ACCESS_TOKEN"] = ACCESS_TOKEN
        environment["KHIDMA_WHATSAPP_API_BASE_URL"] = graph_url
        environment["KHIDMA_WHATSAPP_API_VERSION"] = "v21.0"
    return environment


def seedlings_request(national_id: str = "1000000008", count: str = "٢٠") -> str:
    """A structured message that carries the whole seedlings request."""
    return "\n".join(
        [
            "الخدمة: seedlings",
            f"رقم الهوية: {national_id}",
            "الاسم: سارة العتيبي",
            "planting_site: وادي حنيفة",
            f"seedling_count: {count}",
            "national_id_card: 1000000008 2030-01-01",
        ]
    )
