"""The master keys: a key file holding the keys that wrap subject keys, and the
key of the blind indexes.

The file is JSON, mode 0600:
`{"version": 1, "current": "mk-…", "keys": {"mk-…": "<base64 of 32 bytes>"},
"index_key": "<base64 of 32 bytes>"}`. `make run` creates it in the data folder;
under compose it is a secret. Rotation adds a new current key; the keyring then
rewraps every subject key with it, and the retired keys may be removed from the
file once nothing is wrapped with them (`python -m shared.personal rotate`).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from shared.errors import Refused

KEY_BYTES = 32


class MasterKeyProblem(RuntimeError):
    """The master key file is missing, unreadable or not the one the keyring was made with.

    Carries its message in both languages; a service stops at start with it.
    """

    def __init__(self, en: str, ar: str):
        self.en = en
        self.ar = ar
        super().__init__(f"{en} / {ar}")


def _decoded(text: str, what: str, path: Path) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        key = b""
    if len(key) != KEY_BYTES:
        raise MasterKeyProblem(
            f"the master key file {path} is damaged: {what} is not a base64 key of {KEY_BYTES} bytes",
            f"ملف المفتاح الرئيسي {path} تالف: {what} ليس مفتاحًا صالحًا",
        )
    return key


def _new_key_id() -> str:
    return "mk-" + secrets.token_hex(6)


@dataclass(frozen=True)
class MasterKeys:
    path: Path
    current: str
    keys: dict[str, bytes]
    index_key: bytes

    @property
    def current_key(self) -> bytes:
        return self.keys[self.current]

    @classmethod
    def load(cls, path: Path) -> MasterKeys:
        path = Path(path)
        if not path.exists():
            raise MasterKeyProblem(
                f"the master key file {path} is missing (KHIDMA_MASTER_KEY_FILE): without it no "
                "personal data can be read or written; make run creates one, under compose it is "
                "a secret (docs/operations.md)",
                f"ملف المفتاح الرئيسي {path} غير موجود (KHIDMA_MASTER_KEY_FILE): لا يمكن قراءة "
                "البيانات الشخصية أو كتابتها بدونه",
            )
        try:
            data = json.loads(path.read_text())
            keys = {
                str(key_id): _decoded(str(text), f"key {key_id}", path)
                for key_id, text in dict(data["keys"]).items()
            }
            current = str(data["current"])
            index_key = _decoded(str(data["index_key"]), "index_key", path)
        except MasterKeyProblem:
            raise
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise MasterKeyProblem(
                f"the master key file {path} cannot be read: {error!r}",
                f"تعذّرت قراءة ملف المفتاح الرئيسي {path}",
            ) from None
        if current not in keys:
            raise MasterKeyProblem(
                f"the master key file {path} names a current key {current} it does not hold",
                f"ملف المفتاح الرئيسي {path} يسمّي مفتاحًا حاليًا غير موجود فيه",
            )
        return cls(path, current, keys, index_key)

    @classmethod
    def create(cls, path: Path) -> MasterKeys:
        """A new key file; refuses to replace one (that would lose every subject's data)."""
        path = Path(path)
        if path.exists():
            raise Refused(
                "master_key_exists",
                f"the master key file {path} exists already: replacing it would make every "
                "personal record unreadable",
                f"ملف المفتاح الرئيسي {path} موجود: استبداله يجعل كل البيانات الشخصية غير مقروءة",
            )
        current = _new_key_id()
        keys = cls(
            path, current, {current: secrets.token_bytes(KEY_BYTES)}, secrets.token_bytes(KEY_BYTES)
        )
        keys.write()
        return keys

    @classmethod
    def ensure(cls, path: Path) -> MasterKeys:
        """The key file at `path`, created on the first start (make run, the tests' runner)."""
        return cls.load(path) if Path(path).exists() else cls.create(path)

    def with_new_current(self) -> MasterKeys:
        current = _new_key_id()
        return MasterKeys(
            self.path,
            current,
            {**self.keys, current: secrets.token_bytes(KEY_BYTES)},
            self.index_key,
        )

    def without(self, retired: set[str]) -> MasterKeys:
        return MasterKeys(
            self.path,
            self.current,
            {
                key_id: key
                for key_id, key in self.keys.items()
                if key_id not in retired or key_id == self.current
            },
            self.index_key,
        )

    def write(self) -> None:
        """Written whole through a new file created 0600, then moved into place."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "version": 1,
            "current": self.current,
            "keys": {key_id: base64.b64encode(key).decode() for key_id, key in self.keys.items()},
            "index_key": base64.b64encode(self.index_key).decode(),
        }
        partial = self.path.with_name(self.path.name + ".new")
        partial.unlink(missing_ok=True)
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump(document, file, indent=2)
        partial.replace(self.path)
