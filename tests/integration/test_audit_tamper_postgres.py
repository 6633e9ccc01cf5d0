"""The hash chain on PostgreSQL: written with the events, verified, tampering found."""

from __future__ import annotations

from typing import Iterator
from uuid import uuid4

import psycopg
import pytest
from eventsourcing.persistence import Tracking
from psycopg import sql

from audit.settings import AuditSettings
from audit.stores import store_env
from audit.tamper import ALTERED, DELETED, TRUNCATED, verify_store
from shared.store import DuplicateDelivery, open_application, process_tracked
from tests.integration.test_audit_tamper import IntakeLike, Ledger

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture
def pg_settings(postgres_available: dict[str, str]) -> Iterator[AuditSettings]:
    prefix = f"audit_{uuid4().hex[:8]}_"
    settings = AuditSettings(
        store="postgres",
        postgres_host=postgres_available["host"],
        postgres_port=int(postgres_available["port"]),
        postgres_dbname=postgres_available["dbname"],
        postgres_user=postgres_available["user"],
        postgres_schema_prefix=prefix,
    )
    try:
        yield settings
    finally:
        with psycopg.connect(autocommit=True, **postgres_available) as connection:
            connection.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(settings.postgres_schema("intake"))
                )
            )


def test_the_chain_is_kept_and_checked_on_postgres(pg_settings, postgres_available):
    env = store_env("intake", pg_settings)
    env["CREATE_TABLE"] = "y"
    app = open_application(IntakeLike, env)
    try:
        for n in range(3):
            ledger = Ledger(f"ledger {n}")
            ledger.add("a")
            ledger.add("b")
            app.save(ledger)
            ledger.add("c")
            app.save(ledger)
        tracking = Tracking("nats:KHIDMA", 3)
        process_tracked(app, tracking, lambda p: p.collect_events(Ledger("tracked")))
        with pytest.raises(DuplicateDelivery):
            process_tracked(app, tracking, lambda p: p.collect_events(Ledger("again")))
    finally:
        app.close()

    read_env = store_env("intake", pg_settings)
    result = verify_store(read_env, service="intake", page_size=5)
    assert result.ok, result.lines()
    assert result.events == 13

    schema = sql.Identifier(pg_settings.postgres_schema("intake"))
    events = sql.SQL("{}.intake_events").format(schema)
    chain = sql.SQL("{}.intake_chain").format(schema)
    with psycopg.connect(autocommit=True, **postgres_available) as connection:
        ids = [
            r[0]
            for r in connection.execute(
                sql.SQL("SELECT notification_id FROM {} ORDER BY notification_id").format(events)
            )
        ]
        chained = connection.execute(sql.SQL("SELECT COUNT(*) FROM {}").format(chain)).fetchone()
        assert chained == (13,)
        connection.execute(
            sql.SQL("UPDATE {} SET state = %s WHERE notification_id = %s").format(events),
            (b'{"tampered":true}', ids[4]),
        )
    found = verify_store(read_env, service="intake").first_break
    assert (found.kind, found.notification_id) == (ALTERED, ids[4])

    with psycopg.connect(autocommit=True, **postgres_available) as connection:
        connection.execute(
            sql.SQL("DELETE FROM {} WHERE notification_id = %s").format(events), (ids[4],)
        )
    found = verify_store(read_env, service="intake").first_break
    assert (found.kind, found.notification_id) == (DELETED, ids[4])

    with psycopg.connect(autocommit=True, **postgres_available) as connection:
        connection.execute(
            sql.SQL("DELETE FROM {} WHERE notification_id >= %s").format(events), (ids[4],)
        )
    found = verify_store(read_env, service="intake").first_break
    assert (found.kind, found.notification_id) == (TRUNCATED, ids[4])
