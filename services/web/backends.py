"""The services the screens call, over HTTP, with the signed-in person's token.

A refusal comes back as `ServiceRefused`, with its stable code and its Arabic
and English text, so that a page shows the service's own words. A service that
cannot be reached is a refusal too ("try again"), never a 500 page.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from shared.errors import refusal_in_answer

SERVICES = (
    "intake",
    "verification",
    "committee",
    "surveys",
    "privacy",
    "audit",
    "identity",
    "channels",
)


# What the person can fix in what they sent, and what goes through if sent again in a
# moment (too many at once, a service restarting): either way the form comes back with
# what they typed and the service's words, so nothing they entered is lost.
FIXABLE = frozenset({400, 409, 422})
RETRYABLE = frozenset({429, 502, 503, 504})


class ServiceRefused(Exception):
    """What a service answered instead of doing what was asked."""

    def __init__(self, status: int, code: str, message: Mapping[str, str], detail: Any = None):
        super().__init__(message.get("en", code))
        self.status = status
        self.code = code
        self.message = {"en": message.get("en", code), "ar": message.get("ar", code)}
        self.detail = detail

    @property
    def shown_on_form(self) -> bool:
        """Whether the page re-renders its form with this refusal, rather than an error page."""
        return self.status in FIXABLE or self.status in RETRYABLE

    @property
    def form_status(self) -> int:
        """The status of a form sent back with this refusal: 400 for data to fix (whatever
        the service said), else the service's own (429, 503: try again)."""
        return 400 if self.status in FIXABLE else self.status


def _unreachable(service: str) -> ServiceRefused:
    return ServiceRefused(
        503,
        "service_unavailable",
        {
            "en": f"The {service} service did not answer; please try again in a moment.",
            "ar": f"لم تستجب خدمة {service}؛ يُرجى المحاولة بعد لحظات.",
        },
    )


def refusal_of(response: httpx.Response) -> ServiceRefused:
    """The bilingual refusal in a service's answer (its `error` and `message`)."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    code, message, detail = refusal_in_answer(body)
    fallback = {
        "en": f"The service refused ({response.status_code}).",
        "ar": f"رفضت الخدمة الطلب ({response.status_code}).",
    }
    return ServiceRefused(
        response.status_code, code or str(response.status_code), message or fallback, detail
    )


@dataclass
class Backends:
    """One HTTP client for every service, by name."""

    urls: Mapping[str, str]
    client: httpx.AsyncClient
    # The address of the person the web asks for: the services' limits count it.
    forwarded_for: str | None = None

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """The service's answer when it is a success (2xx); its refusal otherwise."""
        sent = dict(headers or {})
        if self.forwarded_for:
            sent["X-Forwarded-For"] = self.forwarded_for
        if token:
            sent["Authorization"] = f"Bearer {token}"
        try:
            response = await self.client.request(
                method, self.urls[service].rstrip("/") + path, headers=sent, **kwargs
            )
        except httpx.HTTPError:
            raise _unreachable(service) from None
        if response.is_success:
            return response
        raise refusal_of(response)

    async def json(self, service: str, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.call(service, method, path, **kwargs)
        return response.json() if response.content else None


def website_credentials(
    client_id: str | None, secret: str | None, file: Path | None
) -> tuple[str, str] | None:
    """The website client's id and secret, from the settings or their file."""
    if client_id and secret:
        return client_id, secret
    if file and file.exists():
        data = json.loads(file.read_text())
        return str(data["client_id"]), str(data["client_secret"])
    return None
