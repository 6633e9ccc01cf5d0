"""The simulator's mix of cases (`make simulate ARGS='--mix …'`)."""

from __future__ import annotations

import argparse
from collections import Counter

import pytest

from khidma.simulate import DEFAULT_MIX, KINDS, parse_mix, plan

pytestmark = pytest.mark.unit


def test_a_mix_names_weights_and_leaves_the_other_kinds_at_zero() -> None:
    assert parse_mix("approved=6, rejected=2") == {
        "approved": 6, "rejected": 2, "referred": 0, "ineligible": 0, "corrected": 0,
    }


@pytest.mark.parametrize("text", ["approved", "approved=x", "granted=1", "approved=0", "approved=-1"])
def test_a_mix_that_cannot_be_followed_is_refused_with_the_kinds(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_mix(text)


def test_a_plan_follows_the_mix_exactly_when_the_count_allows() -> None:
    kinds = plan(10, DEFAULT_MIX, seed=1)
    assert Counter(kinds) == {"approved": 6, "rejected": 2, "referred": 2}


def test_a_plan_has_as_many_cases_as_asked_and_only_kinds_with_weight() -> None:
    for cases in (1, 3, 7, 23):
        kinds = plan(cases, {"approved": 1, "rejected": 0, "referred": 3, "ineligible": 0})
        assert len(kinds) == cases
        assert set(kinds) <= {"approved", "referred"} and set(kinds) <= set(KINDS)


def test_the_same_seed_plans_the_same_order() -> None:
    assert plan(20, DEFAULT_MIX, seed=7) == plan(20, DEFAULT_MIX, seed=7)
