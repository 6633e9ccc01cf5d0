"""Personal data in what the audit reads: sealed values opened, or shown as erased.

After issue 10 the personal attributes of stored events, and the personal fields
of RequestReceived on the stream, are sealed (`{"sealed": "v1", "key": …, "data":
…}`, shared/personal, decision 24). The audit opens them with the deployment's
keyring when it has the master key file (`KHIDMA_MASTER_KEY_FILE`, the keyring as
the services': `KHIDMA_KEYRING_FILE` or, PostgreSQL, `KHIDMA_KEYRING_SCHEMA`). It
only reads the keyring: it never makes a subject key.

- A value whose subject's key was destroyed (an erasure) is shown as ERASED_TEXT,
  `{"erased": true, "en": "erased", "ar": "مُحيت"}`;
- without the key file (or without a keyring) the audit still runs and shows
  every sealed value as SEALED_TEXT, `{"sealed": true, "en": "sealed", …}`;
- a key file that is not the deployment's stops the command (MasterKeyProblem).

Values are opened in memory only, at the end (a timeline as it is shown, an
export): the audit's temporary working files hold them sealed.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.personal.keyring import KeyRecord, SubjectKeyring, open_keyring
from shared.personal.master import MasterKeys
from shared.personal.sealing import ERASED, ERASED_TEXT, Sealer, is_sealed

SEALED_TEXT: dict[str, Any] = {"sealed": True, "en": "sealed", "ar": "مُشفَّر"}
UNREADABLE_TEXT: dict[str, Any] = {
    "unreadable": True,
    "en": "unreadable: fails its integrity check",
    "ar": "غير مقروء: فشل التحقق من سلامته",
}

_KEYRINGS: dict[tuple[str, ...], SubjectKeyring | None] = {}


def _where(settings: Any) -> tuple[str, ...]:
    if settings.store == "postgres":
        place = f"{settings.postgres_host}:{settings.postgres_port}/{settings.postgres_dbname}"
        return (str(settings.master_key_path), place, settings.keyring_schema)
    return (str(settings.master_key_path), str(settings.keyring_path))


def audit_keyring(settings: Any) -> SubjectKeyring | None:
    """The deployment's keyring, read only, once per process; None without the
    master key file or (SQLite) without the keyring file: nothing can be opened.
    Raises MasterKeyProblem when the key file is not the keyring's."""
    where = _where(settings)
    if where in _KEYRINGS:
        return _KEYRINGS[where]
    keyring: SubjectKeyring | None = None
    if settings.master_key_path.exists() and (
        settings.store == "postgres" or settings.keyring_path.exists()
    ):
        keyring = open_keyring(settings, MasterKeys.load(settings.master_key_path))
        # Every read asks the keyring: an erasure done a moment ago holds at once.
        keyring.cache_seconds = 0.0
    _KEYRINGS[where] = keyring
    return keyring


def close_keyrings() -> None:
    """Closes the keyrings this process opened (tests)."""
    for keyring in _KEYRINGS.values():
        if keyring is not None:
            keyring.close()
    _KEYRINGS.clear()


class _RunKeys:
    """The subject keys one run has asked for: each asked once."""

    def __init__(self, keyring: SubjectKeyring):
        self.keyring = keyring
        self.known: dict[str, bytes | None] = {}

    def key(self, key_id: str) -> bytes | None:
        if key_id not in self.known:
            self.known[key_id] = self.keyring.key(key_id)
        return self.known[key_id]


