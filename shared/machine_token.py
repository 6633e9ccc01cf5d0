"""A machine client's access token (the client credentials grant), kept until shortly
before it ends: how an adapter, or the web application's public pages, call the
services as their channel's client."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx

from shared.errors import Refused

# Asked for again this long before it ends.
RENEW_SECONDS = 60.0


class TokenUnavailable(Refused):
    """The issuer did not give the client a token (unreachable, or the client refused)."""


def _unavailable(client_id: str, why_en: str, why_ar: str) -> TokenUnavailable:
    return TokenUnavailable(
        "client_token_unavailable",
        f"The channel's client {client_id!r} has no token now ({why_en}); please try again.",
        f"لا يملك عميل القناة {client_id!r} رمز دخول الآن ({why_ar})؛ يُرجى المحاولة لاحقًا.",
    )


@dataclass
class MachineToken:
    token_url: str
    client_id: str
    client_secret: str
    client: httpx.AsyncClient
    _token: str = ""
    _expires: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    async def get(self) -> str:
        async with self._lock:
            if time.monotonic() > self._expires - RENEW_SECONDS:
                await self._renew()
            return self._token

    async def _renew(self) -> None:
        try:
            response = await self.client.post(
                self.token_url,
                data={
                    "grant_type": "client_credentials",
                    "client_id": self.client_id,
                    "client_secret": self.client_secret,
                },
            )
        except httpx.HTTPError:
            raise _unavailable(
                self.client_id, "the issuer did not answer", "لم يستجب المُصدِر"
            ) from None
        if not response.is_success:
            raise _unavailable(self.client_id, "the issuer refused it", "رفضه المُصدِر")
        answer = response.json()
        self._token = str(answer["access_token"])
        self._expires = time.monotonic() + float(answer.get("expires_in") or 300)
