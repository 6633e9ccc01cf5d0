"""The session: a cookie sealed with AES-GCM, holding who signed in and their token.

Nothing of a session is kept on the server: the cookie is the session, and only
this application's key opens it (a changed or forged cookie opens to nothing).
Every visitor, signed in or not, has one: it carries the language chosen and the
token that every form sends back (CSRF).
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.files import write_private

COOKIE = "khidma_session"
LANGUAGES = ("ar", "en")
DEFAULT_LANGUAGE = "ar"
# An anonymous visitor's session lasts this long; a signed-in one, as long as its token.
VISITOR_SECONDS = 12 * 3600
_NONCE = 12
_AAD = b"khidma-web-session-v1"


@dataclass(frozen=True)
class Session:
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    lang: str = DEFAULT_LANGUAGE
    username: str | None = None
    name: str | None = None
    # {association_id: [role, ...]}, as the token says.
    roles: dict[str, list[str]] = field(default_factory=dict)
    token: str | None = None
    # When the token (and so the signed-in session) ends, seconds since the epoch.
    expires: float = 0.0
    # A message for the next page (after a redirect): {"en": ..., "ar": ...} and its kind.
    flash: dict[str, str] | None = None

    @property
    def signed_in(self) -> bool:
        return bool(self.token) and self.expires > time.time()

    def holds(self, role: str, association_id: str | None = None) -> bool:
        if association_id is not None:
            return role in self.roles.get(association_id, [])
        return any(role in held for held in self.roles.values())

    def associations_with(self, *roles: str) -> list[str]:
        return sorted(a for a, held in self.roles.items() if set(held) & set(roles))

    def signed_out(self) -> Session:
        """A fresh visitor's session: a new CSRF token, the language kept."""
        return Session(lang=self.lang)

    def with_flash(self, message: dict[str, str] | None) -> Session:
        return replace(self, flash=message)


class SessionCodec:
    """Seals a session into a cookie value and opens it again."""

    def __init__(self, key: bytes):
        if len(key) != 32:
            raise ValueError("the session key must be 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, session: Session) -> str:
        nonce = os.urandom(_NONCE)
        plain = json.dumps(asdict(session), separators=(",", ":")).encode()
        sealed = nonce + self._aead.encrypt(nonce, plain, _AAD)
        return base64.urlsafe_b64encode(sealed).decode().rstrip("=")

    def open(self, value: str | None) -> Session | None:
        """The session in the cookie; None when there is none, or it is not ours."""
        if not value or len(value) > 8192:
            return None
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            plain = self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], _AAD)
            data: dict[str, Any] = json.loads(plain)
            session = Session(**data)
        except Exception:  # noqa: BLE001 - any cookie that does not open is no session
            return None
        if session.lang not in LANGUAGES:
            return None
        if session.token and session.expires <= time.time():
            return session.signed_out()
        return session


def csrf_matches(session: Session, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(session.csrf.encode(), str(sent).encode())


def session_key(path: Path) -> bytes:
    """The key in the file, made (0600) on the first start when there is none."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, base64.b64encode(os.urandom(32)).decode() + "\n")
    try:
        key = base64.b64decode(path.read_text().strip(), validate=True)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise SystemExit(f"{path}: not a session key (32 bytes in base64) / ليس مفتاح جلسات صالحًا")
    return key
