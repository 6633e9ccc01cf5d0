"""The subject keys: one AES-256 key per data subject, wrapped by the master key.

A data subject is a person within one association (each association is its own
controller under the PDPL), found by a keyed blind index of their national id,
never by the number. The keys live in one table, `subject_keys`, that every
service needing plaintext opens: a SQLite file beside the stores (make run,
the tests) or a PostgreSQL schema (compose). Only wrapped keys are kept there:
without the master key file the table is useless.

Erasure destroys a subject's keys (the wrapped bytes are overwritten with
NULL and the row keeps only when and why), so every copy of their data, in
every store, view, outbox, log and the stream, becomes unreadable at once. A
key opened recently stays in a process's memory for `cache_seconds` at most;
after that an erasure holds everywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.inputs import ascii_digits
from shared.personal.master import KEY_BYTES, MasterKeyProblem, MasterKeys

NONCE_BYTES = 12
# The PostgreSQL advisory lock under which the keyring's schema and tables are made.
SETUP_LOCK = 0x6B687964
CHECK_PLAINTEXT = b"khidma master key check"


def normalised_national_id(national_id: str) -> str:
    """Digits only, Arabic-Indic digits read as ASCII: one person, one index."""
    text = ascii_digits(str(national_id).strip())
    return "".join(text.split())


def blind_index(index_key: bytes, association_id: str, national_id: str) -> str:
    """The keyed index (HMAC-SHA256) of a person within an association."""
    message = f"{association_id}\x1f{normalised_national_id(national_id)}".encode()
    return hmac.new(index_key, message, hashlib.sha256).hexdigest()[:40]


def _wrap(master: bytes, key_id: str, key: bytes) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + AESGCM(master).encrypt(nonce, key, key_id.encode())


def _unwrap(master: bytes, key_id: str, wrapped: bytes) -> bytes:
    return AESGCM(master).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], key_id.encode())


# A subject's new key; one made meanwhile by another process is kept instead.
_INSERT_KEY = (
    "INSERT INTO subject_keys (key_id, subject_index, association_id, wrapped, "
    "wrapped_by, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)


class _Database(Protocol):
    placeholder: str

    def transaction(self) -> Any: ...
    def close(self) -> None: ...


class _SQLite:
    placeholder = "?"

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.touch(mode=0o600)
        self.connection = sqlite3.connect(
            path, timeout=10, check_same_thread=False, isolation_level=None
        )
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.lock = threading.Lock()

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.lock:
            cursor = self.connection.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    def close(self) -> None:
        self.connection.close()


class _Postgres:
    placeholder = "%s"

    def __init__(self, conninfo: dict[str, Any], schema: str):
        import psycopg

        self.schema = schema
        self.connection = psycopg.connect(**conninfo, autocommit=True)
        # The services start together and share the schema: concurrent `IF NOT EXISTS`
        # creations collide in PostgreSQL's catalogue, so one at a time.
        with self.connection.transaction():
            self.connection.execute("SELECT pg_advisory_xact_lock(%s)", (SETUP_LOCK,))
            self.connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        self.connection.execute(f'SET search_path TO "{schema}"')
        self.lock = threading.Lock()

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.lock, self.connection.transaction(), self.connection.cursor() as cursor:
            yield cursor

    def close(self) -> None:
        self.connection.close()


SCHEMA = (
    """CREATE TABLE IF NOT EXISTS subject_keys (
        key_id TEXT PRIMARY KEY,
        subject_index TEXT NOT NULL,
        association_id TEXT NOT NULL,
        wrapped {blob},
        wrapped_by TEXT,
        created_at TEXT NOT NULL,
        destroyed_at TEXT,
        erasure_id TEXT
    )""",
    # One live key per subject: two services creating it at once agree on one.
    """CREATE UNIQUE INDEX IF NOT EXISTS subject_keys_live
        ON subject_keys (subject_index) WHERE destroyed_at IS NULL""",
    """CREATE TABLE IF NOT EXISTS master_checks (
        master_id TEXT PRIMARY KEY,
        checked {blob} NOT NULL
    )""",
)


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    subject_index: str
    association_id: str
    created_at: str
    destroyed_at: str | None
    erasure_id: str | None


class SubjectKeyring:
    """The subject keys of one deployment. Thread-safe; one per process is enough."""

    def __init__(self, database: _Database, master: MasterKeys, cache_seconds: float = 5.0):
        self.database = database
        self.master = master
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, bytes | None]] = {}
        self._create_tables()
        self._check_master()

    # --- opening -------------------------------------------------------------

    def _sql(self, text: str) -> str:
        return text.replace("?", self.database.placeholder)

    def _create_tables(self) -> None:
        postgres = self.database.placeholder != "?"
        blob = "BYTEA" if postgres else "BLOB"
        with self.database.transaction() as cursor:
            if postgres:  # see _Postgres: one service at a time creates the tables
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", (SETUP_LOCK,))
            for statement in SCHEMA:
                cursor.execute(statement.format(blob=blob))

    def _check_master(self) -> None:
        """A wrong key file stops the service at start, before it writes anything."""
        with self.database.transaction() as cursor:
            cursor.execute("SELECT master_id, checked FROM master_checks")
            checks = {str(row[0]): bytes(row[1]) for row in cursor.fetchall()}
            cursor.execute(
                "SELECT DISTINCT wrapped_by FROM subject_keys WHERE wrapped_by IS NOT NULL"
            )
            used = {str(row[0]) for row in cursor.fetchall()}
            for master_id in sorted(used - set(self.master.keys)):
                raise MasterKeyProblem(
                    f"the master key file {self.master.path} lacks the key {master_id} that "
                    "subject keys are wrapped with: it is not this deployment's key file, or a "
                    "retired key was removed before the rotation finished",
                    f"ملف المفتاح الرئيسي {self.master.path} لا يحوي المفتاح {master_id}: "
                    "ليس ملف مفاتيح هذا النظام",
                )
            for master_id, checked in checks.items():
                if master_id not in self.master.keys:
                    continue
                try:
                    _unwrap(self.master.keys[master_id], master_id, checked)
                except InvalidTag:
                    raise MasterKeyProblem(
                        f"the master key {master_id} in {self.master.path} is not the one this "
                        "keyring was made with (wrong key file)",
                        f"المفتاح الرئيسي {master_id} في {self.master.path} ليس المفتاح الصحيح",
                    ) from None
            for master_id, key in self.master.keys.items():
                if master_id not in checks:
                    cursor.execute(
                        self._sql(
                            "INSERT INTO master_checks (master_id, checked) VALUES (?, ?) "
                            "ON CONFLICT (master_id) DO NOTHING"
                        ),
                        (master_id, _wrap(key, master_id, CHECK_PLAINTEXT)),
                    )

    def close(self) -> None:
        self.database.close()

    # --- subjects --------------------------------------------------------------

    def subject_index(self, association_id: str, national_id: str) -> str:
        return blind_index(self.master.index_key, association_id, national_id)

    def key_for(self, association_id: str, national_id: str) -> str:
        """The id of the subject's live key, made on first use."""
        index = self.subject_index(association_id, national_id)
        return self.key_for_index(association_id, index)

    def key_for_index(self, association_id: str, index: str) -> str:
        select = self._sql(
            "SELECT key_id FROM subject_keys WHERE subject_index = ? AND destroyed_at IS NULL"
        )
        with self.database.transaction() as cursor:
            cursor.execute(select, (index,))
            row = cursor.fetchone()
            if row:
                return str(row[0])
            key_id = "sk-" + secrets.token_hex(12)
            key = secrets.token_bytes(KEY_BYTES)
            cursor.execute(
                self._sql(_INSERT_KEY), self._key_row(index, association_id, key_id, key)
            )
            cursor.execute(select, (index,))
            return str(cursor.fetchone()[0])

    def batch(self, subjects: Iterable[tuple[str, str]]) -> SubjectKeyBatch:
        """The keys of a batch of subjects (association, national id): the live ones
        read in one transaction; the missing ones made by the batch and written in
        one more (`SubjectKeyBatch.record`)."""
        indexes = sorted({self.subject_index(a, n) for a, n in subjects})
        return SubjectKeyBatch(self, self._live_keys(indexes))

    def _live_keys(self, indexes: Sequence[str]) -> dict[str, str]:
        """The live key id of each subject that has one, by blind index."""
        with self.database.transaction() as cursor:
            return self._select_live(cursor, indexes)

    def _select_live(self, cursor: Any, indexes: Sequence[str]) -> dict[str, str]:
        live: dict[str, str] = {}
        for start in range(0, len(indexes), 500):
            chunk = indexes[start : start + 500]
            cursor.execute(
                self._sql(
                    "SELECT subject_index, key_id FROM subject_keys WHERE destroyed_at IS NULL "
                    f"AND subject_index IN ({', '.join('?' * len(chunk))})"
                ),
                chunk,
            )
            live.update({str(row[0]): str(row[1]) for row in cursor.fetchall()})
        return live

    def _key_row(
        self, index: str, association_id: str, key_id: str, key: bytes
    ) -> tuple[str, str, str, Any, str, Any]:
        """A new key's row, wrapped under the current master key (`_INSERT_KEY`)."""
        return (
            key_id,
            index,
            association_id,
            _wrap(self.master.current_key, key_id, key),
            self.master.current,
            _now(),
        )

    def _record_new(self, proposals: Mapping[str, tuple[str, str, bytes]]) -> dict[str, str]:
        """Writes new keys (blind index -> association, key id, key), a subject that
        meanwhile got a key elsewhere keeping that one; returns the live key ids."""
        if not proposals:
            return {}
        with self.database.transaction() as cursor:
            cursor.executemany(
                self._sql(_INSERT_KEY),
                [
                    self._key_row(index, association_id, key_id, key)
                    for index, (association_id, key_id, key) in proposals.items()
                ],
            )
            live = self._select_live(cursor, sorted(proposals))
        now = time.monotonic()
        for index, (_, key_id, key) in proposals.items():
            if live.get(index) == key_id:
                # The records are about to be sealed with it: no read back per key.
                self._cache[key_id] = (now, key)
        return live

    def key(self, key_id: str) -> bytes | None:
        """The subject key, or None once it was destroyed (or never existed)."""
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached and now - cached[0] < self.cache_seconds:
            return cached[1]
        with self.database.transaction() as cursor:
            cursor.execute(
                self._sql("SELECT wrapped, wrapped_by FROM subject_keys WHERE key_id = ?"),
                (key_id,),
            )
            row = cursor.fetchone()
        key = None
        if row and row[0] is not None:
            key = _unwrap(self.master.keys[str(row[1])], key_id, bytes(row[0]))
        self._cache[key_id] = (now, key)
        return key

    def records(self, *, subject_index: str | None = None) -> list[KeyRecord]:
        query = "SELECT key_id, subject_index, association_id, created_at, destroyed_at, erasure_id FROM subject_keys"
        params: Sequence[Any] = ()
        if subject_index is not None:
            query += " WHERE subject_index = ?"
            params = (subject_index,)
        with self.database.transaction() as cursor:
            cursor.execute(self._sql(query + " ORDER BY created_at, key_id"), params)
            rows = cursor.fetchall()
        return [
            KeyRecord(
                key_id=str(row[0]),
                subject_index=str(row[1]),
                association_id=str(row[2]),
                created_at=str(row[3]),
                destroyed_at=None if row[4] is None else str(row[4]),
                erasure_id=None if row[5] is None else str(row[5]),
            )
            for row in rows
        ]

    def destroy(self, subject_index: str, erasure_id: str) -> list[str]:
        """Destroys every key of the subject (crypto-shredding); returns their ids."""
        with self.database.transaction() as cursor:
            cursor.execute(
                self._sql(
                    "SELECT key_id FROM subject_keys WHERE subject_index = ? AND destroyed_at IS NULL"
                ),
                (subject_index,),
            )
            destroyed = [str(row[0]) for row in cursor.fetchall()]
            cursor.execute(
                self._sql(
                    "UPDATE subject_keys SET wrapped = NULL, wrapped_by = NULL, destroyed_at = ?, "
                    "erasure_id = ? WHERE subject_index = ? AND destroyed_at IS NULL"
                ),
                (_now(), erasure_id, subject_index),
            )
        for key_id in destroyed:
            self._cache.pop(key_id, None)
        return destroyed

    # --- rotation ----------------------------------------------------------------

    def rewrap(self, progress: Any = None) -> int:
        """Wraps every live subject key with the current master key; returns how many
        were rewrapped. Safe to run again after an interruption."""
        done = 0
        while True:
            with self.database.transaction() as cursor:
                cursor.execute(
                    self._sql(
                        "SELECT key_id, wrapped, wrapped_by FROM subject_keys WHERE wrapped IS NOT NULL "
                        "AND wrapped_by <> ? LIMIT 500"
                    ),
                    (self.master.current,),
                )
                rows = cursor.fetchall()
                for key_id, wrapped, wrapped_by in rows:
                    key = _unwrap(self.master.keys[str(wrapped_by)], str(key_id), bytes(wrapped))
                    cursor.execute(
                        self._sql(
                            "UPDATE subject_keys SET wrapped = ?, wrapped_by = ? WHERE key_id = ?"
                        ),
                        (
                            _wrap(self.master.current_key, str(key_id), key),
                            self.master.current,
                            key_id,
                        ),
                    )
            done += len(rows)
            if progress and rows:
                progress(done)
            if not rows:
                return done

    def masters_in_use(self) -> set[str]:
        with self.database.transaction() as cursor:
            cursor.execute(
                "SELECT DISTINCT wrapped_by FROM subject_keys WHERE wrapped_by IS NOT NULL"
            )
            return {str(row[0]) for row in cursor.fetchall()}


