import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from uuid import uuid4

import pytest
from pydantic import ValidationError

from shared.events import (
    EVENT_TYPES,
    PRODUCERS,
    Actor,
    Applicant,
    decode_event,
    encode_event,
    json_schemas,
)
from shared.schemas import render
from shared.subjects import STREAM_SUBJECTS, case_filter, event_subject, event_type_filter
from tests import builders

pytestmark = pytest.mark.unit

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def request_received(**overrides):
    return builders.request_received(
        **{
            "occurred_at": datetime(2026, 11, 21, 12, 0, tzinfo=UTC),
            "case_ref": "SID-1",
            "actor": Actor(kind="adapter", id="website"),
            "channel_ref": "form-1",
            "service_code": "food-basket",
            "applicant": Applicant(national_id="1000000008", name="Ali"),
            **overrides,
        }
    )


def test_an_event_round_trips_through_the_wire_format():
    event = request_received()
    assert decode_event(encode_event(event)) == event


def test_the_envelope_has_the_fields_of_the_brief():
    body = json.loads(encode_event(request_received()))
    assert set(body) == {
        "event_id", "event_type", "schema_version", "occurred_at", "association_id",
        "case_id", "case_ref", "correlation_id", "causation_id", "actor", "payload",
    }
    assert body["event_type"] == "RequestReceived"
    assert body["causation_id"] is None
    assert body["occurred_at"].endswith("Z")


def test_occurred_at_is_stored_in_utc():
    riyadh = timezone(timedelta(hours=3))
    event = request_received(occurred_at=datetime(2026, 11, 21, 15, 0, tzinfo=riyadh))
    assert event.occurred_at.utcoffset() == timedelta(0)
    assert event.occurred_at.hour == 12


def test_unknown_fields_are_refused_on_the_way_out():
    with pytest.raises(ValidationError):
        Applicant(national_id="1", name="x", nickname="y")


def test_unknown_fields_are_ignored_on_the_way_in():
    body = json.loads(encode_event(request_received()))
    body["added_by_a_newer_producer"] = 1
    body["payload"]["applicant"]["nickname"] = "y"
    event = decode_event(json.dumps(body))
    assert event.payload.applicant.name == "Ali"


def test_a_naive_timestamp_is_refused():
    with pytest.raises(ValidationError):
        request_received(occurred_at=datetime(2026, 11, 21, 12, 0))


def test_events_after_the_first_need_a_causation():
    with pytest.raises(ValidationError):
        builders.data_verified(causation_id=None)


@pytest.mark.parametrize("association_id", ["Sidr", "a.b", "with space", "submissions", "deadletter", ""])
def test_association_ids_must_be_safe_subject_tokens(association_id):
    with pytest.raises(ValidationError):
        request_received(association_id=association_id)


def test_an_unknown_event_type_does_not_decode():
    body = json.loads(encode_event(request_received()))
    body["event_type"] = "SomethingElse"
    with pytest.raises(ValidationError):
        decode_event(json.dumps(body))


def test_each_event_type_has_exactly_one_producer():
    assert set(PRODUCERS) == set(EVENT_TYPES)
    assert len(EVENT_TYPES) == 7  # the six of the lifecycle and PersonalDataErased


def test_subjects_follow_the_wire_format():
    case_id = uuid4()
    assert event_subject("sidr", case_id, "DataVerified") == f"khidma.sidr.{case_id}.DataVerified"
    assert event_type_filter("DataVerified") == "khidma.*.*.DataVerified"
    assert case_filter(case_id) == f"khidma.*.{case_id}.*"


def test_the_stream_does_not_capture_submissions():
    for subject in STREAM_SUBJECTS:
        assert not subject.startswith("khidma.submissions")
        assert subject != "khidma.>"


def test_checked_in_json_schemas_match_the_models():
    for event_type, schema in json_schemas().items():
        path = SCHEMAS / f"{event_type}.schema.json"
        assert path.read_text(encoding="utf-8") == render(schema), (
            f"{path} is stale: run `make schemas`"
        )
