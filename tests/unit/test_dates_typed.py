"""Dates as people type them (one reading, one set of bounds) and dates beyond the
Hijri table shown in Gregorian alone (decision 28)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from jinja2 import Environment

from audit.timeline import hijri_text
from services.web.rendering import when
from shared.dates import (
    ANY_DAY,
    EXPIRY_DAY,
    PAST_DAY,
    accept_day,
    both_calendars,
    day_in_words,
    read_day,
)
from shared.errors import Invalid
from shared.events import Document
from shared.http import refusal_status

pytestmark = pytest.mark.unit

TODAY = date(2026, 12, 3)


@pytest.mark.parametrize(
    ("moment", "gregorian"),
    [
        (date(1441, 5, 20), "1441-05-20"),  # a Hijri date stored as if Gregorian
        (date(2099, 1, 1), "2099-01-01"),
        (date(2080, 6, 30), "2080-06-30"),
        (date(1924, 7, 31), "1924-07-31"),  # the day before the table starts
        (date(2077, 11, 17), "2077-11-17"),  # the day after it ends
        (datetime(2090, 3, 1, 8, 0, tzinfo=UTC), "2090-03-01"),
    ],
)
def test_a_date_beyond_the_hijri_table_is_shown_in_gregorian_alone(
    moment: date, gregorian: str
) -> None:
    shown = both_calendars(moment)
    assert shown["gregorian"] == gregorian
    assert shown["hijri"] is None
    year = gregorian[:4]
    assert year in shown["en"] and "AH" not in shown["en"]
    assert year.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")) in str(shown["ar"])
    assert "هـ" not in str(shown["ar"])
    assert day_in_words(moment, "en") == shown["en"]


def test_the_table_s_last_days_are_still_shown_in_hijri() -> None:
    assert both_calendars(date(1924, 8, 1))["hijri"] == "1343-01-01"
    assert both_calendars(date(2077, 11, 16))["hijri"] == "1500-12-30"


@pytest.mark.parametrize(
    ("typed", "day"),
    [
        ("2020-01-15", date(2020, 1, 15)),
        (" 2020-01-15 ", date(2020, 1, 15)),
        ("1441-05-20h", date(2020, 1, 15)),
        ("1441-05-20H", date(2020, 1, 15)),
        ("1441-05-20 هـ", date(2020, 1, 15)),
        ("١٤٤١-٠٥-٢٠ هـ", date(2020, 1, 15)),
        (date(2020, 1, 15), date(2020, 1, 15)),
    ],
)
def test_a_date_is_gregorian_or_hijri_marked(typed: object, day: date) -> None:
    assert read_day(typed, "joined_on") == day


@pytest.mark.parametrize(
    "typed", ["15/01/2020", "2020-02-30", "1441-02-30h", "1501-01-01h", "1342-12-29h", "", "soon"]
)
def test_what_cannot_be_read_as_a_day_is_refused_in_both_languages(typed: str) -> None:
    with pytest.raises(Invalid) as refused:
        read_day(typed, "joined_on")
    assert refused.value.code == "invalid_date"
    assert refusal_status(refused.value) == 422
    assert "joined_on" in refused.value.en and "joined_on" in refused.value.ar


@pytest.mark.parametrize(
    ("typed", "bounds", "code"),
    [
        ("1441-05-20", PAST_DAY, "date_looks_hijri"),  # Hijri typed without its mark
        ("1441-05-20", EXPIRY_DAY, "date_looks_hijri"),
        ("1899-12-31", PAST_DAY, "date_too_early"),
        ("2026-12-04", PAST_DAY, "date_in_future"),  # a birth or an issue tomorrow
        ("2099-01-01", PAST_DAY, "date_in_future"),
        ("2080-01-01", EXPIRY_DAY, "date_too_far"),
        ("2090-01-01", EXPIRY_DAY, "date_too_far"),
        ("2056-12-04", EXPIRY_DAY, "date_too_far"),
        ("2099-01-01", ANY_DAY, "date_too_far"),
    ],
)
def test_a_day_that_cannot_be_real_for_its_field_is_refused(
    typed: str, bounds: object, code: str
) -> None:
    with pytest.raises(Invalid) as refused:
        accept_day(typed, "expires_on", bounds, TODAY)  # type: ignore[arg-type]
    assert refused.value.code == code
    assert refusal_status(refused.value) == 422
    assert "expires_on" in refused.value.en and "expires_on" in refused.value.ar
    assert refused.value.en != refused.value.ar


def test_a_hijri_looking_year_is_told_how_to_mark_it() -> None:
    with pytest.raises(Invalid) as refused:
        accept_day("1441-05-20", "joined_on", PAST_DAY, TODAY)
    assert "1441-05-20h" in refused.value.en and "1441-05-20h" in refused.value.ar


@pytest.mark.parametrize(
    ("typed", "bounds"),
    [
        ("1900-01-01", PAST_DAY),
        ("2026-12-03", PAST_DAY),  # today has happened
        ("1441-05-20h", PAST_DAY),
        ("2020-01-01", EXPIRY_DAY),  # expired: verification's business, not a typo
        ("2056-12-03", EXPIRY_DAY),
        ("1460-01-01h", EXPIRY_DAY),
    ],
)
def test_a_day_within_its_bounds_is_taken(typed: str, bounds: object) -> None:
    assert accept_day(typed, "day", bounds, TODAY) == read_day(typed, "day")  # type: ignore[arg-type]


def test_a_document_reads_a_marked_hijri_date_as_gregorian_and_loads_any_stored_one() -> None:
    typed = Document.model_validate({"code": "id", "issued_on": "1441-05-20h"})
    assert typed.issued_on == date(2020, 1, 15)
    # Stored before the bounds: still a document, to be shown and judged.
    stored = Document.model_validate(
        {"code": "id", "issued_on": "1441-05-20", "expires_on": "2099-01-01"}
    )
    assert stored.expires_on == date(2099, 1, 1)


@pytest.mark.parametrize(
    ("value", "lang", "words"),
    [
        ("1441-05-20", "en", "20 May 1441"),
        ("2099-01-01", "ar", "١ يناير ٢٠٩٩ م"),
        ("2020-01-15", "en", "20 Jumada al-Ula 1441 AH (15 January 2020)"),
    ],
)
def test_the_web_pages_show_a_stored_date_beyond_the_table_in_gregorian(
    value: str, lang: str, words: str
) -> None:
    environment = Environment(autoescape=True)
    environment.filters["when"] = when
    shown = environment.from_string("{{ day | when }}").render(day=value, lang=lang)
    assert f'<time datetime="{value}">{words}</time>' == shown


def test_the_auditor_s_lines_give_the_gregorian_day_beyond_the_table() -> None:
    assert hijri_text(both_calendars(date(2099, 1, 1))) == "2099-01-01"
    assert hijri_text(both_calendars(date(2020, 1, 15))) == "1441-05-20 هـ"