class SubjectKeyBatch:
    """The subject keys one batch of commands uses (SubjectKeyring.batch).

    `key_for` answers from the keys read at the start, or makes a new key, kept
    in memory until `record` writes all the batch's new keys in one transaction.
    A command run in `command()` that fails takes back the keys it made.
    """

    def __init__(self, keyring: SubjectKeyring, live: dict[str, str]):
        self.keyring = keyring
        self._live = live
        # Blind index -> (association, key id, key), not written yet.
        self._new: dict[str, tuple[str, str, bytes]] = {}

    def subject_index(self, association_id: str, national_id: str) -> str:
        return self.keyring.subject_index(association_id, national_id)

    def key_for(self, association_id: str, national_id: str) -> str:
        index = self.subject_index(association_id, national_id)
        if index in self._live:
            return self._live[index]
        if index not in self._new:
            key_id = "sk-" + secrets.token_hex(12)
            self._new[index] = (association_id, key_id, secrets.token_bytes(KEY_BYTES))
        return self._new[index][1]

    @contextmanager
    def command(self) -> Iterator[None]:
        before = set(self._new)
        try:
            yield
        except BaseException:
            for index in set(self._new) - before:
                del self._new[index]
            raise

    def record(self) -> bool:
        """Writes the batch's new keys; False when a subject got another key
        meanwhile (another service made it first): what was decided with the key
        made here must then be decided again."""
        live = self.keyring._record_new(self._new)
        agreed = all(live.get(index) == key_id for index, (_, key_id, _) in self._new.items())
        self._live.update(live)
        self._new.clear()
        return agreed


