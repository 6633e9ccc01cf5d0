"""The read models' store: lists filter and order by indexed columns, and a file of
an older version (without them) is rebuilt rather than misread."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pytest

from shared.views import ViewStore, ViewTransaction

pytestmark = pytest.mark.unit


def _fill(store: ViewStore, docs: dict[str, dict]) -> None:
    def project(event: object, views: ViewTransaction) -> None:
        for key, doc in docs.items():
            views.put("cases", key, doc)

    store.apply("test", project, [object()], position=1)  # type: ignore[list-item]


def test_a_list_is_filtered_and_ordered_as_the_documents_say(tmp_path: Path) -> None:
    store = ViewStore(tmp_path / "views.sqlite")
    docs = {
        f"k{n:03d}": {
            "association_id": "sidr" if n % 2 else "elites",
            "status": "received" if n % 3 else "approved",
            "sort_key": f"2026-01-01T00:{(99 - n) // 60:02d}:{(99 - n) % 60:02d}",
            "n": n,
        }
        for n in range(100)
    }
    _fill(store, docs)
    expected = sorted(
        (d for d in docs.values() if d["association_id"] == "sidr" and d["status"] == "received"),
        key=lambda d: d["sort_key"],
    )
    found = store.find("cases", limit=10, offset=5, association_id=["sidr"], status="received")
    assert [d["n"] for d in found] == [d["n"] for d in expected[5:15]]
    # A field that is not indexed still filters, from the document.
    assert [d["n"] for d in store.find("cases", limit=5, n=42)] == [42]
    # A document changed later is listed by its new values.
    _fill(store, {"k001": {**docs["k001"], "association_id": "elites"}})
    assert all(d["n"] != 1 for d in store.find("cases", limit=100, association_id=["sidr"]))


OLDER_LAYOUTS = {
    "without the indexed columns": (
        "CREATE TABLE docs (view TEXT NOT NULL, key TEXT NOT NULL, doc TEXT NOT NULL, "
        "PRIMARY KEY (view, key)) WITHOUT ROWID",
        "INSERT INTO docs VALUES ('cases', 'a', '{\"n\": 1}')",
    ),
    "in a WITHOUT ROWID table": (
        "CREATE TABLE docs (view TEXT NOT NULL, key TEXT NOT NULL, doc TEXT NOT NULL, "
        "sort_key, association_id, status, PRIMARY KEY (view, key)) WITHOUT ROWID",
        "INSERT INTO docs VALUES ('cases', 'a', '{}', NULL, NULL, NULL)",
    ),
}


@pytest.mark.parametrize("layout", OLDER_LAYOUTS, ids=list(OLDER_LAYOUTS))
def test_a_file_of_an_older_version_is_dropped_to_be_rebuilt(tmp_path: Path, layout: str) -> None:
    path = tmp_path / "views.sqlite"
    create, insert = OLDER_LAYOUTS[layout]
    with sqlite3.connect(path) as old:
        old.execute(create)
        old.execute("CREATE TABLE positions (name TEXT PRIMARY KEY, position INTEGER NOT NULL)")
        old.execute(insert)
        old.execute("INSERT INTO positions VALUES ('test', 7)")
    store = ViewStore(path)
    assert store.position("test") == 0  # caught up again from the store's start
    assert store.count("cases") == 0
    with sqlite3.connect(path) as reopened:
        (kept,) = reopened.execute("SELECT sql FROM sqlite_master WHERE name='docs'").fetchone()
    assert "WITHOUT ROWID" not in kept.upper()
    _fill(store, {"a": {"n": 1, "sort_key": "x", "association_id": "sidr"}})
    assert store.find("cases", association_id="sidr")[0]["n"] == 1
    assert ViewStore(path).get("cases", "a") == {  # the new layout is kept as it is
        "n": 1,
        "sort_key": "x",
        "association_id": "sidr",
    }


class _Log:
    """A notification log of `length` notifications, as the application reads it."""

    def __init__(self, length: int) -> None:
        self.length = length
        self.mapper = self
        self.limits: list[int] = []

    def read_notifications(self, position: int, limit: int) -> list[object]:
        self.limits.append(limit)
        from types import SimpleNamespace

        last = min(self.length, position + limit)
        return [SimpleNamespace(id=n) for n in range(position + 1, last + 1)]

    def to_domain_event(self, notification: object) -> object:
        return notification


def test_the_catch_up_at_start_applies_larger_batches_than_the_tail(tmp_path: Path) -> None:
    from shared.store import StoreRunner
    from shared.views import ProjectionRunner

    log = _Log(2500)
    seen: list[int] = []

    def project(event: object, views: ViewTransaction) -> None:
        seen.append(event.id)  # type: ignore[attr-defined]

    runner = ProjectionRunner(
        log,  # type: ignore[arg-type]
        StoreRunner(),
        ViewStore(tmp_path / "views.sqlite"),
        project,
        batch_size=100,
        catch_up_batch_size=1000,
    )
    assert runner.catch_up() == 2500
    assert seen == list(range(1, 2501)) and runner.position == 2500
    assert log.limits == [1000, 1000, 1000, 1000]  # three batches, then the empty read
    log.length = 2550
    assert runner.catch_up_once() == 50 and log.limits[-1] == 100  # the tail's batch


def test_within_a_batch_a_projection_reads_what_it_wrote_and_each_document_is_written_once(
    tmp_path: Path,
) -> None:
    store = ViewStore(tmp_path / "views.sqlite")
    _fill(store, {"old": {"n": 0}, "gone": {"n": -1}})
    statements: list[str] = []
    store._connection().set_trace_callback(statements.append)
    seen: dict[str, object] = {}

    def project(event: object, views: ViewTransaction) -> None:
        views.put("cases", "a", {"n": 1, "on": date(2026, 12, 8)})
        seen["put"] = views.get("cases", "a")
        views.put("cases", "a", {**views.get("cases", "a"), "n": 2})  # type: ignore[dict-item]
        views.delete("cases", "gone")
        seen["deleted"] = views.get("cases", "gone")
        changed = views.get("cases", "old")
        assert changed is not None
        changed["n"] = 99  # changed, never put: nothing of it is written
        seen["old"] = views.get("cases", "old")

    store.apply("test", project, [object()], position=2)  # type: ignore[list-item]
    store._connection().set_trace_callback(None)
    # What a document got holds is what the file would give: its JSON, dates as text.
    assert seen["put"] == {"n": 1, "on": "2026-12-08"}
    assert seen["deleted"] is None and seen["old"] == {"n": 0}
    assert store.get("cases", "a") == {"n": 2, "on": "2026-12-08"}
    assert store.get("cases", "gone") is None and store.get("cases", "old") == {"n": 0}
    upserts = [s for s in statements if s.startswith("INSERT INTO docs")]
    assert len(upserts) == 1, upserts  # "a" once, with its last value
    assert store.position("test") == 2


def _indexes(path: Path) -> set[str]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type='index'")
        return {name for (name,) in rows if not name.startswith("sqlite_")}


def test_a_rebuild_from_nothing_writes_without_the_lists_indexes_and_builds_them_at_the_end(
    tmp_path: Path,
) -> None:
    from shared.store import StoreRunner
    from shared.views import ProjectionRunner

    path = tmp_path / "views.sqlite"
    built = _indexes(ViewStore(path).path)
    assert built == {"docs_in_order", "docs_by_association"}
    during: list[set[str]] = []

    def project(event: object, views: ViewTransaction) -> None:
        number = event.id  # type: ignore[attr-defined]
        views.put(
            "cases", f"k{number}", {"n": number, "sort_key": number, "association_id": "sidr"}
        )
        if number == 1:
            during.append(_indexes(path))

    log = _Log(30)
    store = ViewStore(path)
    runner = ProjectionRunner(log, StoreRunner(), store, project, batch_size=10)  # type: ignore[arg-type]
    assert runner.catch_up() == 30
    assert during == [set()]  # dropped while the documents were written
    assert _indexes(path) == built
    assert [d["n"] for d in store.find("cases", limit=3, association_id="sidr")] == [1, 2, 3]
    # A later catch-up (the tail, a restart) keeps them.
    log.length = 35
    assert runner.catch_up() == 5 and _indexes(path) == built


def test_a_process_stopped_in_a_rebuild_finds_the_indexes_built_when_it_opens_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "views.sqlite"
    store = ViewStore(path)
    with pytest.raises(KeyboardInterrupt), store.indexes_built_after():
        assert _indexes(path) == set()
        raise KeyboardInterrupt  # a stop: the indexes are built on the way out
    assert _indexes(path) == {"docs_in_order", "docs_by_association"}
    with sqlite3.connect(path) as killed:  # a kill -9 leaves no `finally`
        killed.execute("DROP INDEX docs_in_order")
        killed.execute("DROP INDEX docs_by_association")
    ViewStore(path)
    assert _indexes(path) == {"docs_in_order", "docs_by_association"}