class Opener:
    """Opens the sealed values of one run (a command, a request)."""

    def __init__(self, keyring: SubjectKeyring | None):
        self.keyring = keyring
        self.sealer = Sealer(_RunKeys(keyring)) if keyring is not None else None

    @property
    def can_open(self) -> bool:
        return self.sealer is not None

    def plain(self, value: Any) -> Any:
        """The plaintext of a sealed value, ERASED once erased, None when it cannot
        be opened here (no key file); anything not sealed as it is."""
        if not is_sealed(value):
            return value
        if self.sealer is None:
            return None
        try:
            return self.sealer.open(value)
        except ValueError:
            return None

    def shown(self, value: Any) -> Any:
        """`value` with every sealed value in it opened, or shown as erased / sealed."""
        if isinstance(value, dict):
            if is_sealed(value):
                return self._shown_sealed(value)
            return {key: self.shown(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.shown(item) for item in value]
        return value

    def _shown_sealed(self, value: dict[str, Any]) -> Any:
        if self.sealer is None:
            return SEALED_TEXT
        try:
            opened = self.sealer.open(value)
        except ValueError:
            return UNREADABLE_TEXT
        return ERASED_TEXT if opened is ERASED else opened

    def comparable(self, value: Any) -> Any:
        """`value` with every sealed value in it replaced by what can be compared
        between two copies sealed apart (random nonces differ byte-wise): the
        subject key id and a digest of the plaintext when it can be opened, the key
        id alone when it cannot (erased, or no key file). Never the plaintext."""
        if isinstance(value, dict):
            if is_sealed(value):
                opened = self.plain(value)
                marker: dict[str, Any] = {"sealed_under": str(value["key"])}
                if opened is not None and opened is not ERASED:
                    marker["digest"] = digest(opened)
                return marker
            return {key: self.comparable(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.comparable(item) for item in value]
        return value


def digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def opener_for(settings: Any, *, warn: bool = False) -> Opener:
    """An opener for one run over the deployment's keyring (see audit_keyring).
    With `warn`, says on stderr when sealed values will show as sealed."""
    keyring = audit_keyring(settings)
    if keyring is None and warn:
        print(
            f"no master key file at {settings.master_key_path} (KHIDMA_MASTER_KEY_FILE) or no "
            "keyring: personal data is shown as sealed / لا يوجد ملف المفتاح الرئيسي: "
            "تظهر البيانات الشخصية مُشفَّرة",
            file=sys.stderr,
        )
    return Opener(keyring)


def is_shown_erased(value: Any) -> bool:
    return isinstance(value, dict) and value.get("erased") is True and "ar" in value


def is_unknown(value: Any) -> bool:
    """True for a value the audit cannot read: erased, sealed without the key file,
    unreadable; a check cannot judge it (and must not report it as missing)."""
    return isinstance(value, dict) and (
        is_sealed(value)
        or is_shown_erased(value)
        or value.get("sealed") is True
        or value.get("unreadable") is True
    )


# --- erasures ------------------------------------------------------------------------


@dataclass(frozen=True)
class Erasure:
    """One erasure: the subject keys destroyed under one erasure id."""

    erasure_id: str
    association_id: str
    destroyed_at: datetime
    key_ids: tuple[str, ...]


def erasures(records: list[KeyRecord]) -> list[Erasure]:
    """The erasures the keyring records (its destroyed keys), oldest first."""
    found: dict[tuple[str, str], list[KeyRecord]] = {}
    for record in records:
        if record.destroyed_at is None:
            continue
        erasure_id = record.erasure_id or f"key:{record.key_id}"
        found.setdefault((record.association_id, erasure_id), []).append(record)
    result = [
        Erasure(
            erasure_id=erasure_id,
            association_id=association_id,
            destroyed_at=min(_moment(str(r.destroyed_at)) for r in group),
            key_ids=tuple(r.key_id for r in group),
        )
        for (association_id, erasure_id), group in found.items()
    ]
    return sorted(result, key=lambda e: (e.destroyed_at, e.erasure_id))


def keyring_erasures(settings: Any) -> list[Erasure] | None:
    """The deployment's erasures; None when the keyring cannot be read here."""
    keyring = audit_keyring(settings)
    return None if keyring is None else erasures(keyring.records())


def _moment(text: str) -> datetime:
    from datetime import UTC

    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
