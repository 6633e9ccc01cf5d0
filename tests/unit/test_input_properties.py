"""Properties of the two readers of outside input: the submission models and the
integration event decoder. On any JSON-ish input they raise nothing but their own
ValidationError, and what they accept reads back the same after encoding."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.events import RequestReceived, decode_event, encode_event
from shared.submissions import Submission, SubmissionBody
from tests import builders

pytestmark = pytest.mark.unit

LONE_SURROGATE_ESCAPE = re.compile(r"\\ud[89a-f][0-9a-f]{2}")

# Modest counts: these run with every unit test run.
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any text, lone surrogates included (Hypothesis leaves them out by default).
any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=20)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()  # NaN and the infinities included
    | any_text
    | st.sampled_from(["1000000008", "١٠٠٠٠٠٠٠٠٨", "website", "seedlings", "sidr", ""])
)
json_ish = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            any_text | st.sampled_from(["seedling_count", "name"]), children, max_size=4
        )
    ),
    max_leaves=12,
)


def _or(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a plausible value, sometimes anything at all in its place: so that some
    whole submissions are valid and their round trip is tested too."""
    return st.integers(min_value=0, max_value=9).flatmap(lambda n: json_ish if n == 0 else strategy)


applicants = st.fixed_dictionaries(
    {
        "national_id": _or(st.sampled_from(["1000000008", "١٠١٢٣٤٥٦٧٢"])),
        "name": _or(st.text(min_size=1, max_size=20)),
    },
    optional={
        "phone": _or(st.sampled_from(["0501234567", "٠٥٠١٢٣٤٥٦٧"])),
        "email": _or(st.just("a@example.org")),
    },
)
submission_like = st.fixed_dictionaries(
    {
        "association_id": _or(st.just("sidr")),
        "channel": _or(st.just("website")),
        "channel_ref": _or(st.text(min_size=1, max_size=20)),
        "service_code": _or(st.just("seedlings")),
        "applicant": _or(applicants),
        "fields": _or(st.dictionaries(st.text(max_size=10), json_ish, max_size=4)),
    },
    optional={
        "documents": _or(st.just([{"code": "national_id_card"}])),
        "attestation": _or(st.just({"attested": True, "method": "in_person"})),
    },
)


def _json_text(value: Any) -> str | None:
    """The value as JSON text, NaN written as the token json.dumps writes; None when
    even Python's json cannot write it (a surrogate it could only escape is fine)."""
    try:
        return json.dumps(value)
    except (ValueError, RecursionError):
        return None


@PROPERTY
@given(submission_like)
def test_a_submission_is_taken_or_refused_never_anything_else(data: dict[str, Any]) -> None:
    try:
        taken = Submission.model_validate(data)
    except ValidationError:
        return
    again = Submission.model_validate_json(taken.model_dump_json())
    assert again == taken


@PROPERTY
@given(submission_like)
def test_a_submission_body_from_bytes_is_taken_or_refused(data: dict[str, Any]) -> None:
    data = {key: value for key, value in data.items() if key not in ("association_id", "channel")}
    text = _json_text(data)
    if text is None:
        return
    try:
        taken = SubmissionBody.model_validate_json(text.encode("utf-8", "surrogatepass"))
    except ValidationError:
        return
    assert SubmissionBody.model_validate_json(taken.model_dump_json()) == taken


@PROPERTY
@given(st.binary(max_size=200) | json_ish.map(_json_text).filter(lambda t: t is not None))
def test_the_decoder_raises_only_its_validation_error(wire: bytes | str) -> None:
    try:
        decode_event(wire)
    except ValidationError:
        pass


@PROPERTY
@given(st.dictionaries(any_text, json_ish, max_size=4), json_ish)
def test_an_event_the_decoder_accepts_reads_back_the_same(
    fields: dict[str, Any], extra: Any
) -> None:
    """Fields of any shape: a request is built with them (or refused), and what is
    published decodes to the same event, also with a field this version does not know."""
    try:
        event = builders.request_received(fields=fields)
    except ValidationError:
        return
    wire = encode_event(event)
    decoded = decode_event(wire)
    assert isinstance(decoded, RequestReceived) and decoded == event
    envelope = json.loads(wire)
    text = _json_text({**envelope, "added_in_a_later_version": extra})
    if text is not None:
        try:
            assert decode_event(text.encode("utf-8", "surrogatepass")) == event
        except ValidationError:
            # Only an unknown field no JSON reader takes (a lone surrogate's escape)
            # may make the whole message unreadable.
            assert LONE_SURROGATE_ESCAPE.search(json.dumps(extra))
