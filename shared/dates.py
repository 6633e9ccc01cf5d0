"""Dates as people read them: Hijri (Umm al-Qura) and Gregorian side by side."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from hijridate import Gregorian, Hijri

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


def to_hijri(moment: datetime | date) -> Hijri:
    day = local_day(moment)
    return Gregorian(day.year, day.month, day.day).to_hijri()


def hijri_year(moment: datetime | date) -> int:
    return to_hijri(moment).year


def from_hijri(year: int, month: int, day: int) -> date:
    return date(*Hijri(year, month, day).to_gregorian().datetuple())


def arabic_digits(text: str) -> str:
    return text.translate(_ARABIC_DIGITS)


def both_calendars(moment: datetime | date) -> dict[str, str]:
    """A date in both calendars, in Arabic and in English, for anything a person reads."""
    day = local_day(moment)
    hijri = to_hijri(day)
    result = {
        "gregorian": day.isoformat(),
        "hijri": f"{hijri.year:04d}-{hijri.month:02d}-{hijri.day:02d}",
        "ar": arabic_digits(
            f"{hijri.day} {hijri.month_name('ar')} {hijri.year} هـ"
            f" الموافق {day.day} {_GREGORIAN_MONTHS_AR[day.month - 1]} {day.year} م"
        ),
        "en": f"{hijri.day} {hijri.month_name()} {hijri.year} AH ({day.day} {day:%B} {day.year})",
    }
    if isinstance(moment, datetime):
        result["at"] = moment.astimezone(UTC).isoformat()
    return result
