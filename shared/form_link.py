"""The website form's link with the known fields filled in: a sealed prefill.

A channel (WhatsApp) knows some of what the form asks (the sender's phone, the
lines of a structured message intake refused). Those are personal data, so the
link never carries them in plain (access logs, browser history, a forwarded
message): `…/apply?prefill=<token>`, where the token is AES-256-GCM of
`{association_id, service_code, values, expires_at}` under a key of its own, with a
random nonce and the association and service as associated data (a token made for
one form opens for no other). `values` is shaped as intake's submission
(`applicant`, `fields`, `documents`), the contract both sides already speak.

The key file holds base64 of 32 bytes, 0600 (`KHIDMA_FORM_LINK_KEY_FILE`, default
`data_dir/form-link.key`). The channels service seals, the web app opens; neither
makes the key (the embedded runner does, on its first start; under compose it is a
secret). Without a key, links are plain and a `prefill` is ignored.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.files import write_private

KEY_BYTES = 32
KEY_FILE = "form-link.key"
DEFAULT_DAYS = 7
_NONCE = 12
# A token longer than this is no token of ours (and is not worth decrypting).
MAX_TOKEN = 4096
_AAD = "khidma-form-link-v1|{association}|{service}"


class FormLinkKeyProblem(RuntimeError):
    """The key file is unreadable or not a key: a service stops at start with it."""

    def __init__(self, en: str, ar: str):
        self.en = en
        self.ar = ar
        super().__init__(f"{en} / {ar}")


class PrefillRefused(Exception):
    """A token that does not open for this form: `expired`, or `invalid` (changed,
    another key's, another association's or service's, not a token at all)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _aad(association_id: str, service_code: str) -> bytes:
    return _AAD.format(association=association_id, service=service_code).encode("utf-8")


@dataclass(frozen=True)
class FormLinkKey:
    key: bytes

    def __post_init__(self) -> None:
        if len(self.key) != KEY_BYTES:
            raise ValueError(f"a form-link key is {KEY_BYTES} bytes")

    def seal(
        self,
        association_id: str,
        service_code: str,
        values: dict[str, Any],
        expires_at: datetime,
    ) -> str:
        """The url-safe token (no padding) of the values, for this form only."""
        document = {
            "association_id": association_id,
            "service_code": service_code,
            "values": values,
            "expires_at": expires_at.astimezone(UTC).isoformat(),
        }
        plain = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        nonce = os.urandom(_NONCE)
        sealed = nonce + AESGCM(self.key).encrypt(nonce, plain, _aad(association_id, service_code))
        return base64.urlsafe_b64encode(sealed).decode("ascii").rstrip("=")

    def open(
        self, token: str, association_id: str, service_code: str, now: datetime
    ) -> dict[str, Any]:
        """The values sealed for this form; PrefillRefused when the token is not one."""
        if not token or len(token) > MAX_TOKEN:
            raise PrefillRefused("invalid")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            plain = AESGCM(self.key).decrypt(
                raw[:_NONCE], raw[_NONCE:], _aad(association_id, service_code)
            )
            document = json.loads(plain)
            expires_at = datetime.fromisoformat(document["expires_at"])
            values = document["values"]
        except (InvalidTag, ValueError, TypeError, KeyError):
            raise PrefillRefused("invalid") from None
        if (
            document.get("association_id") != association_id
            or document.get("service_code") != service_code
            or not isinstance(values, dict)
            or expires_at.tzinfo is None
        ):
            raise PrefillRefused("invalid")
        if now >= expires_at:
            raise PrefillRefused("expired")
        return values


def expiry(now: datetime, days: int = DEFAULT_DAYS) -> datetime:
    return now + timedelta(days=days)


def load_key(path: Path, *, configured: bool) -> FormLinkKey | None:
    """The key in the file. None when it was not configured and there is none (links
    are then plain); FormLinkKeyProblem when it is configured and missing, or the
    file cannot be read or holds no key."""
    path = Path(path)
    if not path.exists() and not configured:
        return None
    try:
        text = path.read_text().strip()
    except OSError as error:
        raise FormLinkKeyProblem(
            f"the form-link key file {path} cannot be read (KHIDMA_FORM_LINK_KEY_FILE): "
            f"{error.strerror or repr(error)}",
            f"تعذّرت قراءة ملف مفتاح روابط النماذج {path} (KHIDMA_FORM_LINK_KEY_FILE)",
        ) from None
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise FormLinkKeyProblem(
            f"the form-link key file {path} is damaged: it does not hold a base64 key of "
            f"{KEY_BYTES} bytes",
            f"ملف مفتاح روابط النماذج {path} تالف: لا يحوي مفتاحًا صالحًا",
        )
    return FormLinkKey(key)


def load_key_or_exit(path: Path, *, configured: bool, service_name: str) -> FormLinkKey | None:
    """The key for a service's start: a bad key file stops it with a message an
    operator can act on, in both languages."""
    try:
        return load_key(path, configured=configured)
    except FormLinkKeyProblem as problem:
        print(
            f"{service_name}: cannot start: {problem.en}\n"
            f"{service_name}: تعذّر التشغيل: {problem.ar}",
            file=sys.stderr,
        )
        raise SystemExit(3) from None


def ensure_key(path: Path) -> FormLinkKey:
    """The key file at `path`, made (0600, in a 0700 folder) when there is none: the
    embedded runner's first start. A service never makes one itself."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        write_private(path, base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode() + "\n")
    found = load_key(path, configured=True)
    assert found is not None
    return found
