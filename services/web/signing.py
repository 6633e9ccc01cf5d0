"""Signing staff in at the token endpoint (the password grant), into a session."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx

from services.web.backends import ServiceRefused, refusal_of
from services.web.session import Session
from shared.auth import AuthRefused, Verifier


@dataclass
class Signing:
    token_url: str
    account_url: str
    verifier: Verifier
    client: httpx.AsyncClient
    client_id: str | None = None
    differ: ClassVar[dict[str, str]] = {
        "en": "The two new passwords are not the same.",
        "ar": "كلمتا المرور الجديدتان غير متطابقتين.",
    }

    async def sign_in(self, username: str, password: str, lang: str) -> Session:
        """A signed-in session of the person, whose token the services will accept."""
        if not username or not password:
            raise ServiceRefused(
                400,
                "credentials_missing",
                {
                    "en": "Enter your username and password.",
                    "ar": "أدخل اسم المستخدم وكلمة المرور.",
                },
            )
        answer = await self._post(
            self.token_url,
            data={"grant_type": "password", "username": username, "password": password},
        )
        token = str(answer["access_token"])
        try:
            principal = await self.verifier.verify(token)
        except AuthRefused as refusal:
            raise ServiceRefused(401, refusal.code, {"en": refusal.en, "ar": refusal.ar}) from None
        return Session(
            lang=lang,
            username=principal.username,
            name=principal.name,
            roles={a: sorted(held) for a, held in principal.roles.items()},
            token=token,
            expires=time.time() + float(answer.get("expires_in") or 300),
        )

    async def change_password(self, username: str, current: str, new: str) -> None:
        await self._post(
            self.account_url,
            json={"username": username, "current_password": current, "new_password": new},
        )

    async def _post(self, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self.client.post(url, **kwargs)
        except httpx.HTTPError:
            raise ServiceRefused(
                503,
                "identity_unavailable",
                {
                    "en": "Sign-in is not available now; please try again in a moment.",
                    "ar": "تسجيل الدخول غير متاح الآن؛ يُرجى المحاولة بعد لحظات.",
                },
            ) from None
        if not response.is_success:
            raise refusal_of(response)
        return response.json() if response.content else {}
