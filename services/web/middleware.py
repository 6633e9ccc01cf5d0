"""The session cookie around every request, and the headers every page carries."""

from __future__ import annotations

import time
from typing import Any

from services.web.session import COOKIE, VISITOR_SECONDS, Session, SessionCodec

# Everything the pages use is served by the application itself (no CDN), so the
# browser may load nothing from anywhere else, and nothing may frame the pages.
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        (
            b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            b"frame-ancestors 'none'; form-action 'self'; base-uri 'self'"
        ),
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


def _cookies(scope: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in scope.get("headers") or []:
        if name != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            key, _, item = part.strip().partition("=")
            found.setdefault(key, item)
    return found


class SessionMiddleware:
    """Opens the visitor's session into `request.state.session` and, when a page has
    changed it (or the visitor had none), sends the sealed cookie back."""

    def __init__(self, app: Any, codec: SessionCodec, secure: bool):
        self.app = app
        self.codec = codec
        self.secure = secure

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        opened = self.codec.open(_cookies(scope).get(COOKIE))
        state = scope.setdefault("state", {})
        state["session"] = opened or Session()

        async def send_with_cookie(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                session: Session = state["session"]
                if session != opened:
                    headers.append((b"set-cookie", self._cookie(session).encode("latin-1")))
                headers.extend(SECURITY_HEADERS)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _cookie(self, session: Session) -> str:
        lifetime = int(session.expires - time.time()) if session.signed_in else VISITOR_SECONDS
        parts = [
            f"{COOKIE}={self.codec.seal(session)}",
            "Path=/",
            "HttpOnly",
            "SameSite=Lax",
            f"Max-Age={max(lifetime, 0)}",
        ]
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts)
