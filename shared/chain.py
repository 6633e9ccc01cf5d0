"""The hash chain every service's store keeps, and the recorders that write it.

Format (version 1), for each recorded event in notification order:

    content_hash = SHA-256( "khidma-chain/1 content\\n"
                            || field(originator_id) || u64(originator_version)
                            || field(topic) || field(state) )
    hash         = SHA-256( "khidma-chain/1 link\\n"
                            || previous hash (32 bytes) || u64(notification_id)
                            || content_hash (32 bytes) )

where `u64(n)` is the 8-byte big-endian unsigned integer, `field(x)` is
`u64(len(bytes)) || bytes` of the UTF-8 text (or the raw state bytes), the
originator id is written as text (a UUID in its canonical lowercase hyphenated
form), and the previous hash of the first event is 32 zero bytes (GENESIS).
The hash therefore covers the previous hash, the notification id, the
originator id and version, the topic and the stored state bytes; the content
hash alone (no position) lets a verifier recognise an event moved elsewhere.
Hashes are stored as lowercase hex.

The chain lives in the same database as the events (SQLite table
`event_chain`; PostgreSQL table `<application name>_chain` in the service's
schema) and each entry is written in the same transaction as its event, after
the insert, while the writer holds the store's write lock (SQLite serialises
writers; the PostgreSQL recorder takes an EXCLUSIVE lock on the events table),
so reading the previous head inside that transaction is safe.

Stores of the in-memory (`eventsourcing.popo`) module, used by unit tests,
keep no chain.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    InfrastructureFactory,
    ProcessRecorder,
    StoredEvent,
    Tracking,
)
from eventsourcing.postgres import PostgresFactory, PostgresProcessRecorder
from eventsourcing.sqlite import SQLiteCursor, SQLiteFactory, SQLiteProcessRecorder
from psycopg.sql import SQL, Identifier

CHAIN_VERSION = "khidma-chain/1"
GENESIS = bytes(32)
GENESIS_HEX = GENESIS.hex()
SQLITE_CHAIN_TABLE = "event_chain"

_CONTENT_PREFIX = f"{CHAIN_VERSION} content\n".encode()
_LINK_PREFIX = f"{CHAIN_VERSION} link\n".encode()
_U64 = struct.Struct(">Q")


def _field(data: bytes) -> bytes:
    return _U64.pack(len(data)) + data


def originator_text(originator_id: UUID | str) -> str:
    """The originator id as the chain writes it: a UUID's canonical form, or the text."""
    return str(originator_id)


def content_hash(
    originator_id: UUID | str, originator_version: int, topic: str, state: bytes
) -> bytes:
    """SHA-256 of one event's content, without its position in the log."""
    return hashlib.sha256(
        _CONTENT_PREFIX
        + _field(originator_text(originator_id).encode())
        + _U64.pack(originator_version)
        + _field(topic.encode())
        + _field(bytes(state))
    ).digest()


def link_hash(previous: bytes, notification_id: int, content: bytes) -> bytes:
    """SHA-256 over the previous hash, the notification id and the content hash."""
    return hashlib.sha256(_LINK_PREFIX + previous + _U64.pack(notification_id) + content).digest()


@dataclass(frozen=True)
class ChainEntry:
    notification_id: int
    content_hash: str
    prev_hash: str
    hash: str


def chain_entries(
    previous: bytes, rows: Sequence[tuple[int, UUID | str, int, str, bytes]]
) -> list[ChainEntry]:
    """The entries that extend a chain whose head hash is `previous`."""
    entries = []
    for notification_id, originator_id, version, topic, state in rows:
        content = content_hash(originator_id, version, topic, state)
        digest = link_hash(previous, notification_id, content)
        entries.append(ChainEntry(notification_id, content.hex(), previous.hex(), digest.hex()))
        previous = digest
    return entries


# The keyword of `insert_events` (and so of `EventStore.put`) that names more
# tracking positions, each written as its own row in the events' transaction: a
# batch of consumed messages is recorded at once (docs/decisions.md, 39). The
# library's `tracking=` takes one.
TRACKINGS = "trackings"


