"""The private signing keys: generated here, kept in a key file, never in the event store.

The file (default `<data_dir>/identity-keys.json`) is JSON mapping each key id
to its private key in PKCS#8 PEM, written with mode 0600 by an atomic replace.
The store's key set (domain.KeySet) records only the key ids and public JWKs,
so a retired or leaked key can be destroyed for good (events cannot be erased,
the store's hash chain forbids it, and every store is replayed by the auditors
and backed up); see docs/decisions.md.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from uuid import uuid4

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from shared.errors import Refused

Algorithm = Literal["ES256", "RS256"]
ALGORITHMS: tuple[str, ...] = ("ES256", "RS256")


class KeyFileProblem(Refused):
    """The key file cannot be used as it is (permissions, content, a missing key)."""


@dataclass(frozen=True)
class PrivateKey:
    kid: str
    algorithm: str
    key: PrivateKeyTypes

    def public_jwk(self) -> dict[str, Any]:
        jwk = public_jwk_of(self.key, self.algorithm)
        jwk.update(kid=self.kid, alg=self.algorithm, use="sig")
        return jwk


def generate(algorithm: str) -> PrivateKey:
    kid = uuid4().hex[:16]
    key: PrivateKeyTypes
    if algorithm == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        raise ValueError(f"unsupported signing algorithm {algorithm!r}")
    return PrivateKey(kid, algorithm, key)


def public_jwk_of(key: PrivateKeyTypes, algorithm: str) -> dict[str, Any]:
    if algorithm == "ES256":
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        jwk: dict[str, Any] = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        assert isinstance(key, rsa.RSAPrivateKey)
        jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {k: v for k, v in jwk.items() if k in ("kty", "crv", "x", "y", "n", "e")}


class KeyFile:
    """The private keys on disk, mode 0600; read again when asked for a key it has not seen."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._keys: dict[str, PrivateKey] = {}

    def check_permissions(self) -> None:
        """Refuses a key file that others than its owner can read or write."""
        if not self.path.exists():
            return
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode & 0o077:
            raise KeyFileProblem(
                "key_file_exposed",
                f"The signing key file {self.path} has mode {mode:o}: only its owner may "
                f"read it (chmod 600 {self.path}).",
                f"ملف مفاتيح التوقيع {self.path} بصلاحيات {mode:o}: يجب ألا يقرأه إلا مالكه "
                f"(chmod 600 {self.path}).",
            )

    def _read(self) -> dict[str, dict[str, str]]:
        if not self.path.exists():
            return {}
        self.check_permissions()
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise KeyFileProblem(
                "key_file_unreadable",
                f"The signing key file {self.path} cannot be read: {error}",
                f"تعذّرت قراءة ملف مفاتيح التوقيع {self.path}: {error}",
            ) from None
        if not isinstance(data, dict):
            raise KeyFileProblem(
                "key_file_unreadable",
                f"The signing key file {self.path} is not a JSON object.",
                f"ملف مفاتيح التوقيع {self.path} ليس كائن JSON.",
            )
        return data

    def _write(self, data: dict[str, dict[str, str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                json.dump(data, file, indent=2)
                file.flush()
                os.fsync(file.fileno())
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def store(self, key: PrivateKey) -> None:
        """Adds a key to the file (before the store records its public half)."""
        pem = key.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
        with self._lock:
            data = self._read()
            data[key.kid] = {"algorithm": key.algorithm, "pem": pem}
            self._write(data)
            self._keys[key.kid] = key

    def destroy(self, kid: str) -> None:
        """Removes a retired key from the file: it can never sign again."""
        with self._lock:
            data = self._read()
            if data.pop(kid, None) is not None:
                self._write(data)
            self._keys.pop(kid, None)

    def get(self, kid: str) -> PrivateKey:
        with self._lock:
            if kid not in self._keys:
                entry = self._read().get(kid)
                if entry is None:
                    raise KeyFileProblem(
                        "signing_key_missing",
                        f"The private half of signing key {kid!r} is not in {self.path}: "
                        "restore the key file from its backup, or rotate the keys "
                        "(python -m services.identity rotate-keys).",
                        f"الجزء الخاص من مفتاح التوقيع {kid!r} غير موجود في {self.path}: "
                        "استعد ملف المفاتيح من نسخته الاحتياطية، أو أضف مفتاحًا جديدًا "
                        "(python -m services.identity rotate-keys).",
                    )
                loaded = serialization.load_pem_private_key(
                    entry["pem"].encode("ascii"), password=None
                )
                self._keys[kid] = PrivateKey(kid, entry["algorithm"], loaded)
            return self._keys[kid]
