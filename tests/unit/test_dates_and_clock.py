from datetime import date, datetime, timedelta, timezone

import pytest

from shared.clock import FrozenClock, OffsetFileClock
from shared.dates import both_calendars, from_hijri, hijri_year, local_day

pytestmark = pytest.mark.unit


def test_hijri_dates_follow_umm_al_qura():
    assert from_hijri(1442, 7, 17) == date(2021, 3, 1)
    assert from_hijri(1445, 1, 7) == date(2023, 7, 25)
    assert hijri_year(date(2026, 11, 21)) == 1448


def test_the_day_is_the_day_in_riyadh():
    late_evening_utc = datetime(2026, 11, 21, 22, 30, tzinfo=timezone.utc)
    assert local_day(late_evening_utc) == date(2026, 11, 22)


def test_a_date_is_shown_in_both_calendars_in_both_languages():
    shown = both_calendars(datetime(2021, 3, 1, 9, 0, tzinfo=timezone.utc))
    assert shown["gregorian"] == "2021-03-01"
    assert shown["hijri"] == "1442-07-17"
    assert "رجب" in shown["ar"] and "١٤٤٢" in shown["ar"] and "مارس" in shown["ar"]
    assert "Rajab 1442 AH" in shown["en"] and "March 2021" in shown["en"]


def test_a_naive_moment_is_refused():
    with pytest.raises(ValueError):
        both_calendars(datetime(2021, 3, 1, 9, 0))


def test_the_clock_file_shifts_time_for_running_services(tmp_path):
    clock = OffsetFileClock(tmp_path / "offset")
    before = clock.now()
    (tmp_path / "offset").write_text(str(15 * 86400))
    assert clock.now() - before >= timedelta(days=15)


def test_a_frozen_clock_moves_only_when_told():
    clock = FrozenClock(datetime(2026, 1, 1, tzinfo=timezone.utc))
    clock.advance(timedelta(days=14, seconds=1))
    assert clock.now() == datetime(2026, 1, 15, 0, 0, 1, tzinfo=timezone.utc)
