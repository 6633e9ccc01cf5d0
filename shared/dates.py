"""Dates as people read them: Hijri (Umm al-Qura) and Gregorian side by side, and
dates as people type them: one reading and one set of bounds for every way in
(decision 28).

The Umm al-Qura table (hijridate) covers 1924-08-01 .. 2077-11-16 (1343-1500 AH)
only. A stored date outside it is shown in Gregorian alone: a date that was
recorded must never stop a read or a replay.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from hijridate import Gregorian, Hijri

from shared.errors import Invalid
from shared.inputs import ascii_digits

# Saudi Arabia keeps UTC+3 all year; a person's "day" is the day in Riyadh.
RIYADH = timezone(timedelta(hours=3), "AST")

_ARABIC_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
_GREGORIAN_MONTHS_AR = (
    "يناير",
    "فبراير",
    "مارس",
    "أبريل",
    "مايو",
    "يونيو",
    "يوليو",
    "أغسطس",
    "سبتمبر",
    "أكتوبر",
    "نوفمبر",
    "ديسمبر",
)


def local_day(moment: datetime | date) -> date:
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            raise ValueError("a moment needs its time zone")
        return moment.astimezone(RIYADH).date()
    return moment


# The days the Umm al-Qura table of hijridate can convert.
HIJRI_TABLE_FIRST = date(1924, 8, 1)
HIJRI_TABLE_LAST = date(2077, 11, 16)


def in_hijri_table(moment: datetime | date) -> bool:
    return HIJRI_TABLE_FIRST <= local_day(moment) <= HIJRI_TABLE_LAST


def to_hijri(moment: datetime | date) -> Hijri:
    """Raises OverflowError outside the table: call it only where that is an error
    (a board date, today's case number), never for a date shown from the records."""
    day = local_day(moment)
    return Gregorian(day.year, day.month, day.day).to_hijri()


def hijri_year(moment: datetime | date) -> int:
    return to_hijri(moment).year


def from_hijri(year: int, month: int, day: int) -> date:
    return date(*Hijri(year, month, day).to_gregorian().datetuple())


def arabic_digits(text: str) -> str:
    return text.translate(_ARABIC_DIGITS)


def both_calendars(moment: datetime | date) -> dict[str, str | None]:
    """A date in both calendars, in Arabic and in English, for anything a person reads."""
    result = dict(_day_in_both_calendars(local_day(moment)))
    if isinstance(moment, datetime):
        result["at"] = moment.astimezone(UTC).isoformat()
    return result


@functools.lru_cache(maxsize=8192)
def _day_in_both_calendars(day: date) -> dict[str, str | None]:
    # A day's words never change, and a projection that rebuilds its views writes the
    # same few hundred days a million times: each is worked out once (copied by the caller).
    gregorian_ar = f"{day.day} {_GREGORIAN_MONTHS_AR[day.month - 1]} {day.year} م"
    gregorian_en = f"{day.day} {day:%B} {day.year}"
    if not in_hijri_table(day):
        # Beyond the Umm al-Qura table: the Gregorian date alone, never an error.
        return {
            "gregorian": day.isoformat(),
            "hijri": None,
            "ar": arabic_digits(gregorian_ar),
            "en": gregorian_en,
        }
    hijri = to_hijri(day)
    return {
        "gregorian": day.isoformat(),
        "hijri": f"{hijri.year:04d}-{hijri.month:02d}-{hijri.day:02d}",
        "ar": arabic_digits(f"{hijri.day} {hijri.month_name('ar')} {hijri.year} هـ الموافق ")
        + arabic_digits(gregorian_ar),
        "en": f"{hijri.day} {hijri.month_name()} {hijri.year} AH ({gregorian_en})",
    }


def day_in_words(moment: datetime | date, lang: str) -> str:
    """The date as a sentence in one language (`ar` or `en`), Hijri first when it can be."""
    text = both_calendars(moment)[lang]
    assert text is not None  # both languages are always written
    return text


# Reading a typed date ----------------------------------------------------------

# A Hijri date is written like a Gregorian one and marked: "1441-05-20h" or
# "1441-05-20 هـ". Unmarked, a date is Gregorian.
_TYPED_DAY = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})\s*(h|H|هـ|ه)?")

