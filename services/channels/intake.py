"""The adapters' way into intake: a submission as the channel's machine client (or as
the caller who handed it over), and
"where is my request?" with the reference and the applicant's secret code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from shared.errors import Refused, refusal_in_answer
from shared.machine_token import MachineToken


class IntakeRefused(Refused):
    """What intake answered instead of taking the request: its status, code, words
    and, for a 422, the fields it names (`detail`)."""

    def __init__(self, status: int, code: str, en: str, ar: str, detail: Any = None):
        super().__init__(code, en, ar)
        self.status = status
        self.detail = detail


def _refusal(response: httpx.Response) -> IntakeRefused:
    """Intake's bilingual refusal."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    code, message, detail = refusal_in_answer(body)
    code = code or str(response.status_code)
    words = message or {
        "en": f"Intake refused ({response.status_code}).",
        "ar": "رفض الاستقبال الطلب.",
    }
    return IntakeRefused(
        response.status_code, code, words["en"] or code, words["ar"] or code, detail
    )


@dataclass
class IntakeGateway:
    intake_url: str
    tokens: dict[str, MachineToken]  # by channel
    client: httpx.AsyncClient

    def serves(self, channel: str) -> bool:
        """Whether this channel has a client: without one its adapter is switched off."""
        return channel in self.tokens

    async def submit(
        self, submission: dict[str, Any], *, token: str | None = None
    ) -> dict[str, Any]:
        """Intake's answer: `case_ref`, `case_id`, `status`, `duplicate`, and the secret
        code (`access_code`) when this submission opened the case.

        With `token` (a caller's own: the representative's, another system's) intake
        records that caller as the actor; without it, the channel's machine client."""
        token = token or await self.tokens[submission["channel"]].get()
        response = await self.client.post(
            f"{self.intake_url.rstrip('/')}/submissions",
            json=submission,
            headers={"Authorization": f"Bearer {token}"},
        )
        if not response.is_success:
            raise _refusal(response)
        answer: dict[str, Any] = response.json()
        return answer

    async def status(self, case_ref: str, code: str) -> dict[str, Any]:
        """The applicant's "where is my request?" (a wrong code reads as no such request)."""
        response = await self.client.get(
            f"{self.intake_url.rstrip('/')}/cases/{case_ref}/status",
            headers={"X-Case-Code": code},
        )
        if not response.is_success:
            raise _refusal(response)
        answer: dict[str, Any] = response.json()
        return answer
