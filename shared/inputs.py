"""Input a person or a channel adapter sends, read the same way at every edge.

People type Arabic-Indic (٠١٢…) or Persian (۰۱۲…) digits as often as ASCII ones; a
number that is NaN or infinite compares false with every bound, so it would pass any
eligibility rule; a lone surrogate cannot be written as UTF-8, so it breaks every
store, log and answer it reaches. This module says once what such input means; it
imports nothing of the project, so domain code may use it.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal, NamedTuple

_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "0123456789" * 2)
# The Arabic decimal separator (٣٫٥), read as a point where a number is expected.
_ARABIC_DECIMAL_SEPARATOR = "٫"
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_SURROGATE = re.compile("[\ud800-\udfff]")

# How deeply a submitted value may nest: far more than any form needs, far less than
# what exhausts a parser's recursion.
MAX_DEPTH = 32


def ascii_digits(text: str) -> str:
    """The text with Arabic-Indic and Persian digits as ASCII digits, the rest as it is."""
    return text.translate(_DIGITS)


def finite_number(value: Any) -> float | None:
    """The value as a finite number (a number, or text that reads as one), else None.

    NaN and the infinities are not numbers here, nor is a boolean; text may use
    Arabic-Indic digits and the Arabic decimal separator.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # an integer too large for a float
            return None
    elif isinstance(value, str):
        text = ascii_digits(value).strip().replace(_ARABIC_DECIMAL_SEPARATOR, ".")
        if not _NUMBER.fullmatch(text):
            return None
        number = float(text)
    else:
        return None
    return number if math.isfinite(number) else None


def is_integer(value: Any) -> bool:
    """Whether the value is a whole number: an integer, or text of digits alone."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and _INTEGER.fullmatch(ascii_digits(value).strip()) is not None


def typed_value(text: str, kind: str) -> Any:
    """Text a person typed, as the pack's kind of field when it reads as one (an
    integer, a finite number, true/false); as typed otherwise, for intake to say
    what is wrong with it."""
    plain = ascii_digits(text)
    if kind == "integer":
        try:
            return int(plain) if is_integer(plain) else text
        except ValueError:  # more digits than Python reads as one integer
            return text
    if kind == "number":
        number = finite_number(plain)
        return text if number is None else number
    if kind == "boolean":
        return {"true": True, "false": False}.get(plain, text)
    return text


def has_lone_surrogate(text: str) -> bool:
    return _SURROGATE.search(text) is not None


class Unreadable(NamedTuple):
    """What in a submitted value cannot be taken, and where (dotted keys and indexes)."""

    code: Literal["too_deep", "not_finite", "lone_surrogate"]
    where: str


def plain_data_problem(value: Any) -> Unreadable | None:
    """The first part of a submitted value (parsed JSON) that cannot be taken, or None.

    It must nest at most MAX_DEPTH deep, hold only finite numbers, and no text (key
    or value) with a lone surrogate. Walked without recursion, so no depth of input
    can exhaust the stack.
    """
    pending: list[tuple[Any, tuple[str, ...]]] = [(value, ())]
    while pending:
        item, path = pending.pop()
        code = _problem_of(item, len(path))
        if code is not None:
            return Unreadable(code, printable(".".join(path)))
        if isinstance(item, dict):
            for key, child in item.items():
                pending.append((key, (*path, "(key)")))
                pending.append((child, (*path, str(key))))
        elif isinstance(item, list | tuple):
            pending.extend((child, (*path, str(index))) for index, child in enumerate(item))
    return None


def _problem_of(
    item: Any, depth: int
) -> Literal["too_deep", "not_finite", "lone_surrogate"] | None:
    if depth > MAX_DEPTH:
        return "too_deep"
    if isinstance(item, str) and has_lone_surrogate(item):
        return "lone_surrogate"
    if isinstance(item, float) and not math.isfinite(item):
        return "not_finite"
    return None


def printable(value: Any, depth: int = 0) -> Any:
    """The value as JSON can always write it: every text writable as UTF-8 (a lone
    surrogate shown as its escape), NaN and infinity as text, cut at MAX_DEPTH, so a
    refusal that repeats what was sent can always be answered."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        if has_lone_surrogate(value):
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict | list | tuple) and depth >= MAX_DEPTH:
        return "…"
    if isinstance(value, dict):
        return {printable(key): printable(child, depth + 1) for key, child in value.items()}
    if isinstance(value, list | tuple):
        return [printable(child, depth + 1) for child in value]
    return value
