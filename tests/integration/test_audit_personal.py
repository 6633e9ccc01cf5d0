"""The audit over sealed personal data (issue 10), before and after an erasure.

The histories are tests.unit.test_audit_compliance.CaseHistory cases whose personal
attributes are sealed as the services seal them (shared/personal: the mapper's
`{"sealed": "v1", "key", "data", "shape"}` in the stores, `Sealed` with
`personal_key` and `subject_index` in RequestReceived on the stream), under keys of
one keyring shared with the audit; the stores are written through the chained
recorder every service uses, so `audit verify` checks their hash chains.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import nats
import pytest
from eventsourcing.persistence import InfrastructureFactory, StoredEvent
from eventsourcing.utils import Environment
from fastapi.testclient import TestClient

from audit.api import create_app
from audit.cli import main as audit_main
from audit.crosscheck import crosscheck_system
from audit.personal import close_keyrings
from audit.replay import _transcoder
from audit.settings import AuditSettings
from audit.stores import SERVICES, store_env
from audit.tamper import verify_services
from audit.timeline import case_timeline
from khidma.nats_server import NatsServer
from shared import events as ev
from shared.chain import chained_process_recorder
from shared.dates import RIYADH
from shared.events import encode_event
from shared.personal.keyring import SubjectKeyring, open_keyring
from shared.personal.mapper import shape_of
from shared.personal.master import MasterKeys
from shared.personal.sealing import Sealer
from shared.roles import AUDITOR, PRIVACY_OFFICER
from shared.stream import ensure_stream
from shared.subjects import event_subject
from tests.auth import as_role
from tests.unit.test_audit_compliance import T0, CaseHistory

pytestmark = pytest.mark.integration

FATIMAH = {"national_id": "1012345678", "name": "فاطمة الزهراني", "phone": "0551234567",
           "email": "fatimah@example.org"}
KHALID = {"national_id": "1098765432", "name": "Khalid Al-Harbi", "phone": "0509876543",
          "email": "khalid@example.org"}
# What the services seal, by stored event (the request's personal part, the contact).
SEALED_IN_STORE = {
    "services.intake.domain:Case.Submitted": ("applicant", "fields", "documents", "attestation"),
    "services.intake.domain:Case.Completed": ("applicant", "fields", "documents", "attestation"),
    "services.intake.domain:Case.Resubmitted": ("applicant", "fields", "documents", "attestation"),
    "services.committee.domain:CommitteeCase.RequestRecorded": ("attestation",),
    "services.surveys.domain:Survey.Registered": ("contact",),
}
MEMBER_REGISTERED = "services.verification.members:Member.Registered"


class Person:
    def __init__(self, keyring: SubjectKeyring, who: dict[str, str], association_id: str = "sidr"):
        self.who = who
        self.association_id = association_id
        self.key_id = keyring.key_for(association_id, who["national_id"])
        self.index = keyring.subject_index(association_id, who["national_id"])


def sealed(sealer: Sealer, key_id: str, value: Any) -> dict[str, Any]:
    return {**sealer.seal(key_id, value), "shape": shape_of(value)}


def seal_history(history: CaseHistory, sealer: Sealer, person: Person) -> CaseHistory:
    """The history as the services record it after issue 10, for `person`."""
    attestation = {**history_attestation(history), "attested_by": person.who["name"]}
    for item in history.stored:
        names = SEALED_IN_STORE.get(item.topic, ())
        if "applicant" in names:
            item.state["applicant"] = dict(person.who)
        if "attestation" in names and item.state.get("attestation"):
            item.state["attestation"] = attestation
        if item.topic.endswith("Survey.Registered"):
            item.state["contact"] = {"phone": person.who["phone"], "email": person.who["email"]}
        for name in names:
            if item.state.get(name) is not None:
                item.state[name] = sealed(sealer, person.key_id, _plain(item.state[name]))
        if names:
            item.state["personal_key"] = person.key_id
        if "applicant" in names:
            item.state["subject_index"] = person.index  # as intake keeps it
    history.published = [
        _sealed_request(event, sealer, person, attestation) if event.event_type == "RequestReceived"
        else event
        for event in history.published
    ]
    return history


def history_attestation(history: CaseHistory) -> dict[str, Any]:
    for item in history.stored:
        if item.topic.endswith("Case.Completed"):
            return _plain(item.state["attestation"])
    raise AssertionError("no request")


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _sealed_request(event: Any, sealer: Sealer, person: Person, attestation: dict[str, Any]) -> Any:
    payload = event.payload.model_dump(mode="json")
    payload["applicant"] = dict(person.who)
    payload["attestation"] = attestation if payload.get("attestation") else None
    for name in ("applicant", "fields", "documents", "attestation"):
        if payload.get(name) is not None:
            payload[name] = sealed(sealer, person.key_id, payload[name])
    payload.update(personal_key=person.key_id, subject_index=person.index)
    return event.model_copy(update={"payload": ev.RequestReceivedPayload.model_validate(payload)})


def member_record(sealer: Sealer, person: Person) -> dict[str, Any]:
    return {"association_id": person.association_id, "personal_key": person.key_id,
            "national_id": sealed(sealer, person.key_id, person.who["national_id"]),
            "name": sealed(sealer, person.key_id, person.who["name"]),
            "joined_on": "2025-01-01", "status": "active", "timestamp": T0}


def write_chained_stores(settings: AuditSettings, histories: list[CaseHistory],
                         members: list[dict[str, Any]]) -> None:
    transcoder = _transcoder()
    versions: dict[object, int] = {}
    per_service: dict[str, list[StoredEvent]] = {service: [] for service in SERVICES}
    for history in histories:
        for item in history.stored:
            versions[item.originator_id] = versions.get(item.originator_id, 0) + 1
            per_service[item.service].append(StoredEvent(
                item.originator_id, versions[item.originator_id], item.topic, transcoder.encode(item.state)))
    for state in members:
        per_service["verification"].append(
            StoredEvent(uuid4(), 1, MEMBER_REGISTERED, transcoder.encode(state)))
    for service, stored in per_service.items():
        env = {**store_env(service, settings), "CREATE_TABLE": "y"}
        factory = InfrastructureFactory.construct(Environment(name=service, env=env))
        recorder = chained_process_recorder(factory, create_table=True)
        for start in range(0, len(stored), 20):
            recorder.insert_events(stored[start:start + 20])
        factory.close()


async def _publish(nats_url: str, histories: list[CaseHistory]) -> None:
    connection = await nats.connect(nats_url)
    try:
        js = connection.jetstream()
        await ensure_stream(js)
        for history in histories:
            for event in history.published:
                await js.publish(event_subject(event.association_id, event.case_id, event.event_type),
                                 encode_event(event), headers={"Nats-Msg-Id": str(event.event_id)})
    finally:
        await connection.close()


@pytest.fixture
def world(tmp_path: Path, nats_server: NatsServer) -> Iterator[dict[str, Any]]:
    """Fatimah's approved case and member record, Khalid's rejected case; sealed."""
    settings = AuditSettings(data_dir=tmp_path / "data", nats_url=nats_server.url)
    settings.data_dir.mkdir(parents=True)
    MasterKeys.ensure(settings.master_key_path)
    keyring = open_keyring(settings)
    sealer = Sealer(keyring)
    fatimah, khalid = Person(keyring, FATIMAH), Person(keyring, KHALID)
    first = CaseHistory(ref="SDR-1448-000001")
    first.clean(outcome="approved")
    second = CaseHistory(ref="SDR-1448-000002")
    second.clean(outcome="rejected")
    histories = [seal_history(first, sealer, fatimah), seal_history(second, sealer, khalid)]
    write_chained_stores(settings, histories, [member_record(sealer, fatimah)])
    asyncio.run(_publish(nats_server.url, histories))
    try:
        yield {"settings": settings, "keyring": keyring, "fatimah": fatimah, "khalid": khalid,
               "histories": histories}
    finally:
        close_keyrings()
        keyring.close()


def erase(world: dict[str, Any], person: Person) -> None:
    world["keyring"].destroy(person.index, f"erasure-{uuid4()}")


def raw_bytes(folder: Path) -> bytes:
    return b"".join(path.read_bytes() for path in folder.rglob("*.sqlite*") if path.is_file())


def _request_data(timeline: Any) -> list[dict[str, Any]]:
    return [e.data for e in timeline.entries if e.event_type == "RequestReceived"]


def test_the_stores_hold_no_plaintext_of_the_sealed_histories(world: dict[str, Any]) -> None:
    stored = raw_bytes(world["settings"].data_dir)
    for value in (*FATIMAH.values(), *KHALID.values()):
        assert value.encode() not in stored
        assert json.dumps(value).encode() not in stored  # the \\u escapes of an Arabic name


def test_the_timeline_opens_the_sealed_values_with_the_key_file(world: dict[str, Any]) -> None:
    timeline = case_timeline(world["settings"], "SDR-1448-000001", stream=True)
    assert timeline is not None
    requests = _request_data(timeline)
    assert {r["applicant"]["name"] for r in requests} == {FATIMAH["name"]}  # store and stream
    assert len(requests) == 2
    assert all(r["attestation"]["attested"] is True for r in requests)


def test_after_an_erasure_the_timeline_shows_erased(world: dict[str, Any]) -> None:
    erase(world, world["fatimah"])
    timeline = case_timeline(world["settings"], "SDR-1448-000001", stream=True)
    assert timeline is not None
    for data in _request_data(timeline):
        assert data["applicant"] == {"erased": True, "en": "erased", "ar": "مُحيت"}
        assert data["fields"]["erased"] is True
    assert "فاطمة" not in json.dumps(timeline.describe(), ensure_ascii=False)
    # The other person's case still opens.
    other = case_timeline(world["settings"], "SDR-1448-000002")
    assert other is not None and _request_data(other)[0]["applicant"]["name"] == KHALID["name"]


def test_after_an_erasure_the_command_line_timeline_shows_erased(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    erase(world, world["fatimah"])
    settings = world["settings"]
    args = ["--data-dir", str(settings.data_dir), "--nats-url", str(settings.nats_url)]
    assert audit_main([*args, "timeline", "SDR-1448-000001", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    shown = [e["data"]["applicant"] for e in document["events"] if e["event_type"] == "RequestReceived"]
    assert shown and all(a["ar"] == "مُحيت" for a in shown)


def test_without_the_master_key_the_timeline_runs_and_shows_sealed(world: dict[str, Any]) -> None:
    settings = world["settings"].model_copy(update={"master_key_file": world["settings"].data_dir / "absent.json"})
    timeline = case_timeline(settings, "SDR-1448-000001", stream=True)
    assert timeline is not None
    assert {r["applicant"]["en"] for r in _request_data(timeline)} == {"sealed"}


def test_a_wrong_master_key_stops_the_command(world: dict[str, Any], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    other = MasterKeys.create(tmp_path / "other-key.json")
    monkeypatch.setenv("KHIDMA_MASTER_KEY_FILE", str(other.path))
    code = audit_main(["--data-dir", str(world["settings"].data_dir), "timeline", "SDR-1448-000001"])
    assert code == 3
    assert "master key" in capsys.readouterr().err


def test_the_crosscheck_agrees_before_and_after_an_erasure(world: dict[str, Any]) -> None:
    settings = world["settings"]
    assert list(crosscheck_system(settings)) == []
    erase(world, world["fatimah"])
    assert list(crosscheck_system(settings)) == []


def test_the_crosscheck_still_finds_a_changed_sealed_value(world: dict[str, Any], tmp_path: Path,
                                                          nats_server: NatsServer) -> None:
    """Sealed values are compared by their plaintext: a stream copy sealed over other
    data (same key) differs; one under another key differs too."""
    settings = world["settings"]
    fatimah = world["fatimah"]
    history = world["histories"][0]
    request = history.published[0]
    forged_payload = request.payload.model_copy(update={"applicant": ev.Sealed.model_validate(
        sealed(Sealer(world["keyring"]), fatimah.key_id, {**FATIMAH, "name": "Someone else"}))})
    forged = request.model_copy(update={"payload": forged_payload})

    async def republish() -> None:
        connection = await nats.connect(nats_server.url)
        try:
            js = connection.jetstream()
            await js.purge_stream("KHIDMA")
            for item in world["histories"]:
                for event in item.published:
                    chosen = forged if event.event_id == request.event_id else event
                    await js.publish(event_subject(chosen.association_id, chosen.case_id, chosen.event_type),
                                     encode_event(chosen), headers={"Nats-Msg-Id": f"{chosen.event_id}-again"})
        finally:
            await connection.close()

    asyncio.run(republish())
    differences = list(crosscheck_system(settings))
    assert [(d.kind, d.event_id) for d in differences] == [("differs", str(request.event_id))]
    assert "payload.applicant" in differences[0].detail and "Someone" not in differences[0].detail


def test_verify_passes_after_an_erasure(world: dict[str, Any]) -> None:
    erase(world, world["fatimah"])
    results = verify_services(world["settings"])
    assert results and all(result.ok for result in results), [r for r in results if not r.ok]


def test_the_report_runs_after_an_erasure_and_counts_it(world: dict[str, Any], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    erase(world, world["fatimah"])
    settings = world["settings"]
    out = tmp_path / "report"
    today = datetime.now(RIYADH).date()  # the report's days are Riyadh's
    end = date(today.year + 1, 1, 31)
    args = ["--data-dir", str(settings.data_dir), "--nats-url", str(settings.nats_url)]
    assert audit_main([*args, "report", "--from", "2026-11-01", "--to", end.isoformat(),
                       "--lang", "en", "--out", str(out)]) == 0, capsys.readouterr().err
    figures = json.loads(next(out.glob("figures-*.json")).read_text())
    assert figures["erasures"] == {"counted": True, "total": 1, "by_association": {"sidr": 1}}
    # The erased applicant's declaration is judged from the committee's record: no false alarm.
    assert figures["exceptions_total"] == 0, figures["exceptions"]
    html = next(out.glob("report-*-en.html")).read_text()
    assert 'data-key="erasures.by_association.sidr" data-value="1"' in html
    assert "erasures" in next(out.glob("erasures-*.csv")).name
    # A report of a period that ended before the erasure does not count it.
    earlier = tmp_path / "earlier"
    assert audit_main([*args, "report", "--from", "2026-11-01", "--to", (today - timedelta(days=1)).isoformat(),
                       "--lang", "en", "--out", str(earlier), "--no-compliance"]) == 0
    assert json.loads(next(earlier.glob("figures-*.json")).read_text())["erasures"]["total"] == 0


def test_the_export_holds_the_persons_data_and_nothing_of_another(world: dict[str, Any], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    settings = world["settings"]
    args = ["--data-dir", str(settings.data_dir)]
    assert audit_main([*args, "export", "--association", "sidr", "--national-id", FATIMAH["national_id"]]) == 0
    text = capsys.readouterr().out
    document = json.loads(text)
    assert [c["case_ref"] for c in document["cases"]] == ["SDR-1448-000001"]
    for value in FATIMAH.values():
        assert value in text
    for value in KHALID.values():
        assert value not in text
    assert "SDR-1448-000002" not in text
    events = {e["event"] for c in document["cases"] for e in c["events"]}
    assert {"Case.Completed", "CommitteeCase.Decided", "Survey.Registered"} <= events
    assert "Survey.Answered" not in events  # an anonymous answer is not joined back to its person
    assert [e["event"] for r in document["records"] for e in r["events"]] == ["Member.Registered"]
    assert document["erased"] is False
    # HTML: Arabic, right to left, escaped.
    out = tmp_path / "export.html"
    assert audit_main([*args, "export", "--association", "sidr", "--national-id", FATIMAH["national_id"],
                       "--format", "html", "--out", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert '<html lang="ar" dir="rtl">' in html and FATIMAH["name"] in html
    assert "Your personal data held by Khidma" in html and KHALID["name"] not in html
    assert out.stat().st_mode & 0o777 == 0o600


def test_the_export_after_an_erasure_shows_erased(world: dict[str, Any],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    erase(world, world["fatimah"])
    settings = world["settings"]
    assert audit_main(["--data-dir", str(settings.data_dir), "export", "--association", "sidr",
                       "--national-id", FATIMAH["national_id"]]) == 0
    text = capsys.readouterr().out
    document = json.loads(text)
    assert document["erased"] is True and document["cases"]
    assert FATIMAH["name"] not in text and "مُحيت" in text


def test_the_export_route_needs_the_privacy_officer_of_the_association(world: dict[str, Any]) -> None:
    client = TestClient(create_app(world["settings"]))
    body = {"association_id": "sidr", "national_id": FATIMAH["national_id"]}
    assert client.post("/subjects/export", json=body).status_code == 401
    assert client.post("/subjects/export", json=body, headers=as_role(AUDITOR, "sidr")).status_code == 403
    assert client.post("/subjects/export", json=body,
                       headers=as_role(PRIVACY_OFFICER, "elites")).status_code == 403
    officer = as_role(PRIVACY_OFFICER, "sidr")
    answer = client.post("/subjects/export", json=body, headers=officer)
    assert answer.status_code == 200, answer.text
    assert [c["case_ref"] for c in answer.json()["cases"]] == ["SDR-1448-000001"]
    assert KHALID["name"] not in answer.text
    html = client.post("/subjects/export", json={**body, "format": "html"}, headers=officer)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert FATIMAH["name"] in html.text
    # Each export is a logged read, naming the person by their blind index only.
    reads = client.get("/access", headers=as_role(AUDITOR, "sidr")).json()["reads"]
    exports = [r for r in reads if r["what"] == "subject_export"]
    assert len(exports) == 2 and {r["record_id"] for r in exports} == {world["fatimah"].index}
    assert exports[0]["actor"]["role"] == PRIVACY_OFFICER
    assert FATIMAH["national_id"].encode() not in (world["settings"].data_dir / "audit.sqlite").read_bytes()


def test_the_export_finds_a_person_in_events_recorded_before_encryption(tmp_path: Path) -> None:
    settings = AuditSettings(data_dir=tmp_path / "data")
    settings.data_dir.mkdir(parents=True)
    MasterKeys.ensure(settings.master_key_path)
    open_keyring(settings).close()
    plain = CaseHistory(ref="SDR-1448-000009")  # applicant 1590932917, in plain
    plain.clean()
    write_chained_stores(settings, [plain], [])
    try:
        from audit.export import subject_export

        found = subject_export(settings, "sidr", "١٥٩٠٩٣٢٩١٧")  # Arabic-Indic digits: the same person
        assert [c.case_ref for c in found.cases] == ["SDR-1448-000009"]
        assert subject_export(settings, "elites", "1590932917").cases == []
        assert subject_export(settings, "sidr", "1012345678").cases == []
    finally:
        close_keyrings()


def test_the_api_timeline_shows_erased_and_a_wrong_key_file_is_a_clear_503(
    world: dict[str, Any], tmp_path: Path
) -> None:
    erase(world, world["fatimah"])
    auditor = as_role(AUDITOR, "sidr")
    client = TestClient(create_app(world["settings"]))
    answer = client.get("/cases/SDR-1448-000001/timeline", headers=auditor)
    assert answer.status_code == 200, answer.text
    shown = [e["data"]["applicant"] for e in answer.json()["events"] if e["event_type"] == "RequestReceived"]
    assert shown and all(a == {"erased": True, "en": "erased", "ar": "مُحيت"} for a in shown)
    close_keyrings()
    wrong = world["settings"].model_copy(
        update={"master_key_file": MasterKeys.create(tmp_path / "wrong.json").path})
    answer = TestClient(create_app(wrong)).get("/cases/SDR-1448-000001/timeline", headers=auditor)
    assert answer.status_code == 503 and "master key" in answer.json()["detail"]["en"]
