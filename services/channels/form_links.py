"""The web form's links the channels send: with the known fields sealed in.

The adapters' port (`conversation.FormLinks`) made real: the public address of a
service's form and, when the deployment has a form-link key, `?prefill=` with the
values sealed for that form alone (shared/form_link). Without a key the link is the
plain one, as before: the web app would ignore a prefill it cannot open anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from shared.clock import Clock, SystemClock
from shared.form_link import DEFAULT_DAYS, FormLinkKey, expiry


def form_address(public_base_url: str, association_id: str, service_code: str) -> str:
    """The plain address of a service's web form (the web app's public route)."""
    return (
        f"{public_base_url.rstrip('/')}/a/{quote(association_id, safe='')}"
        f"/{quote(service_code, safe='')}/apply"
    )


@dataclass(frozen=True)
class WebFormLinks:
    public_base_url: str
    key: FormLinkKey | None = None
    days: int = DEFAULT_DAYS
    clock: Clock = field(default_factory=SystemClock)

    def __call__(self, association_id: str, service_code: str, values: dict[str, Any]) -> str:
        address = form_address(self.public_base_url, association_id, service_code)
        if self.key is None or not values:
            return address
        token = self.key.seal(
            association_id, service_code, values, expiry(self.clock.now(), self.days)
        )
        return f"{address}?{urlencode({'prefill': token})}"
