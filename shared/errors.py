"""Refusals a person reads: every one has an English and an Arabic message."""

from __future__ import annotations


class Refused(Exception):
    """A command broke a rule. `code` is stable for programs; the texts are for people."""

    status = 409

    def __init__(self, code: str, en: str, ar: str):
        super().__init__(en)
        self.code = code
        self.en = en
        self.ar = ar

    def as_dict(self) -> dict[str, object]:
        return {"error": self.code, "message": {"en": self.en, "ar": self.ar}}


class NotFound(Refused):
    status = 404