def _insert_trackings(recorder: Any, cursor: Any, kwargs: dict[str, Any]) -> None:
    trackings: Sequence[Tracking] = kwargs.get(TRACKINGS, ())
    for tracking in trackings:
        # The library's own insert, so a position already recorded is an
        # IntegrityError and the whole transaction rolls back, as for `tracking=`.
        recorder._insert_tracking(cursor, tracking)


def records_trackings(recorder: ProcessRecorder) -> bool:
    """Whether `recorder` writes the rows of `trackings=` (the in-memory one does not)."""
    return isinstance(recorder, (ChainedSQLiteProcessRecorder, ChainedPostgresProcessRecorder))


# --------------------------------------------------------------------- SQLite


class ChainedSQLiteProcessRecorder(SQLiteProcessRecorder):
    """SQLite process recorder that chains every event it inserts."""

    chain_table_name = SQLITE_CHAIN_TABLE

    def construct_create_table_statements(self) -> list[str]:
        statements = super().construct_create_table_statements()
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {self.chain_table_name} ("
            "notification_id INTEGER PRIMARY KEY, "
            "content_hash TEXT NOT NULL, "
            "prev_hash TEXT NOT NULL, "
            "hash TEXT NOT NULL)"
        )
        return statements

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        notification_ids = super()._insert_events(c, stored_events, **kwargs)
        _insert_trackings(self, c, kwargs)
        if notification_ids:
            # Inside the writing transaction: SQLite holds the write lock now.
            c.execute(
                f"SELECT hash FROM {self.chain_table_name} ORDER BY notification_id DESC LIMIT 1"
            )
            row = c.fetchone()
            previous = bytes.fromhex(row[0]) if row else GENESIS
            entries = chain_entries(
                previous,
                [
                    (nid, s.originator_id, s.originator_version, s.topic, s.state)
                    for nid, s in zip(notification_ids, stored_events)
                ],
            )
            c.executemany(
                f"INSERT INTO {self.chain_table_name} VALUES (?,?,?,?)",
                [(e.notification_id, e.content_hash, e.prev_hash, e.hash) for e in entries],
            )
        return notification_ids


# ----------------------------------------------------------------- PostgreSQL


def postgres_table_names(app_name: str) -> tuple[str, str, str]:
    """(events, tracking, chain) table names, as PostgresFactory.process_recorder names them."""
    events = (app_name.lower() or "stored") + "_events"
    tracking = (app_name.lower() or "notification") + "_tracking"
    chain = (app_name.lower() or "stored") + "_chain"
    return events, tracking, chain


