"""How the audit reads the stores: which events are public, which are a case's, settings."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from audit.asof import hijri_moment, parse_moment
from audit.replay import CASE_AGGREGATES, PUBLISHED, StoredRecord
from audit.settings import AuditSettings
from audit.stores import SERVICES, store_env
from shared.settings import ServiceSettings

pytestmark = pytest.mark.unit


def test_the_published_topics_are_the_ones_the_outboxes_translate() -> None:
    from services.committee.integration import TRANSLATORS as committee
    from services.intake.integration import TRANSLATORS as intake
    from services.surveys.integration import TRANSLATORS as surveys
    from services.verification.integration import TRANSLATORS as verification

    translators = {**intake, **verification, **committee, **surveys}
    assert set(PUBLISHED) == set(translators)
    for topic, translate in translators.items():
        # named after the event it publishes (`request_received_again` for a revision);
        # a translator bound to a sealer is a functools.partial of the named function
        function = getattr(translate, "func", translate)
        assert function.__name__.replace("_", "").startswith(PUBLISHED[topic].lower())


def test_the_case_aggregates_exist_in_the_services() -> None:
    import importlib

    for service, names in CASE_AGGREGATES.items():
        domain = importlib.import_module(f"services.{service}.domain")
        for name in names:
            assert hasattr(domain, name)


def test_store_env_is_the_services_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KHIDMA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KHIDMA_NATS_URL", "nats://127.0.0.1:1")
    settings = AuditSettings()
    for service in SERVICES:
        ours = store_env(service, settings)
        theirs = ServiceSettings(service_name=service).eventsourcing_env()
        assert ours["SQLITE_DBNAME"] == theirs["SQLITE_DBNAME"]
        assert ours["PERSISTENCE_MODULE"] == theirs["PERSISTENCE_MODULE"]
        assert ours["CREATE_TABLE"] == "n"  # read-only
    monkeypatch.setenv("KHIDMA_STORE", "postgres")
    settings = AuditSettings()
    for service in SERVICES:
        ours = store_env(service, settings)
        theirs = ServiceSettings(service_name=service).eventsourcing_env()
        for key in ("POSTGRES_SCHEMA", "POSTGRES_DBNAME", "POSTGRES_HOST", "PERSISTENCE_MODULE"):
            assert ours[key] == theirs[key]
    with pytest.raises(ValueError):
        store_env("billing", settings)


def test_index_aggregates_are_not_cases_and_sitting_events_name_theirs() -> None:
    def record(service: str, topic: str, **state: object) -> StoredRecord:
        return StoredRecord(service, 1, "00000000-0000-0000-0000-000000000001", 1, topic, dict(state))

    assert record("intake", "services.intake.domain:ChannelRef.Registered", case_id="x").case_id is None
    assert record("intake", "services.intake.domain:OpenRequest.Opened", case_id="x").case_id is None
    assert record("intake", "services.intake.domain:Case.Submitted").case_id.endswith("1")
    assert record("committee", "services.committee.domain:Sitting.VoteCast", case_id="c-1").case_id == "c-1"
    assert record("committee", "services.committee.domain:Sitting.Convened").case_id is None
    assert record("intake", "services.intake.domain:Case.Completed", event_id="e").published_as == "RequestReceived"
    assert record("intake", "services.intake.domain:Case.Submitted", event_id="e").published_as is None


def test_moments_in_both_calendars() -> None:
    assert parse_moment("2026-11-21T12:00:00Z") == datetime(2026, 11, 21, 12, tzinfo=timezone.utc)
    # A day is its end, as counted in Riyadh (UTC+3).
    assert parse_moment("2026-11-21") == datetime(2026, 11, 21, 20, 59, 59, 999999, tzinfo=timezone.utc)
    # 11 Jumada al-Akhirah 1448 is 21 November 2026.
    assert hijri_moment("1448-06-11") == parse_moment("2026-11-21")
