"""The simulated staff sign in as the roles they play.

`IdentityStaff` gives each role a person of its own in the identity service's
store (as an operator would with `python -m services.identity add-user`): a
front-desk officer, a verifier, a researcher, an administrator (the member
registry), a surveys officer, an auditor, a data protection officer, and one user per committee seat of the packs
(named by the seat's id, so that a vote is the seat's). Each then signs in
over HTTP at the token endpoint, with the password grant, and sends its token.
`StaticStaff` hands out tokens some other issuer made (the tests' own).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx

from services.identity.application import IdentityApplication
from services.identity.main import IdentitySettings, open_identity
from shared.errors import NotFound
from shared.policy import PolicyPack
from shared.roles import (
    ADMIN,
    AUDITOR,
    COMMITTEE_CHAIR,
    COMMITTEE_MEMBER,
    FRONT_DESK,
    PRIVACY_OFFICER,
    RESEARCHER,
    SURVEYS_OFFICER,
    VERIFIER,
)

# The simulated people of every association, by the role they play.
STAFF: dict[str, str] = {
    FRONT_DESK: "sim-front-desk",
    VERIFIER: "sim-verifier",
    RESEARCHER: "sim-researcher",
    ADMIN: "sim-admin",
    SURVEYS_OFFICER: "sim-surveys",
    AUDITOR: "sim-auditor",
    PRIVACY_OFFICER: "sim-privacy",
}
# Tokens are asked for again this long before they expire.
RENEW_SECONDS = 60.0


class Staff(Protocol):
    async def headers(self, role: str, *, seat: str | None = None) -> dict[str, str]:
        """The request headers of the person playing the role (a committee seat's
        member when `seat` is given)."""


def staff_roles(packs: Mapping[str, PolicyPack]) -> dict[str, dict[str, list[str]]]:
    """Username -> {association: [roles]}: the staff, and every committee seat."""
    people: dict[str, dict[str, list[str]]] = {
        username: {a: [role] for a in packs} for role, username in STAFF.items()
    }
    for association_id, pack in packs.items():
        for seat in pack.committee.members:
            held = [COMMITTEE_MEMBER] + ([COMMITTEE_CHAIR] if seat.role == "chair" else [])
            people.setdefault(seat.id, {})[association_id] = held
    return people


def prepare_staff(app: IdentityApplication, by: str = "simulator") -> dict[str, str]:
    """Registers (or re-keys) every simulated person; returns their passwords, which
    live only in this process."""
    passwords: dict[str, str] = {}
    for username, roles in staff_roles(app.packs).items():
        password = "sim-" + secrets.token_urlsafe(18)
        try:
            app.user(username)
        except NotFound:
            app.register_user(
                username, f"Simulated {username}", by=by, password=password, roles=roles
            )
        else:
            one_time = app.reset_password(username, by=by)
            app.set_own_password(username, one_time, password)
            held = app.user(username).get("roles", {})
            for association_id, wanted in roles.items():
                for role in wanted:
                    if role not in held.get(association_id, []):
                        app.grant(username, role, association_id, by=by)
        passwords[username] = password
    return passwords


@dataclass
class IdentityStaff:
    """Signs each simulated person in at the identity service's token endpoint."""

    token_url: str
    passwords: Mapping[str, str]
    client: httpx.AsyncClient
    _tokens: dict[str, tuple[str, float]] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    async def headers(self, role: str, *, seat: str | None = None) -> dict[str, str]:
        username = seat or STAFF[role]
        lock = self._locks.setdefault(username, asyncio.Lock())
        async with lock:
            token, expires = self._tokens.get(username, ("", 0.0))
            if time.monotonic() > expires - RENEW_SECONDS:
                token, expires = await self._sign_in(username)
                self._tokens[username] = (token, expires)
        return {"Authorization": f"Bearer {token}"}

    async def _sign_in(self, username: str) -> tuple[str, float]:
        response = await self.client.post(
            self.token_url,
            data={
                "grant_type": "password",
                "username": username,
                "password": self.passwords[username],
            },
        )
        if response.status_code != 200:
            raise RuntimeError(f"{username} could not sign in: {response.text[:300]}")
        answer = response.json()
        return answer["access_token"], time.monotonic() + float(answer["expires_in"])


def embedded_staff(data_dir: Path, identity_url: str, client: httpx.AsyncClient) -> IdentityStaff:
    """The simulated staff of a system whose identity store is in `data_dir` (make run's,
    the benchmark's, the end-to-end tests'), signing in at `identity_url`."""
    settings = IdentitySettings(data_dir=data_dir, issuer=identity_url, nats_url="")
    app = open_identity(settings)
    try:
        passwords = prepare_staff(app)
    finally:
        app.close()
    return IdentityStaff(f"{identity_url}/oauth/token", passwords, client)


@dataclass
class StaticStaff:
    """Tokens made elsewhere, e.g. by the tests' own issuer: `token(username, roles)`."""

    token: Callable[[str, dict[str, list[str]]], str]
    packs: Mapping[str, PolicyPack]

    async def headers(self, role: str, *, seat: str | None = None) -> dict[str, str]:
        username = seat or STAFF[role]
        roles = staff_roles(self.packs)[username]
        return {"Authorization": f"Bearer {self.token(username, roles)}"}
