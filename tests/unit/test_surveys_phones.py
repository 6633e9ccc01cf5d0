"""Surveys send an invitation only to a number a channel can read, in E.164."""

from __future__ import annotations

import pytest

from services.surveys.invitations import Contact, reachable_contact
from services.surveys.phones import normalise_phone, usable_email

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "typed",
    [
        "050 123 4567",
        "0501234567",
        "501234567",
        "966501234567",
        "00966501234567",
        "+966 50 123 4567",
        "+966 050 123 4567",
        "(050) 123-4567",
        "050.123.4567",
        "٠٥٠١٢٣٤٥٦٧",
        "۰۵۰۱۲۳۴۵۶۷",
        " +966501234567 ",
    ],
)
def test_a_saudi_mobile_as_typed_becomes_e164(typed: str) -> None:
    assert normalise_phone(typed) == "+966501234567"


def test_a_saudi_landline_and_a_foreign_number_with_its_code_are_kept_in_e164() -> None:
    assert normalise_phone("011 234 5678") == "+966112345678"
    assert normalise_phone("+44 20 7946 0958") == "+442079460958"
    assert normalise_phone("0044 20 7946 0958") == "+442079460958"


@pytest.mark.parametrize(
    "typed",
    [
        None,
        "",
        "   ",
        "call me",
        "050123",
        "05012345678",
        "12345",
        "+966 123",
        "+9660012345678",
        "+0501234567",
    ],
)
def test_what_cannot_be_a_number_is_none(typed: str | None) -> None:
    assert normalise_phone(typed) is None


def test_an_email_is_usable_only_if_it_looks_like_one() -> None:
    assert usable_email(" a@example.org ") == "a@example.org"
    assert usable_email("a@example") is None
    assert usable_email("not an address") is None
    assert usable_email(None) is None


def test_the_reachable_contact_or_why_there_is_none() -> None:
    assert reachable_contact("050 123 4567", None) == Contact(phone="+966501234567")
    assert reachable_contact("x", "a@example.org") == Contact(email="a@example.org")
    assert reachable_contact("x", None) == "unusable_contact"
    assert reachable_contact(None, None) == "no_contact"
    assert reachable_contact(" ", "") == "no_contact"
