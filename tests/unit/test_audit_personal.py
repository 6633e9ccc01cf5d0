"""How the audit shows and compares sealed personal values, and counts erasures."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from audit.figures import Figures, Period, count_erasures
from audit.personal import SEALED_TEXT, Opener, digest, erasures, is_unknown
from audit.settings import AuditSettings
from shared.personal.keyring import KeyRecord, open_keyring
from shared.personal.master import MasterKeys
from shared.personal.sealing import ERASED_TEXT, Sealer

pytestmark = pytest.mark.unit


@pytest.fixture
def keyring(tmp_path: Path):
    settings = AuditSettings(data_dir=tmp_path)
    MasterKeys.ensure(settings.master_key_path)
    ring = open_keyring(settings)
    ring.cache_seconds = 0.0
    yield ring
    ring.close()


def test_the_opener_opens_nested_sealed_values_and_shows_erased_once_destroyed(keyring) -> None:
    key_id = keyring.key_for("sidr", "1012345678")
    sealer = Sealer(keyring)
    data = {"applicant": sealer.seal(key_id, {"name": "فاطمة"}), "channel": "website",
            "documents": [sealer.seal(key_id, "id.pdf")]}
    assert Opener(keyring).shown(data) == {"applicant": {"name": "فاطمة"}, "channel": "website",
                                           "documents": ["id.pdf"]}
    keyring.destroy(keyring.subject_index("sidr", "1012345678"), "erasure-1")
    assert Opener(keyring).shown(data) == {"applicant": ERASED_TEXT, "channel": "website",
                                           "documents": [ERASED_TEXT]}


def test_without_a_keyring_sealed_values_show_as_sealed(keyring) -> None:
    sealed = Sealer(keyring).seal(keyring.key_for("sidr", "1"), "x")
    assert Opener(None).shown({"a": sealed}) == {"a": SEALED_TEXT}
    assert is_unknown(sealed) and is_unknown(SEALED_TEXT) and is_unknown(ERASED_TEXT)
    assert not is_unknown({"attested": True})


def test_two_copies_sealed_apart_compare_equal_by_key_and_digest_never_plaintext(keyring) -> None:
    key_id = keyring.key_for("sidr", "1012345678")
    sealer = Sealer(keyring)
    one, two = sealer.seal(key_id, {"name": "Fatimah"}), sealer.seal(key_id, {"name": "Fatimah"})
    assert one != two  # random nonces
    opener = Opener(keyring)
    assert opener.comparable(one) == opener.comparable(two) == {
        "sealed_under": key_id, "digest": digest({"name": "Fatimah"})}
    assert opener.comparable(sealer.seal(key_id, {"name": "Other"})) != opener.comparable(one)
    assert "Fatimah" not in str(opener.comparable({"applicant": one}))
    keyring.destroy(keyring.subject_index("sidr", "1012345678"), "erasure-1")
    assert Opener(keyring).comparable(one) == {"sealed_under": key_id}
    assert Opener(None).comparable(two) == {"sealed_under": key_id}


def _record(key_id: str, association: str, destroyed_at: str | None, erasure_id: str | None) -> KeyRecord:
    return KeyRecord(key_id, "i-" + key_id, association, "2026-10-01T00:00:00+00:00", destroyed_at, erasure_id)


def test_erasures_are_counted_once_per_erasure_by_association_within_the_period() -> None:
    records = [
        _record("k1", "sidr", "2026-11-05T10:00:00+00:00", "e1"),
        _record("k2", "sidr", "2026-11-05T10:00:00+00:00", "e1"),  # the same erasure, two keys
        _record("k3", "elites", "2026-11-20T10:00:00+00:00", "e2"),
        _record("k4", "sidr", "2026-12-02T10:00:00+00:00", "e3"),  # after the period
        _record("k5", "sidr", None, None),  # live
    ]
    found = erasures(records)
    assert [(e.erasure_id, e.key_ids) for e in found] == [("e1", ("k1", "k2")), ("e2", ("k3",)), ("e3", ("k4",))]
    figures = Figures(period=Period(date(2026, 11, 1), date(2026, 11, 30)), granularity="month")
    count_erasures(figures, found)
    assert figures.erasures_by_association == {"elites": 1, "sidr": 1}
    assert figures.to_dict()["erasures"] == {"counted": True, "total": 2,
                                             "by_association": {"elites": 1, "sidr": 1}}
    figures.as_of = datetime(2026, 11, 10, tzinfo=UTC)  # a report as of an earlier moment
    assert count_erasures(figures, found).erasures_by_association == {"sidr": 1}
    assert count_erasures(figures, None).to_dict()["erasures"]["counted"] is False


def test_the_export_html_is_arabic_right_to_left_escaped_and_shows_erased() -> None:
    from audit.export import HeldRecord, SubjectExport, render_export_html
    from shared.dates import both_calendars

    when = both_calendars(datetime(2026, 11, 1, 9, tzinfo=UTC))
    export = SubjectExport(
        association_id="sidr", subject_index="a" * 40, generated_at=datetime(2026, 12, 1, tzinfo=UTC),
        keys=[{"key_id": "sk-1", "created_at": "2026-10-01", "destroyed_at": "2026-12-01", "erasure_id": "e1"}],
        cases=[HeldRecord("case", "c-1", "SDR-1448-000001", [
            {"service": "intake", "event": "Case.Completed", "when": when, "erased": False,
             "data": {"applicant": {"name": "<script>alert(1)</script>"}, "fields": ERASED_TEXT}}])],
        records=[],
    )
    html = render_export_html(export)
    assert '<html lang="ar" dir="rtl">' in html
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '<span class="erased"><span lang="ar">مُحيت</span>' in html
    assert '<bdi class="other" lang="en" dir="ltr">erased</bdi>' in html
    assert "SDR-1448-000001" in html and "sk-1" in html


class _Payload:
    def __init__(self, **data: object) -> None:
        self.data = data

    def model_dump(self, mode: str = "json") -> dict[str, object]:
        return dict(self.data)


def _erased_event(at: datetime, association: str, case_ids: list[str]) -> object:
    """A PersonalDataErased as the privacy service publishes it (its case id the erasure's)."""
    from types import SimpleNamespace
    from uuid import uuid4

    erasure = uuid4()
    return SimpleNamespace(
        event_type="PersonalDataErased", event_id=uuid4(), occurred_at=at, association_id=association,
        case_id=erasure, case_ref=f"erasure-{erasure}", correlation_id=erasure, causation_id=None,
        actor=SimpleNamespace(kind="system", id="privacy", name=None, role=None),
        payload=_Payload(erasure_id=str(erasure), reason_code="request", key_ids=["sk-1"], case_ids=case_ids))


def test_without_the_keyring_the_report_counts_the_streams_erasures() -> None:
    from audit.figures import compute_figures

    events = [_erased_event(datetime(2026, 11, 3, tzinfo=UTC), "sidr", []),
              _erased_event(datetime(2026, 10, 3, tzinfo=UTC), "sidr", []),  # before the period
              _erased_event(datetime(2026, 11, 4, tzinfo=UTC), "elites", [])]
    figures = compute_figures(events, start=date(2026, 11, 1), end=date(2026, 11, 30))  # type: ignore[arg-type]
    assert figures.associations == [] and figures.requests_total == 0  # no case made of them
    assert count_erasures(figures, None).erasures_by_association == {"elites": 1, "sidr": 1}
    assert count_erasures(figures, []).erasures_by_association == {}  # the keyring says: none


def test_an_erasure_on_the_stream_shows_in_each_erased_cases_timeline() -> None:
    from audit.replay import StreamRecord
    from audit.timeline import erasure_entries

    record = StreamRecord(7, "khidma.sidr.x.PersonalDataErased",
                          _erased_event(datetime(2026, 11, 3, tzinfo=UTC), "sidr", ["c-1", "c-2"]))  # type: ignore[arg-type]
    assert [(e.case_id, e.name, e.position) for e in erasure_entries(record)] == [
        ("c-1", "PersonalDataErased", 7), ("c-2", "PersonalDataErased", 7)]
    assert [e.case_id for e in erasure_entries(record, "c-2")] == ["c-2"]
