"""The associations served and their own words (intake's public list), kept a minute."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from services.web.backends import Backends

KEEP_SECONDS = 60.0


@dataclass
class Associations:
    backends: Backends
    _found: list[dict[str, Any]] = field(default_factory=list)
    _at: float = 0.0

    async def all(self) -> list[dict[str, Any]]:
        if not self._found or time.monotonic() - self._at > KEEP_SECONDS:
            self._found = await self.backends.json("intake", "GET", "/associations")
            self._at = time.monotonic()
        return self._found

    async def get(self, association_id: str) -> dict[str, Any] | None:
        return next((a for a in await self.all() if a["association_id"] == association_id), None)

    def enabling(self, channel: str, ids: list[str]) -> list[dict[str, Any]]:
        """Those of these ids whose pack enables the channel, as last fetched (none
        before the list was first asked for: the menu, which cannot wait, reads this)."""
        wanted = set(ids)
        return [
            a
            for a in self._found
            if a["association_id"] in wanted and channel in a.get("channels", ())
        ]

    async def with_channel(self, channel: str, ids: list[str]) -> list[dict[str, Any]]:
        await self.all()
        return self.enabling(channel, ids)

    async def named(self, ids: list[str]) -> list[dict[str, Any]]:
        """The associations of these ids, in the list's order (unknown ones left out)."""
        wanted = set(ids)
        return [a for a in await self.all() if a["association_id"] in wanted]


def client_term(association: dict[str, Any] | None, lang: str, plural: bool = False) -> str:
    """The association's own word for the people it serves (member, beneficiary, user)."""
    if not association:
        return {"ar": "المستفيد", "en": "applicant"}[lang]
    term = association["clients"]["plural" if plural else "singular"]
    return str(term[lang])
