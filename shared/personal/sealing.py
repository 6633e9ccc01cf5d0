"""Sealing a JSON value under a subject key (AES-256-GCM, the key id as associated data).

A sealed value is a small JSON object, the same in a store, a view, an outbox
and on the stream: `{"sealed": "v1", "key": "sk-…", "data": "<base64 of nonce
and ciphertext>"}`. Once its subject's key is destroyed it opens as `ERASED`.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = "v1"
NONCE_BYTES = 12


class _Erased:
    """What an erased subject's value reads as: shown as "erased" / "مُحيت"."""

    def __repr__(self) -> str:
        return "ERASED"

    def __bool__(self) -> bool:
        return False


ERASED: Any = _Erased()
# How an erased value is shown in documents (JSON, reports, timelines).
ERASED_TEXT = {"erased": True, "en": "erased", "ar": "مُحيت"}


# The data of a value recorded after its subject was erased: sealed under the
# destroyed key, it opens as erased wherever it is read (no key opens it).
ERASED_DATA = base64.b64encode(b"erased").decode()


def erased_sealed(key_id: str, shape: str | None) -> dict[str, str]:
    """What an erased value is kept and published as: nothing of it is left to seal."""
    value = {"sealed": VERSION, "key": key_id, "data": ERASED_DATA}
    return {**value, "shape": shape} if shape else value


def is_erased(value: Any) -> bool:
    return value is ERASED


def is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and value.get("sealed") == VERSION and "key" in value


class KeySource(Protocol):
    def key(self, key_id: str) -> bytes | None: ...


class Sealer:
    """Seals and opens values with the keyring's subject keys."""

    def __init__(self, keys: KeySource):
        self.keys = keys

    def seal(self, key_id: str, value: Any) -> dict[str, str]:
        key = self.keys.key(key_id)
        if key is None:
            raise LookupError(f"the subject key {key_id} was destroyed: nothing is sealed under it")
        nonce = secrets.token_bytes(NONCE_BYTES)
        plaintext = json.dumps(
            value, ensure_ascii=False, separators=(",", ":"), default=str
        ).encode()
        data = nonce + AESGCM(key).encrypt(nonce, plaintext, key_id.encode())
        return {"sealed": VERSION, "key": key_id, "data": base64.b64encode(data).decode()}

    def open(self, value: Any) -> Any:
        """The plaintext of a sealed value, ERASED once its key is gone; anything
        not sealed (data recorded before encryption) as it is."""
        if not is_sealed(value):
            return value
        key = self.keys.key(str(value["key"]))
        if key is None:
            return ERASED
        raw = base64.b64decode(value["data"])
        try:
            plaintext = AESGCM(key).decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], str(value["key"]).encode()
            )
        except InvalidTag:
            raise ValueError(
                f"a value sealed under {value['key']} fails its integrity check"
            ) from None
        return json.loads(plaintext)

    def shown(self, value: Any) -> Any:
        """For a document a person reads: the plaintext, or the "erased" marker."""
        opened = self.open(value)
        return ERASED_TEXT if opened is ERASED else opened
