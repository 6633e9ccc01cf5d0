"""The applicant's phone number as a channel can use it: E.164, or None.

Intake publishes numbers in E.164 from now on, but requests received before
that hold them as typed ("050 123 4567", "٠٥٠١٢٣٤٥٦٧"), and an invitation is
never sent to a number that cannot be read. The same reading as verification's
(services do not import each other): a Saudi number written nationally or
with its country code becomes +966…, a mobile +9665XXXXXXXX; a number of
another country needs its code (+ or 00).
"""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s\-().]+")
_ARABIC_INDIC = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")
_E164 = re.compile(r"\+[1-9][0-9]{7,14}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def normalise_phone(phone: str | None) -> str | None:
    """The number in E.164, or None if there is none or it cannot be one."""
    if phone is None:
        return None
    value = _SEPARATORS.sub("", phone.strip().translate(_ARABIC_INDIC))
    if not value:
        return None
    if value.startswith("00"):
        value = "+" + value[2:]
    if not value.startswith("+"):
        if not value.isdigit():
            return None
        if len(value) == 9 and value.startswith("5"):  # 5XXXXXXXX
            value = "+966" + value
        elif len(value) == 10 and value.startswith("0"):  # 05XXXXXXXX, 011XXXXXXX
            value = "+966" + value[1:]
        elif len(value) == 12 and value.startswith("966"):  # 9665XXXXXXXX
            value = "+" + value
        else:
            return None
    if not _E164.fullmatch(value):
        return None
    if value.startswith("+966"):
        national = value[4:]
        if national.startswith("0"):
            national = national[1:]  # +966 05… written with the trunk zero
        if len(national) != 9 or national[0] == "0":
            return None
        value = "+966" + national
    return value


def usable_email(email: str | None) -> str | None:
    """The address without surrounding spaces, or None if it cannot be one."""
    if email is None:
        return None
    value = email.strip()
    return value if _EMAIL.fullmatch(value) else None