class ChainedPostgresProcessRecorder(PostgresProcessRecorder):
    """PostgreSQL process recorder that chains every event it inserts."""

    def __init__(
        self,
        datastore: Any,
        *,
        events_table_name: str = "stored_events",
        tracking_table_name: str = "notification_tracking",
        chain_table_name: str = "stored_chain",
    ):
        super().__init__(
            datastore,
            events_table_name=events_table_name,
            tracking_table_name=tracking_table_name,
        )
        self.check_identifier_length(chain_table_name)
        self.chain_table_name = chain_table_name
        schema = Identifier(self.datastore.schema)
        chain = Identifier(chain_table_name)
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{chain} ("
                "notification_id bigint PRIMARY KEY, "
                "content_hash text NOT NULL, "
                "prev_hash text NOT NULL, "
                "hash text NOT NULL)"
            ).format(schema=schema, chain=chain)
        )
        self.select_chain_head_statement = SQL(
            "SELECT hash FROM {schema}.{chain} ORDER BY notification_id DESC LIMIT 1"
        ).format(schema=schema, chain=chain)
        self.select_inserted_statement = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM {schema}.{table} WHERE notification_id = ANY(%s) "
            "ORDER BY notification_id"
        ).format(schema=schema, table=Identifier(self.events_table_name))
        self.insert_chain_statement = SQL(
            "INSERT INTO {schema}.{chain} "
            "(notification_id, content_hash, prev_hash, hash) VALUES (%s, %s, %s, %s)"
        ).format(schema=schema, chain=chain)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if self.datastore.enable_db_functions:  # that path skips the chain
            msg = "POSTGRES_ENABLE_DB_FUNCTIONS cannot be used with the hash chain"
            raise OSError(msg)
        return super().insert_events(stored_events, **kwargs)

    def _insert_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        # The library writes `tracking=` here, in the events' transaction; the others too.
        super()._insert_events(curs, stored_events, **kwargs)
        _insert_trackings(self, curs, kwargs)

    def _fetch_ids_after_insert_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        notification_ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        if notification_ids:
            # Still inside the transaction that holds the EXCLUSIVE lock on the
            # events table (taken before the insert), so the head is stable.
            with curs.connection.cursor() as c:
                c.execute(self.select_chain_head_statement)
                row = c.fetchone()
                previous = bytes.fromhex(row["hash"]) if row else GENESIS
                # Read back what was stored: RETURNING's order is not a contract.
                c.execute(self.select_inserted_statement, (list(notification_ids),))
                rows = [
                    (
                        r["notification_id"],
                        r["originator_id"],
                        r["originator_version"],
                        r["topic"],
                        bytes(r["state"]),
                    )
                    for r in c.fetchall()
                ]
                entries = chain_entries(previous, rows)
                c.executemany(
                    self.insert_chain_statement,
                    [(e.notification_id, e.content_hash, e.prev_hash, e.hash) for e in entries],
                )
        return notification_ids


# -------------------------------------------------------------- construction


def chained_process_recorder(
    factory: InfrastructureFactory, *, create_table: bool | None = None
) -> ProcessRecorder:
    """The process recorder of `factory`'s store, keeping the chain.

    Mirrors the factory's own process_recorder(); other persistence modules
    (in memory) get the library's recorder, without a chain.
    """
    if create_table is None:
        create_table = bool(getattr(factory, "env_create_table", lambda: False)())
    recorder: ProcessRecorder
    if isinstance(factory, SQLiteFactory):
        recorder = ChainedSQLiteProcessRecorder(datastore=factory.datastore)
        if create_table:
            recorder.create_table()
        return recorder
    if isinstance(factory, PostgresFactory):
        events, tracking, chain = postgres_table_names(factory.env.name)
        recorder = ChainedPostgresProcessRecorder(
            factory.datastore,
            events_table_name=events,
            tracking_table_name=tracking,
            chain_table_name=chain,
        )
        if create_table:
            recorder.create_table()
        return recorder
    return factory.process_recorder()


# ------------------------------------------------------------------ reading


@dataclass(frozen=True)
class StoredRow:
    notification_id: int
    originator_id: UUID | str
    originator_version: int
    topic: str
    state: bytes


