"""The contract's msgspec structs (shared/event_structs.py) read what pydantic reads.

`decode_event_fast` must accept exactly the messages `decode_event` accepts, read
the same values from them, and refuse the others with pydantic's own error: the
audit's figures are computed from what it reads.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from shared.event_structs import EVENT_STRUCTS, decode_event_fast
from shared.events import (
    EVENT_CLASSES,
    Actor,
    Applicant,
    Attestation,
    CheckResult,
    Correction,
    Document,
    Explanation,
    PersonalDataErased,
    Ratings,
    Sealed,
    Vote,
    decode_event,
)
from tests import builders

SEALED = Sealed(sealed="v1", key="k-1", data="bm9uY2UrY2lwaGVy")
NOW = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


def _erased() -> PersonalDataErased:
    erasure = uuid4()
    return PersonalDataErased(
        event_id=uuid4(),
        occurred_at=NOW,
        association_id="sidr",
        case_id=erasure,
        case_ref=f"erasure-{erasure.hex[:8]}",
        correlation_id=erasure,
        actor=Actor(kind="officer", id="privacy-1", name="Privacy officer", role="admin"),
        payload={"erasure_id": erasure, "reason_code": "request", "key_ids": ["k-1"]},
    )


def valid_events() -> list[BaseModel]:
    """Events of every type and schema version, with plain and sealed personal fields."""
    received_plain = builders.request_received(
        occurred_at=NOW,
        applicant=Applicant(national_id="1000000008", name="A", phone="0500", email="a@b.c"),
        fields={"income": 1200, "notes": "نص", "nested": {"a": [1, 2.5, None, True]}},
        documents=[Document(code="id", number="1", issued_on=date(2020, 1, 1))],
        attestation=Attestation(
            attested=True, attested_at=NOW, method="in_person", data_hash="a" * 64
        ),
        submitted_at=NOW - timedelta(hours=1),
        revision=2,
        corrects=uuid4(),
        subject_index="b" * 40,
    )
    received_sealed = builders.request_received(
        applicant=SEALED,
        fields=SEALED,
        documents=SEALED,
        attestation=SEALED,
        personal_key="k-1",
    )
    return [
        received_plain,
        received_sealed,
        builders.request_received(),
        builders.data_verified(
            after=received_plain,
            outcome="discrepancies",
            checks=[CheckResult(name="identity", passed=False, detail="x")],
            corrections=[Correction(field="phone", ar="هاتف", en="phone")],
            override_reason="plain words",
            schema_version=1,
        ),
        builders.data_verified(
            outcome="ineligible",
            ineligible_rule="age",
            ineligible_reason=Explanation(ar="عمر", en="age"),
            override_reason=SEALED,
            personal_key="k-1",
        ),
        builders.referred_to_researcher(schema_version=1),
        builders.referred_to_researcher(
            reason=SEALED, questions=SEALED, personal_key="k-1", schema_version=2
        ),
        builders.committee_decided(
            votes=[Vote(member="m1", vote="approve")],
            deadline=NOW.astimezone(timezone(timedelta(hours=3))),
            sitting_id="s1",
            members_present=["m1"],
            quorum=1,
            recusals=["m2"],
            dissent_notes=["n"],
        ),
        builders.service_delivered(),
        builders.survey_answered(),
        builders.survey_answered(
            ratings=Ratings(satisfaction=2, recommend=7),
            comment=SEALED,
            personal_key="k-1",
            anonymous=False,
            stage="rejected",
            service_code="aid",
            channel="phone",
        ),
        _erased(),
    ]


VALID = [json.loads(event.model_dump_json()) for event in valid_events()]


def same(fast: Any, slow: Any, where: str = "") -> None:
    """The struct reads as the model does, field by field (names, values, types)."""
    if isinstance(slow, BaseModel):
        assert type(fast).__name__ in (type(slow).__name__, f"{type(slow).__name__}Struct"), where
        for name in type(slow).model_fields:
            same(getattr(fast, name), getattr(slow, name), f"{where}.{name}")
    elif isinstance(slow, list):
        assert isinstance(fast, list) and len(fast) == len(slow), where
        for index, (a, b) in enumerate(zip(fast, slow, strict=True)):
            same(a, b, f"{where}[{index}]")
    elif isinstance(slow, dict):
        assert isinstance(fast, dict) and list(fast) == list(slow), where
        for key in slow:
            same(fast[key], slow[key], f"{where}.{key}")
    elif isinstance(slow, datetime):
        assert isinstance(fast, datetime), where
        assert (fast, fast.utcoffset()) == (slow, slow.utcoffset()), where
        assert fast.isoformat() == slow.isoformat(), where
    else:
        assert type(fast) is type(slow) and fast == slow, f"{where}: {fast!r} != {slow!r}"


def assert_read_alike(data: bytes) -> None:
    try:
        slow = decode_event(data)
    except ValidationError as refusal:
        with pytest.raises(ValidationError) as fast_refusal:
            decode_event_fast(data)
        assert str(fast_refusal.value) == str(refusal)  # pydantic's own message
        return
    same(decode_event_fast(data), slow)


def test_every_event_type_has_its_struct() -> None:
    assert [s.__name__ for s in EVENT_STRUCTS] == [f"{c.__name__}Struct" for c in EVENT_CLASSES]


@pytest.mark.parametrize("event", VALID, ids=lambda e: f"{e['event_type']}-v{e['schema_version']}")
def test_a_valid_event_is_read_by_its_struct_with_the_models_values(event: dict[str, Any]) -> None:
    data = json.dumps(event, ensure_ascii=False).encode()
    fast = decode_event_fast(data)
    assert isinstance(fast, msgspec.Struct)  # the fast path, not pydantic's fallback
    same(fast, decode_event(data))


def _set(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    document = json.loads(json.dumps(document))
    target = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return document


def _drop(document: Any, path: tuple[Any, ...]) -> Any:
    document = json.loads(json.dumps(document))
    target = document
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return document


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.append((*prefix, key))
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.append((*prefix, index))
            found += _paths(item, (*prefix, index))
    return found


# Values that sit at the edges where the two readers could part.
# A fixed id: the parameters name the tests, which every worker collects alike.
AN_ID = UUID("0e11d920-91f2-498f-a16c-6720a5fe0de6")
EDGE_STRINGS = [
    "2026-01-01T00:00:00Z",
    "2026-01-01t00:00:00z",
    "2026-01-01 00:00:00+03:00",
    "2026-01-01T00:00:00",  # naive
    "2026-01-01T00:00Z",
    "2026-01-01T00:00:00.1234567Z",
    "2026-01-01T00:00:00.9999995+00:00",
    "2026-01-01T00:00:00,5Z",
    "2026-01-01T23:59:60Z",
    "2026-01-01T00:00:00+24:00",
    "2026-01-01T00:00:00+0300",
    "2026-01-01T00:00:00-00:00",
    "2026-02-30T00:00:00Z",
    "2026-01-01",
    "20260101T000000Z",
    "1441-05-20h",
    "1441-13-40h",
    "sidr\n",
    "submissions",
    "deadletter",
    "SIDR",
    "a" * 64 + "\n",
    "b" * 40 + "\n",
    "A" * 64,
    str(AN_ID),
    AN_ID.hex,
    str(AN_ID).upper(),
    "{" + str(AN_ID) + "}",
    "urn:uuid:" + str(AN_ID),
    "v1",
    "true",
    "5",
    "",
    "\ud800",
    "x" * 201,
]
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(EDGE_STRINGS),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(max_size=6), inner, max_size=3),
        st.just({"sealed": "v1", "key": "k", "data": "d"}),
        st.just({"sealed": "v1", "key": "k", "data": "d", "national_id": "1", "name": "n"}),
        st.just({"national_id": "1", "name": "n", "sealed": "v2"}),
        st.just({"attested": True, "sealed": "v1", "key": "k", "data": "d"}),
    ),
    max_leaves=6,
)


@st.composite
def corrupted(draw: st.DrawFn) -> bytes:
    event = draw(st.sampled_from(VALID))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(event)
        action = draw(st.sampled_from(["set", "drop", "extra"]))
        path = draw(st.sampled_from(paths))
        if action == "set":
            event = _set(event, path, draw(json_values))
        elif action == "drop":
            event = _drop(event, path)
        elif isinstance(event, dict):
            event = _set(event, (draw(st.text(max_size=8)),), draw(json_values))
        if not isinstance(event, dict):
            break
    # Raw UTF-8 (lone surrogates as their bytes), or JSON's escapes (\ud800).
    ascii_only = draw(st.booleans())
    return json.dumps(event, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corrupted())
def test_a_corrupted_event_is_read_or_refused_by_both_alike(data: bytes) -> None:
    assert_read_alike(data)


@pytest.mark.parametrize(
    ("path", "value"),
    [(("occurred_at",), text) for text in EDGE_STRINGS[:14]]
    + [
        (("occurred_at",), 1767225600),
        (("association_id",), "sidr\n"),
        (("association_id",), "submissions"),
        (("schema_version",), "2"),
        (("schema_version",), 2.0),
        (("schema_version",), True),
        (("payload", "attestation", "data_hash"), "a" * 64 + "\n"),
        (("payload", "attestation", "attested"), "true"),
        (("payload", "attestation", "attested_at"), "2026-01-01T00:00:00"),
        (("payload", "documents", 0, "issued_on"), "1441-05-20h"),
        (("payload", "documents", 0, "issued_on"), "2020-01-01T00:00:00"),
        (
            ("payload", "applicant"),
            {"sealed": "v1", "key": "k", "data": "d", "national_id": "1", "name": "n"},
        ),
        (
            ("payload", "applicant"),
            {"sealed": "v2", "key": "k", "data": "d", "national_id": "1", "name": "n"},
        ),
        (
            ("payload", "applicant"),  # pydantic takes the Applicant: more of its fields set
            {"sealed": "v1", "key": "k", "data": "d"}
            | {"national_id": "1", "name": "n", "phone": "1", "email": "e"},
        ),
        (("payload", "fields"), {"sealed": "v1", "key": "k", "data": "d"}),
        (("payload", "fields"), {"sealed": "v1", "key": "k"}),
        (("payload", "fields"), {"n": 1e308 * 10}),
        (("payload", "fields"), {"n": "\u0000"}),
        (("payload", "fields"), {"n": 2**80}),
        (("payload", "attestation"), {"attested": True, "sealed": "v1", "key": "k", "data": "d"}),
        (("payload", "revision"), 0),
        (("payload", "submitted_at"), 1767225600.5),
        (("case_id",), "{" + str(AN_ID) + "}"),
        (("causation_id",), str(AN_ID)),
    ],
)
def test_an_edge_of_the_contract_is_read_or_refused_by_both_alike(
    path: tuple[Any, ...], value: Any
) -> None:
    event = _set(VALID[0], path, value)
    assert_read_alike(json.dumps(event, ensure_ascii=False).encode("utf-8", "surrogatepass"))


def test_a_non_utc_moment_is_read_in_utc_as_the_model_reads_it() -> None:
    event = _set(VALID[0], ("occurred_at",), "2026-01-01T03:00:00+03:00")
    fast = decode_event_fast(json.dumps(event).encode())
    assert isinstance(fast, msgspec.Struct)
    assert fast.occurred_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert fast.occurred_at.utcoffset() == timedelta(0)


def test_what_is_no_event_is_refused_with_pydantics_message() -> None:
    for data in (b"", b"{", b"[]", b"null", b'{"event_type": "Nope"}', b"\xff"):
        assert_read_alike(data)


def test_an_unknown_field_is_ignored_as_the_model_ignores_it() -> None:
    event = {**VALID[3], "added_later": {"x": 1}, "payload": {**VALID[3]["payload"], "new": 1}}
    fast = decode_event_fast(json.dumps(event).encode())
    assert isinstance(fast, msgspec.Struct)
    assert fast.case_id == UUID(VALID[3]["case_id"])


@pytest.mark.parametrize("ascii_only", [False, True], ids=["raw-bytes", "escaped"])
def test_text_that_is_no_utf8_is_refused_even_in_a_field_no_struct_names(ascii_only: bool) -> None:
    event = {**VALID[0], "unknown": "\ud800"}
    data = json.dumps(event, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    assert_read_alike(data)
    with pytest.raises(ValidationError):
        decode_event(data)
