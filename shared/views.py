"""Read models: projections of a service's own event store.

A view is a set of JSON documents kept in a local SQLite file together with
the notification id it has reached, updated in one transaction. Deleting the
file is always safe: the runner rebuilds every view from the store. The file
also remembers a fingerprint of the code that shaped its documents (the
service's package and `shared/`), so a new version rebuilds its views by itself
after an upgrade.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from eventsourcing.domain import DomainEventProtocol

from shared.store import ServiceApplication, StoreRunner
from shared.wake import woken_or_timed_out

log = logging.getLogger(__name__)

Document = dict[str, Any]


class ViewTransaction:
    """What a projection may do to its documents while applying one batch.

    What it puts or deletes is kept here, as the JSON text the file will hold, and
    written once when the batch ends (`flush`: one statement for all its documents,
    each document once however often it changed); what it gets sees what it put.
    A document got is a fresh copy, as from the file: changing it changes nothing
    until it is put."""

    def __init__(self, cursor: sqlite3.Cursor):
        self._cursor = cursor
        # (view, key) -> (the document's JSON, its indexed values), or None: deleted.
        self._written: dict[tuple[str, str], tuple[str, tuple[Any, ...]] | None] = {}

    def get(self, view: str, key: str) -> Document | None:
        if (view, key) in self._written:
            written = self._written[(view, key)]
            return None if written is None else json.loads(written[0])
        return _document(self._cursor, view, key)

    def put(self, view: str, key: str, doc: Document) -> None:
        text = json.dumps(doc, ensure_ascii=False, default=str)
        self._written[(view, key)] = (text, indexed_values(doc))

    def delete(self, view: str, key: str) -> None:
        self._written[(view, key)] = None

    def flush(self) -> None:
        """Writes what the batch put and deleted, in the transaction it runs in."""
        puts = [(v, k, w[0], *w[1]) for (v, k), w in self._written.items() if w is not None]
        deletes = [(v, k) for (v, k), w in self._written.items() if w is None]
        self._written = {}
        if puts:
            self._cursor.executemany(_UPSERT, puts)
        if deletes:
            self._cursor.executemany("DELETE FROM docs WHERE view=? AND key=?", deletes)


def _document(reader: sqlite3.Connection | sqlite3.Cursor, view: str, key: str) -> Document | None:
    row = reader.execute("SELECT doc FROM docs WHERE view=? AND key=?", (view, key)).fetchone()
    return None if row is None else json.loads(row[0])


_UPSERT = (
    "INSERT INTO docs (view, key, doc, sort_key, association_id, status) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (view, key) DO UPDATE SET doc=excluded.doc, "
    "sort_key=excluded.sort_key, association_id=excluded.association_id, "
    "status=excluded.status"
)


Projector = Callable[[DomainEventProtocol, ViewTransaction], None]

# A document's fields that lists filter and order by, kept beside it in columns of
# their own (indexed): a list of 100,000 cases then never parses every document.
INDEXED_FIELDS = ("association_id", "status")
# A rowid table: SQLite keeps rows of a few hundred bytes (a document) better in one
# than in a WITHOUT ROWID table keyed by random ids (a rebuild took 1.36 times as long).
_DOCS_TABLE = (
    "CREATE TABLE IF NOT EXISTS docs ("
    "view TEXT NOT NULL, key TEXT NOT NULL, doc TEXT NOT NULL, "
    # No declared type: a value keeps its JSON type, so the order is json_extract's.
    "sort_key, association_id, status, "
    "PRIMARY KEY (view, key))"
)
# The lists' indexes, by name: their columns.
_DOCS_INDEXES = {
    "docs_in_order": "(view, sort_key, key, association_id, status)",
    "docs_by_association": "(view, association_id, sort_key, key, status)",
}


def _older_layout(cursor: sqlite3.Cursor) -> bool:
    """Whether the file's documents are kept as an older version kept them: without
    the indexed columns, or in a WITHOUT ROWID table."""
    row = cursor.execute(
        "SELECT sql FROM sqlite_master WHERE type='table' AND name='docs'"
    ).fetchone()
    if row is None:
        return False
    layout = str(row[0]).upper()
    return "SORT_KEY" not in layout or "WITHOUT ROWID" in layout


def _create_indexes(cursor: sqlite3.Cursor) -> None:
    for name, columns in _DOCS_INDEXES.items():
        cursor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON docs {columns}")


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def indexed_values(doc: Document) -> tuple[Any, ...]:
    """The document's sort key and indexed fields, as its columns hold them."""
    return (_scalar(doc.get("sort_key")), *(_scalar(doc.get(f)) for f in INDEXED_FIELDS))


class ViewStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._transaction() as cursor:
            if _older_layout(cursor):
                # A file of an older version: its views are rebuilt from the store, as
                # after any change of their code.
                cursor.execute("DROP TABLE docs")
                cursor.execute("DROP TABLE IF EXISTS positions")
                cursor.execute("DROP TABLE IF EXISTS fingerprints")
            cursor.execute(_DOCS_TABLE)
            _create_indexes(cursor)
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS positions ("
                "name TEXT PRIMARY KEY, position INTEGER NOT NULL)"
            )
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS fingerprints ("
                "name TEXT PRIMARY KEY, fingerprint TEXT NOT NULL)"
            )

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, isolation_level=None, timeout=10)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
        return connection

    class _Tx:
        def __init__(self, connection: sqlite3.Connection):
            self.connection = connection

        def __enter__(self) -> sqlite3.Cursor:
            self.cursor = self.connection.cursor()
            self.cursor.execute("BEGIN IMMEDIATE")
            return self.cursor

        def __exit__(self, kind: object, *_: object) -> None:
            self.cursor.execute("COMMIT" if kind is None else "ROLLBACK")

    def _transaction(self) -> ViewStore._Tx:
        return ViewStore._Tx(self._connection())

    def reset_if_changed(self, name: str, fingerprint: str) -> bool:
        """Drops the views built by another version of the projection; True if it did.

        The documents were shaped by the projection's code: after an upgrade that
        changed it, they are rebuilt from the store rather than served half old.
        """
        with self._transaction() as cursor:
            row = cursor.execute(
                "SELECT fingerprint FROM fingerprints WHERE name=?", (name,)
            ).fetchone()
            if row is not None and row[0] == fingerprint:
                return False
            had_views = cursor.execute("SELECT 1 FROM positions WHERE name=?", (name,)).fetchone()
            cursor.execute("DELETE FROM docs")
            cursor.execute("DELETE FROM positions WHERE name=?", (name,))
            cursor.execute(
                "INSERT INTO fingerprints (name, fingerprint) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET fingerprint=excluded.fingerprint",
                (name, fingerprint),
            )
        return had_views is not None

    @contextlib.contextmanager
    def indexes_built_after(self) -> Iterator[None]:
        """Around a rebuild from nothing: the lists' two indexes are dropped and built
        once at the end, not kept up to date through every write. A process stopped
        meanwhile builds them when it opens the file again (`__init__`)."""
        with self._transaction() as cursor:
            for name in _DOCS_INDEXES:
                cursor.execute(f"DROP INDEX IF EXISTS {name}")
        try:
            yield
        finally:
            with self._transaction() as cursor:
                _create_indexes(cursor)

    def position(self, name: str) -> int:
        row = (
            self._connection()
            .execute("SELECT position FROM positions WHERE name=?", (name,))
            .fetchone()
        )
        return 0 if row is None else int(row[0])

    def apply(
        self,
        name: str,
        projector: Projector,
        events: Sequence[DomainEventProtocol],
        position: int,
    ) -> None:
        with self._transaction() as cursor:
            transaction = ViewTransaction(cursor)
            for event in events:
                projector(event, transaction)
            transaction.flush()
            cursor.execute(
                "INSERT INTO positions (name, position) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET position=excluded.position",
                (name, position),
            )

    def get(self, view: str, key: str) -> Document | None:
        return _document(self._connection(), view, key)

    def find(
        self, view: str, *, limit: int = 100, offset: int = 0, **equals: Any
    ) -> list[Document]:
        """Documents of a view whose top-level fields equal the given values (or one of
        them, for a list, tuple or set: an empty one finds nothing)."""
        clauses = ["view=?"]
        params: list[Any] = [view]
        for field_name, value in equals.items():
            if not field_name.isidentifier():
                raise ValueError(f"bad field name {field_name!r}")
            column = (
                field_name
                if field_name in INDEXED_FIELDS
                else f"json_extract(doc, '$.{field_name}')"
            )
            if isinstance(value, list | tuple | set | frozenset):
                if not value:
                    return []
                marks = ",".join("?" * len(value))
                clauses.append(f"{column} IN ({marks})")
                params.extend(sorted(value))
                continue
            clauses.append(f"{column}=?")
            params.append(value)
        params += [limit, offset, view]
        # The page's keys first, from the indexes alone, then only its documents: a
        # late page never carries the documents before it through the sort.
        rows = (
            self._connection()
            .execute(
                f"SELECT docs.doc FROM (SELECT key, sort_key FROM docs "
                f"WHERE {' AND '.join(clauses)} ORDER BY sort_key, key LIMIT ? OFFSET ?) AS page "
                "JOIN docs ON docs.view=? AND docs.key=page.key ORDER BY page.sort_key, page.key",
                params,
            )
            .fetchall()
        )
        return [json.loads(row[0]) for row in rows]

    def count(self, view: str) -> int:
        row = (
            self._connection().execute("SELECT COUNT(*) FROM docs WHERE view=?", (view,)).fetchone()
        )
        return int(row[0])

    def iter_all(self, view: str) -> Iterator[Document]:
        for row in self._connection().execute(
            "SELECT doc FROM docs WHERE view=? ORDER BY key", (view,)
        ):
            yield json.loads(row[0])