class ChainReader:
    """Reads a store's events and chain, page by page, without writing anything."""

    def __init__(self, factory: InfrastructureFactory):
        self.factory = factory
        if isinstance(factory, SQLiteFactory):
            self.kind = "sqlite"
            self.events_table = "stored_events"
            self.chain_table = SQLITE_CHAIN_TABLE
        elif isinstance(factory, PostgresFactory):
            self.kind = "postgres"
            self.events_table, _, self.chain_table = postgres_table_names(factory.env.name)
        else:
            raise TypeError(f"no chain in a {type(factory).__name__} store")
        self.datastore: Any = factory.datastore

    def _query(self, statement: Any, params: Sequence[Any] = ()) -> list[Any]:
        if self.kind == "sqlite":
            with self.datastore.transaction(commit=False) as c:
                c.execute(statement, params)
                return list(c.fetchall())
        with self.datastore.get_connection() as conn, conn.cursor() as c:
            c.execute(statement, params)
            return list(c.fetchall())

    def _table(self, name: str) -> Any:
        if self.kind == "sqlite":
            return name
        return SQL("{}.{}").format(Identifier(self.datastore.schema), Identifier(name))

    def _sql(self, text: str, **tables: str) -> Any:
        if self.kind == "sqlite":
            return text.format(**tables).replace("%s", "?")
        return SQL(text).format(**{k: self._table(v) for k, v in tables.items()})

    def table_exists(self, name: str) -> bool:
        if self.kind == "sqlite":
            rows = self._query("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,))
            return bool(rows)
        rows = self._query(
            "SELECT to_regclass(%s) AS oid",
            (f'"{self.datastore.schema}"."{name}"',),
        )
        return bool(rows and rows[0]["oid"])

    def has_events(self) -> bool:
        return self.table_exists(self.events_table)

    def has_chain(self) -> bool:
        return self.table_exists(self.chain_table)

    def max_notification_id(self) -> int:
        if not self.has_events():
            return 0
        key = "rowid" if self.kind == "sqlite" else "notification_id"
        rows = self._query(self._sql(f"SELECT MAX({key}) AS m FROM {{t}}", t=self.events_table))
        return int(rows[0]["m"] or 0) if rows else 0

    def max_chain_id(self) -> int:
        if not self.has_chain():
            return 0
        rows = self._query(
            self._sql("SELECT MAX(notification_id) AS m FROM {c}", c=self.chain_table)
        )
        return int(rows[0]["m"] or 0) if rows else 0

    def events(self, page: int = 1000, stop: int | None = None) -> Iterator[StoredRow]:
        """Every stored event in notification order (up to `stop`), `page` rows at a time."""
        if not self.has_events():
            return
        key = "rowid" if self.kind == "sqlite" else "notification_id"
        statement = self._sql(
            f"SELECT {key} AS nid, originator_id, originator_version, topic, state "
            f"FROM {{t}} WHERE {key} > %s AND {key} <= %s ORDER BY {key} LIMIT %s",
            t=self.events_table,
        )
        bound = stop if stop is not None else 2**63 - 1
        after = 0
        while True:
            rows = self._query(statement, (after, bound, page))
            for r in rows:
                yield StoredRow(
                    int(r["nid"]),
                    r["originator_id"],
                    int(r["originator_version"]),
                    r["topic"],
                    bytes(r["state"]),
                )
            if len(rows) < page:
                return
            after = int(rows[-1]["nid"])

    def originator(self, row: StoredRow) -> UUID | str:
        """The originator id as the recorder handed it to the chain when writing."""
        value = row.originator_id
        if isinstance(value, UUID):
            return value
        if getattr(self.datastore, "originator_id_type", "uuid") == "uuid":
            try:
                return UUID(str(value))
            except ValueError:
                return str(value)
        return str(value)

    def chain(self, page: int = 1000, stop: int | None = None) -> Iterator[ChainEntry]:
        """Every chain entry in notification order (up to `stop`), `page` rows at a time."""
        if not self.has_chain():
            return
        statement = self._sql(
            "SELECT notification_id, content_hash, prev_hash, hash FROM {c} "
            "WHERE notification_id > %s AND notification_id <= %s "
            "ORDER BY notification_id LIMIT %s",
            c=self.chain_table,
        )
        bound = stop if stop is not None else 2**63 - 1
        after = 0
        while True:
            rows = self._query(statement, (after, bound, page))
            for r in rows:
                yield ChainEntry(
                    int(r["notification_id"]), r["content_hash"], r["prev_hash"], r["hash"]
                )
            if len(rows) < page:
                return
            after = int(rows[-1]["notification_id"])

    def chain_ids_with_content(self, content: str, limit: int = 5) -> list[int]:
        """Chain positions whose recorded content hash is `content` (reorder detection)."""
        if not self.has_chain():
            return []
        rows = self._query(
            self._sql(
                "SELECT notification_id FROM {c} WHERE content_hash = %s "
                "ORDER BY notification_id LIMIT %s",
                c=self.chain_table,
            ),
            (content, limit),
        )
        return [int(r["notification_id"]) for r in rows]