# No person, membership or document a service judges is older; and every year of
# the Hijri table (1343-1500) falls before it, so a Hijri date typed as a
# Gregorian one can never be taken for a real day.
EARLIEST_DAY = date(1900, 1, 1)
# Gregorian years that are in fact Hijri ones typed without the mark.
_HIJRI_LOOKING_YEARS = range(1300, 1600)


@dataclass(frozen=True)
class DayBounds:
    """What a date of one kind of field can be, judged on the day it is given."""

    kind: str
    # The latest day, as years after today; 0 = today (it has happened).
    years_ahead: int


# A day that has happened: a birth, an issue, a joining.
PAST_DAY = DayBounds("past", 0)
# An expiry: no document (ID card, iqama, passport, registration) is issued for
# more than 10 years; 30 leaves room for any kind and still refuses the absurd.
EXPIRY_DAY = DayBounds("expiry", 30)
# A date field of a service with no more said about it.
ANY_DAY = DayBounds("any", 30)


def invalid_date(field: str, value: Any) -> Invalid:
    return Invalid(
        "invalid_date",
        f"{field} must be a date written YYYY-MM-DD (Gregorian), or YYYY-MM-DDh for a "
        f"Hijri date (Umm al-Qura, 1343-1500 AH), not {value!r}.",
        f"{field} يجب أن يكون تاريخًا بالصيغة YYYY-MM-DD (ميلادي)، أو YYYY-MM-DDh "
        f"للتاريخ الهجري (أم القرى، ١٣٤٣-١٥٠٠ هـ)، لا {value!r}.",
    )


def is_marked_hijri(value: Any) -> bool:
    found = _TYPED_DAY.fullmatch(ascii_digits(str(value).strip()))
    return found is not None and found.group(4) is not None


def read_day(value: Any, field: str) -> date:
    """The Gregorian day a typed date means (a `date` stays itself). Raises Invalid."""
    if isinstance(value, datetime):
        return local_day(value)
    if isinstance(value, date):
        return value
    found = _TYPED_DAY.fullmatch(ascii_digits(str(value).strip()))
    if found is None:
        raise invalid_date(field, value)
    year, month, day = (int(part) for part in found.groups()[:3])
    try:
        if found.group(4):
            return from_hijri(year, month, day)
        return date(year, month, day)
    except (ValueError, OverflowError):
        raise invalid_date(field, value) from None


def check_day(day: date, field: str, bounds: DayBounds, today: date) -> date:
    """The day, if a date of this kind can be it on `today`; Invalid otherwise."""
    if day < EARLIEST_DAY:
        if day.year in _HIJRI_LOOKING_YEARS:
            raise Invalid(
                "date_looks_hijri",
                f"{field}: {day.isoformat()} looks like a Hijri date; write it "
                f"{day.isoformat()}h, or give the Gregorian date.",
                f"{field}: التاريخ {day.isoformat()} يبدو هجريًا؛ اكتبه {day.isoformat()}h، "
                "أو اكتب التاريخ الميلادي.",
            )
        raise Invalid(
            "date_too_early",
            f"{field}: {day.isoformat()} is before {EARLIEST_DAY.isoformat()}.",
            f"{field}: التاريخ {day.isoformat()} قبل {EARLIEST_DAY.isoformat()}.",
        )
    latest = _years_after(today, bounds.years_ahead)
    if day > latest:
        if bounds.years_ahead == 0:
            raise Invalid(
                "date_in_future",
                f"{field}: {day.isoformat()} has not come yet (today is {today.isoformat()}).",
                f"{field}: التاريخ {day.isoformat()} لم يأتِ بعد (اليوم {today.isoformat()}).",
            )
        raise Invalid(
            "date_too_far",
            f"{field}: {day.isoformat()} is more than {bounds.years_ahead} years ahead "
            f"(at most {latest.isoformat()}).",
            f"{field}: التاريخ {day.isoformat()} بعد أكثر من {bounds.years_ahead} سنة "
            f"(الحد {latest.isoformat()}).",
        )
    return day


def accept_day(value: Any, field: str, bounds: DayBounds, today: date) -> date:
    """A typed date read and judged: the one way a date enters the records."""
    return check_day(read_day(value, field), field, bounds, today)


def _years_after(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February into a common year
        return day.replace(year=day.year + years, day=28)
