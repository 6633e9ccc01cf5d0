"""Phone numbers as the contract carries them: E.164.

`Applicant.phone` is published in E.164 (+9665XXXXXXXX for a Saudi mobile) by
intake, checked by verification and used by surveys to reach the applicant;
older events may hold a number as it was typed. One reading of a typed number
serves all three, so what intake records, what verification accepts and where
surveys sends an invitation can never disagree. Whether a number is acceptable
for a service is not decided here.
"""

from __future__ import annotations

import re

from shared.inputs import ascii_digits

_SEPARATORS = re.compile(r"[\s\-().]+")
_E164 = re.compile(r"\+[1-9][0-9]{7,14}")


def normalise_phone(phone: str | None) -> str | None:
    """The number in E.164, or None if none is given or it cannot be one.

    Saudi numbers may be given nationally (05XXXXXXXX, 5XXXXXXXX, 011XXXXXXX),
    with the country code (9665…, 009665…, +9665…); other countries need their
    code (+ or 00). Spaces, dashes, dots and brackets are ignored; Arabic-Indic
    digits are read as digits.
    """
    if phone is None:
        return None
    value = _SEPARATORS.sub("", ascii_digits(phone.strip()))
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
        national = national.removeprefix("0")  # +966 05… written with the trunk zero
        if len(national) != 9 or national[0] == "0":
            return None
        value = "+966" + national
    return value