def projection_fingerprint(projector: Projector) -> str:
    """A hash of the code that shapes the views: the projection's package (its
    module and the service modules it reads from) and the shared package (dates
    shown in both calendars and the like)."""
    digest = hashlib.sha256()
    module = inspect.getmodule(projector)
    source_file = getattr(module, "__file__", None)
    if source_file is None:  # built where no source exists: its name is all we know
        digest.update(getattr(projector, "__qualname__", repr(projector)).encode("utf-8"))
        return digest.hexdigest()
    folders = [Path(source_file).resolve().parent, Path(__file__).resolve().parent]
    for folder in folders:
        for path in sorted(folder.glob("*.py")):
            digest.update(path.name.encode("utf-8") + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


class ProjectionRunner:
    """Keeps a service's views up to date by tailing its notification log."""

    def __init__(
        self,
        app: ServiceApplication,
        store: StoreRunner,
        views: ViewStore,
        projector: Projector,
        *,
        name: str = "views",
        batch_size: int = 500,
        poll_interval: float = 0.25,
        catch_up_batch_size: int = 5000,
    ):
        self.app = app
        self.store = store
        self.views = views
        self.projector = projector
        self.name = name
        self.batch_size = batch_size
        # The catch-up at start (before the service serves, a rebuild of every view
        # after an upgrade): larger transactions, a tenth of the commits.
        self.catch_up_batch_size = max(batch_size, catch_up_batch_size)
        self.poll_interval = poll_interval
        self.position = 0
        self._wake = asyncio.Event()
        if views.reset_if_changed(name, projection_fingerprint(projector)):
            log.warning(
                "the projection %s changed since its views were built: rebuilding them "
                "from the store",
                name,
            )

    def wake(self) -> None:
        self._wake.set()

    def catch_up_once(self, batch_size: int | None = None) -> int:
        """Applies one batch; returns how many notifications it applied."""
        self.position = self.views.position(self.name)
        notifications = self.app.read_notifications(self.position, batch_size or self.batch_size)
        if not notifications:
            return 0
        events = [self.app.mapper.to_domain_event(n) for n in notifications]
        self.views.apply(self.name, self.projector, events, notifications[-1].id)
        self.position = notifications[-1].id
        return len(notifications)

    def catch_up(self) -> int:
        """Applies every notification not yet in the views; how many it applied."""
        rebuilding = self.views.position(self.name) == 0
        total = 0
        with self.views.indexes_built_after() if rebuilding else contextlib.nullcontext():
            while moved := self.catch_up_once(self.catch_up_batch_size):
                total += moved
        return total

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                moved = await self.store.run(self.catch_up_once)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("projection %s failed; retrying", self.name)
                await asyncio.sleep(1.0)
                continue
            if moved == 0:
                await woken_or_timed_out(self._wake, self.poll_interval)

    async def lag(self) -> int:
        return max(0, await self.store.run(self.app.max_notification_id) - self.position)
