"""Tamper evidence on real SQLite stores: every kind of tampering is found and named.

The stores are written through ServiceApplication (so through the chained
recorder every service uses), then changed behind its back with raw SQL.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from eventsourcing.domain import Aggregate, event

from audit.settings import AuditSettings
from audit.stores import store_env
from audit.tamper import (
    ALTERED,
    DELETED,
    INSERTED,
    REORDERED,
    TRUNCATED,
    ChainBroken,
    export_checkpoint,
    load_checkpoint,
    register_commands,
    verify_services,
    verify_store,
)
from shared.chain import GENESIS, chain_entries
from shared.store import ServiceApplication, open_application

pytestmark = pytest.mark.integration


class Ledger(Aggregate):
    @event("Opened")
    def __init__(self, title: str) -> None:
        self.title = title
        self.lines: list[str] = []

    @event("LineAdded")
    def add(self, text: str) -> None:
        self.lines.append(text)


class IntakeLike(ServiceApplication):
    name = "intake"


def service_env(settings: AuditSettings, service: str = "intake") -> dict[str, str]:
    env = store_env(service, settings)
    env["CREATE_TABLE"] = "y"
    settings.sqlite_path(service).parent.mkdir(parents=True, exist_ok=True)
    return env


def write_history(settings: AuditSettings, ledgers: int = 3, lines: int = 3) -> int:
    """Writes ledgers*(1+lines) events in several transactions; returns the count."""
    app = open_application(IntakeLike, service_env(settings))
    try:
        for n in range(ledgers):
            ledger = Ledger(f"ledger {n}")
            app.save(ledger)
            for i in range(lines):
                ledger.add(f"line {i}")
            app.save(ledger)  # several events in one transaction
    finally:
        app.close()
    return ledgers * (1 + lines)


@pytest.fixture
def settings(tmp_path: Path) -> AuditSettings:
    return AuditSettings(data_dir=tmp_path / "data")


@pytest.fixture
def store(settings: AuditSettings) -> Path:
    write_history(settings)
    return settings.sqlite_path("intake")


def verify(settings: AuditSettings, **kwargs):
    return verify_store(store_env("intake", settings), service="intake", page_size=4, **kwargs)


def sql(path: Path, *statements: tuple) -> None:
    with sqlite3.connect(path) as connection:
        for statement in statements:
            connection.execute(*statement)


def test_a_clean_store_verifies(settings, store):
    result = verify(settings)
    assert result.ok, result.lines()
    assert result.events == 12 and result.head_notification_id == 12
    assert result.breaks == []
    rows = sqlite3.connect(store).execute("SELECT COUNT(*) FROM event_chain").fetchone()
    assert rows == (12,)


def test_an_altered_state_is_named(settings, store):
    sql(store, ("UPDATE stored_events SET state = ? WHERE rowid = 6", (b'{"tampered":1}',)))
    result = verify(settings)
    assert not result.ok
    found = result.first_break
    assert (found.kind, found.notification_id) == (ALTERED, 6)
    assert "6" in found.message["en"] and "6" in found.message["ar"]
    assert result.events == 5  # verified up to the break


def test_an_altered_topic_is_named(settings, store):
    sql(store, ("UPDATE stored_events SET topic = 'x:Y' WHERE rowid = 2",))
    assert (verify(settings).first_break.kind, verify(settings).first_break.notification_id) == (
        ALTERED,
        2,
    )


def test_a_deleted_event_is_named(settings, store):
    sql(store, ("DELETE FROM stored_events WHERE rowid = 7",))
    found = verify(settings).first_break
    assert (found.kind, found.notification_id) == (DELETED, 7)


def test_an_inserted_event_is_named(settings, store):
    sql(
        store,
        (
            "INSERT INTO stored_events VALUES (?,?,?,?)",
            (uuid4().hex, 1, "tests:Ledger.Opened", b"{}"),
        ),
    )
    found = verify(settings).first_break
    assert (found.kind, found.notification_id) == (INSERTED, 13)


def test_an_event_inserted_into_a_gap_is_named(settings, store):
    # Delete an event and its chain entry, then put another event at that place.
    sql(
        store,
        ("DELETE FROM stored_events WHERE rowid = 4",),
        ("DELETE FROM event_chain WHERE notification_id = 4",),
        (
            "INSERT INTO stored_events (rowid, originator_id, originator_version, topic, state)"
            " VALUES (4, ?, 1, 'tests:Ledger.Opened', ?)",
            (uuid4().hex, b"{}"),
        ),
    )
    found = verify(settings).first_break
    assert (found.kind, found.notification_id) == (INSERTED, 4)


def test_swapped_events_are_named_reordered(settings, store):
    select = "SELECT originator_id, originator_version, topic, state FROM stored_events WHERE rowid=?"
    update = (
        "UPDATE stored_events SET originator_id=?, originator_version=?, topic=?, state=?"
        " WHERE rowid=?"
    )
    with sqlite3.connect(store) as connection:
        a = connection.execute(select, (3,)).fetchone()
        b = connection.execute(select, (9,)).fetchone()
        connection.execute("UPDATE stored_events SET originator_version = -1 WHERE rowid = 3")
        connection.execute(update, (*a, 9))
        connection.execute(update, (*b, 3))
    result = verify(settings)
    found = result.first_break
    assert (found.kind, found.notification_id) == (REORDERED, 3)
    assert found.details["recorded_at"] == 9


def test_a_truncated_tail_is_named(settings, store):
    sql(store, ("DELETE FROM stored_events WHERE rowid > 9",))
    found = verify(settings).first_break
    assert (found.kind, found.notification_id) == (TRUNCATED, 10)
    assert found.details["missing"] == 3


def test_a_rewritten_chain_entry_is_named(settings, store):
    sql(store, ("UPDATE event_chain SET prev_hash = ? WHERE notification_id = 5", ("00" * 32,)))
    found = verify(settings).first_break
    assert (found.kind, found.notification_id) == (ALTERED, 5)
    assert found.details.get("link") is True


def test_a_store_written_without_the_chain_is_flagged(settings, store):
    sql(store, ("DROP TABLE event_chain",))
    found = verify(settings).first_break
    assert (found.kind, found.notification_id) == (INSERTED, 1)


def test_a_missing_store_is_unverified_unless_allowed(settings):
    result = verify(settings)
    assert not result.ok and not result.store_found and not result.breaks
    lines = "\n".join(result.lines())
    assert "intake: NOT VERIFIED" in lines and "لم يُتحقق منها" in lines
    allowed = verify(settings, allow_missing=True)
    assert allowed.ok and not allowed.store_found
    assert not settings.sqlite_path("intake").exists()  # verify created nothing


def test_verify_exits_non_zero_on_a_missing_store_unless_allow_missing(settings, capsys):
    assert run_cli(["verify", "--service", "intake"], settings) == 1
    out = capsys.readouterr().out
    assert "intake: NOT VERIFIED" in out and "لم يُتحقق منها" in out
    assert run_cli(["verify", "--service", "intake", "--allow-missing"], settings) == 0
    assert "nothing to verify; allowed" in capsys.readouterr().out


def test_a_store_the_checkpoint_recorded_empty_may_still_be_missing(settings, tmp_path):
    cp = tmp_path / "cp.json"
    export_checkpoint(settings, cp, services=["surveys"])  # no surveys store yet: recorded as empty
    result = verify_services(settings, ["surveys"], checkpoint=load_checkpoint(cp))[0]
    assert result.ok and result.checkpoint_ok and not result.store_found


def test_an_event_deleted_with_its_chain_entry_is_named_deleted(settings, store):
    sql(store, ("DELETE FROM stored_events WHERE rowid = 7",), ("DELETE FROM event_chain WHERE notification_id = 7",))
    found = verify(settings).first_break
    assert (found.kind, found.notification_id) == (DELETED, 7)
    assert found.details["missing_to"] == 7 and "deleted together with their chain entries" in found.message["en"]


def test_several_events_deleted_with_their_chain_entries_are_named_as_a_range(settings, store):
    sql(store, ("DELETE FROM stored_events WHERE rowid IN (5, 6)",),
        ("DELETE FROM event_chain WHERE notification_id IN (5, 6)",))
    found = verify(settings).first_break
    assert (found.kind, found.notification_id) == (DELETED, 5)
    assert (found.details["missing_from"], found.details["missing_to"]) == (5, 6)
    assert "5–6" in found.message["en"] and "5–6" in found.message["ar"]


def test_the_chain_is_kept_by_concurrent_writers(settings):
    write_history(settings, ledgers=1, lines=0)
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            write_history(settings, ledgers=5, lines=2)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    result = verify(settings)
    assert result.ok, result.lines()
    assert result.events == 1 + 3 * 5 * 3


# ---------------------------------------------------------------- checkpoints

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)


def test_a_checkpoint_records_the_heads_in_both_calendars(settings, store, tmp_path):
    path = export_checkpoint(settings, tmp_path / "cp.json", services=["intake"], now=NOW)
    data = load_checkpoint(path)
    assert data["created_at"] == "2026-11-21T12:00:00Z"
    assert data["created_at_calendars"]["gregorian"] == "2026-11-21"
    assert data["created_at_calendars"]["hijri"].startswith("1448-")
    head = data["services"]["intake"]
    assert head["head_notification_id"] == 12 and head["count"] == 12
    assert head["head_hash"] == verify(settings).head_hash
    # The history may grow after the checkpoint: still verified against it.
    write_history(settings, ledgers=1, lines=1)
    result = verify(settings, checkpoint=head)
    assert result.ok and result.checkpoint_ok, result.lines()
    assert result.events == 14


def test_truncation_after_a_checkpoint_is_detected(settings, store, tmp_path):
    path = export_checkpoint(settings, tmp_path / "cp.json", services=["intake"], now=NOW)
    # Cut the tail from the events and the chain together: the chain alone is consistent.
    sql(
        store,
        ("DELETE FROM stored_events WHERE rowid > 8",),
        ("DELETE FROM event_chain WHERE notification_id > 8",),
    )
    assert verify(settings).ok
    result = verify(settings, checkpoint=load_checkpoint(path)["services"]["intake"])
    assert not result.ok and result.checkpoint_ok is False
    found = result.first_break
    assert (found.kind, found.notification_id) == (TRUNCATED, 12)
    assert "8" in found.message["en"]


def test_a_recomputed_chain_is_caught_by_the_checkpoint(settings, store, tmp_path):
    path = export_checkpoint(settings, tmp_path / "cp.json", services=["intake"], now=NOW)
    # An insider alters an event and rebuilds the whole chain with the published format.
    with sqlite3.connect(store) as connection:
        connection.execute("UPDATE stored_events SET state = ? WHERE rowid = 2", (b'{"x":1}',))
        rows = connection.execute(
            "SELECT rowid, originator_id, originator_version, topic, state"
            " FROM stored_events ORDER BY rowid"
        ).fetchall()
        entries = chain_entries(GENESIS, [(r[0], UUID(r[1]), r[2], r[3], r[4]) for r in rows])
        connection.execute("DELETE FROM event_chain")
        connection.executemany(
            "INSERT INTO event_chain VALUES (?,?,?,?)",
            [(e.notification_id, e.content_hash, e.prev_hash, e.hash) for e in entries],
        )
    assert verify(settings).ok  # consistent in itself...
    result = verify(settings, checkpoint=load_checkpoint(path)["services"]["intake"])
    found = result.first_break  # ...but not the history the board was given
    assert (found.kind, found.notification_id) == (ALTERED, 12)


def test_no_checkpoint_is_written_for_a_broken_chain(settings, store, tmp_path):
    sql(store, ("DELETE FROM stored_events WHERE rowid = 3",))
    with pytest.raises(ChainBroken):
        export_checkpoint(settings, tmp_path / "cp.json", services=["intake"], now=NOW)
    assert not (tmp_path / "cp.json").exists()


# ------------------------------------------------------------------------ CLI


def run_cli(argv: list[str], settings: AuditSettings) -> int:
    parser = argparse.ArgumentParser(prog="audit")
    register_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args, settings)


def test_the_commands_verify_and_checkpoint_all_services(settings, store, tmp_path, capsys):
    cp = tmp_path / "board.json"
    assert run_cli(["checkpoint", "--out", str(cp)], settings) == 0
    out = capsys.readouterr().out
    assert "checkpoint written" in out and "كُتبت نقطة التحقق" in out
    services = set(json.loads(cp.read_text())["services"])
    assert services == {"intake", "verification", "committee", "surveys"}

    assert run_cli(["verify", "--checkpoint", str(cp)], settings) == 0
    out = capsys.readouterr().out
    assert "intake: OK" in out and "intake: سليمة" in out

    sql(store, ("UPDATE stored_events SET state = ? WHERE rowid = 11", (b"{}",)))
    assert run_cli(["verify", "--service", "intake", "--json"], settings) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["results"][0]["breaks"][0]["kind"] == ALTERED
    assert report["results"][0]["breaks"][0]["notification_id"] == 11

    assert run_cli(["verify", "--service", "intake"], settings) == 1
    out = capsys.readouterr().out
    assert "BROKEN at 11 (altered)" in out and "مكسورة عند 11" in out


def test_a_bad_checkpoint_file_is_refused(settings, store, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert run_cli(["verify", "--checkpoint", str(bad)], settings) == 2


def test_every_service_store_is_verified(settings, store):
    results = verify_services(settings)
    assert [r.service for r in results] == ["intake", "verification", "committee", "surveys"]
    assert results[0].ok
    # only intake's store exists here: the three others are not verified...
    assert [(r.ok, r.store_found) for r in results[1:]] == [(False, False)] * 3
    # ...unless their absence is allowed
    assert all(r.ok for r in verify_services(settings, allow_missing=True))


def test_tracked_processing_is_chained_and_still_exactly_once(settings):
    from eventsourcing.persistence import Tracking

    from shared.store import DuplicateDelivery, process_tracked

    app = open_application(IntakeLike, service_env(settings))
    try:
        def handle(processing):
            processing.collect_events(Ledger("from the stream"))

        tracking = Tracking("nats:KHIDMA", 7)
        process_tracked(app, tracking, handle)
        with pytest.raises(DuplicateDelivery):
            process_tracked(app, tracking, handle)
    finally:
        app.close()
    result = verify(settings)
    assert result.ok and result.events == 1


def test_a_service_store_chains_its_events(settings):
    """Intake's own application, on its SQLite file, with the associations' packs."""
    from services.intake.application import IntakeApplication
    from shared.clock import FrozenClock
    from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
    from shared.submissions import Submission

    app = open_application(
        IntakeApplication,
        service_env(settings),
        clock=FrozenClock(NOW),
        packs=load_packs(DEFAULT_POLICIES_DIR),
    )
    try:
        for n in range(2):
            app.submit(
                Submission(
                    association_id="sidr",
                    channel="website",
                    channel_ref=f"form-{n}",
                    service_code="seedlings",
                    applicant={"national_id": f"100000000{n}", "name": "علي"},
                    fields={"planting_site": "وادي حنيفة", "seedling_count": 20},
                    documents=[
                        {"code": "national_id_card", "number": f"100000000{n}",
                         "expires_on": "2030-01-01"}
                    ],
                    attestation={"attested": True, "method": "one_time_code"},
                ),
                {"kind": "adapter", "id": "test"},
            )
        count = app.max_notification_id()
    finally:
        app.close()
    result = verify(settings)
    assert result.ok and result.events == count > 0, result.lines()
    sql(settings.sqlite_path("intake"), ("UPDATE stored_events SET state = ? WHERE rowid = ?", (b"{}", count)))
    found = verify(settings).first_break
    assert (found.kind, found.notification_id) == (ALTERED, count)


def test_python_m_audit_verify_exits_non_zero_on_a_break(settings, store, tmp_path):
    import os
    import subprocess
    import sys

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "audit", "--data-dir", str(settings.data_dir), *argv],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "KHIDMA_STORE": "sqlite"},
        )

    cp = tmp_path / "cp.json"
    done = run("checkpoint", "--out", str(cp), "--no-progress")
    assert done.returncode == 0, done.stderr
    done = run("verify", "--checkpoint", str(cp))
    assert done.returncode == 0, done.stdout + done.stderr
    sql(store, ("DELETE FROM stored_events WHERE rowid > 10",), ("DELETE FROM event_chain WHERE notification_id > 10",))
    done = run("verify", "--checkpoint", str(cp), "--service", "intake")
    assert done.returncode == 1
    assert "BROKEN at 12 (truncated)" in done.stdout and "بُتر السجل بعد نقطة التحقق" in done.stdout


def test_verifying_while_a_service_writes_raises_no_false_alarm(settings, store):
    stop = threading.Event()
    written = []

    def writer() -> None:
        app = open_application(IntakeLike, service_env(settings))
        try:
            while not stop.is_set():
                ledger = Ledger("live")
                ledger.add("x")
                app.save(ledger)
                written.append(2)
        finally:
            app.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        # The writer opens its application first; verifying before it writes would prove nothing.
        deadline = time.monotonic() + 30
        while not written and time.monotonic() < deadline and thread.is_alive():
            time.sleep(0.01)
        assert written, "the writer wrote nothing within 30 s"
        before = len(written)
        results = []
        while len(results) < 15 or (len(written) == before and time.monotonic() < deadline):
            results.append(verify(settings))
    finally:
        stop.set()
        thread.join(timeout=30)
    assert sum(written) > 0
    assert all(r.ok for r in results), [r.lines() for r in results if not r.ok]
    assert verify(settings).events == 12 + sum(written)
