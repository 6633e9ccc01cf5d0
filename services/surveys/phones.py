"""The applicant's contact as a channel can use it.

Intake publishes numbers in E.164, but requests received before it did hold
them as typed ("050 123 4567", "٠٥٠١٢٣٤٥٦٧"), and an invitation is never sent
to a number that cannot be read: `normalise_phone` (the contract's reading,
shared/phones.py) gives E.164 or None.
"""

from __future__ import annotations

import re

from shared.phones import normalise_phone

__all__ = ["normalise_phone", "usable_email"]

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def usable_email(email: str | None) -> str | None:
    """The address without surrounding spaces, or None if it cannot be one."""
    if email is None:
        return None
    value = email.strip()
    return value if _EMAIL.fullmatch(value) else None