def _now() -> str:
    return datetime.now(UTC).isoformat()


def open_keyring(settings: Any, master: MasterKeys | None = None) -> SubjectKeyring:
    """The deployment's keyring, where the settings' store is: one SQLite file in the
    data folder, or the schema `subject_keys` of the services' PostgreSQL database.
    Raises MasterKeyProblem when the master key file is missing or wrong."""
    master = master or MasterKeys.load(settings.master_key_path)
    database: _Database
    if settings.store == "postgres":
        database = _Postgres(
            {
                "host": settings.postgres_host,
                "port": settings.postgres_port,
                "dbname": settings.postgres_dbname,
                "user": settings.postgres_user,
                "password": settings.postgres_password,
            },
            settings.keyring_schema,
        )
    else:
        database = _SQLite(settings.keyring_path)
    try:
        return SubjectKeyring(database, master)
    except BaseException:
        database.close()
        raise


def open_keyring_or_exit(settings: Any) -> SubjectKeyring:
    """The keyring for a service's start: a missing or wrong master key stops it
    with a message an operator can act on, before it reads or writes anything."""
    import sys

    try:
        return open_keyring(settings)
    except MasterKeyProblem as problem:
        print(
            f"{settings.service_name}: cannot start: {problem.en}\n"
            f"{settings.service_name}: تعذّر التشغيل: {problem.ar}",
            file=sys.stderr,
        )
        raise SystemExit(3) from None
