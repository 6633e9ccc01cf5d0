"""Refusals a person reads: every one has an English and an Arabic message.

A refusal says what kind it is (a broken rule, something not found, input
that cannot be taken, something no longer open); the HTTP edge
(`shared/http.py`) gives each kind its status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class Refused(Exception):
    """A command broke a rule. `code` is stable for programs; the texts are for people."""

    def __init__(self, code: str, en: str, ar: str):
        super().__init__(en)
        self.code = code
        self.en = en
        self.ar = ar

    def as_dict(self) -> dict[str, object]:
        return {"error": self.code, "message": {"en": self.en, "ar": self.ar}}


class NotFound(Refused):
    """What was asked for does not exist (or is not the caller's to see)."""


class Invalid(Refused):
    """The input itself cannot be taken, whatever the state of the records."""


class Gone(Refused):
    """It existed, and is no longer open to this command."""


def association_not_served(association_id: str) -> NotFound:
    """No policy pack of this deployment is the association's."""
    return NotFound(
        "association_not_found",
        f"No association '{association_id}' is served here.",
        f"لا توجد جمعية '{association_id}' مخدومة هنا.",
    )


def refusal_in_answer(body: Any) -> tuple[str | None, dict[str, str] | None, Any]:
    """What another service's refusal says, from its JSON body: the stable code, the
    bilingual message (None when it gave none) and the detail (the fields a 422 names).

    The shape is this project's (`error`, `message`, `detail`); the identity service's
    OAuth refusals name Khidma's code in `reason`, and an HTTPException may hold the
    message in its `detail`.
    """
    if not isinstance(body, Mapping):
        return None, None, None
    if isinstance(body.get("detail"), Mapping):
        body = {**body["detail"], **body}
    message = body.get("message")
    words = (
        {"en": str(message.get("en", "")), "ar": str(message.get("ar", ""))}
        if isinstance(message, Mapping)
        else None
    )
    code = body.get("reason") or body.get("error")
    return (str(code) if code else None), words, body.get("detail")
