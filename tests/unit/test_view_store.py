"""The read models' store: lists filter and order by indexed columns, and a file of
an older version (without them) is rebuilt rather than misread."""

from __future__ import annotations

import json
import sqlite3
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


def test_a_file_of_an_older_version_is_dropped_to_be_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "views.sqlite"
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE docs (view TEXT NOT NULL, key TEXT NOT NULL, doc TEXT NOT NULL, "
            "PRIMARY KEY (view, key)) WITHOUT ROWID"
        )
        old.execute("CREATE TABLE positions (name TEXT PRIMARY KEY, position INTEGER NOT NULL)")
        old.execute("INSERT INTO docs VALUES ('cases', 'a', ?)", (json.dumps({"n": 1}),))
        old.execute("INSERT INTO positions VALUES ('test', 7)")
    store = ViewStore(path)
    assert store.position("test") == 0  # caught up again from the store's start
    assert store.count("cases") == 0
    _fill(store, {"a": {"n": 1, "sort_key": "x", "association_id": "sidr"}})
    assert store.find("cases", association_id="sidr")[0]["n"] == 1


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
