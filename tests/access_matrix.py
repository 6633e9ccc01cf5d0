"""The access matrix: every route of a service, called as every kind of caller.

Each service's test declares its routes (`Route`: method, a concrete path, the
roles that may call it, a body) and runs `check_matrix`. The rows are the
issue's: no token, expired, bad signature, wrong audience, wrong role, another
association's role, the right role. Every row but the last is refused with
401 or 403 in the bilingual error shape; the right role gets past the door
(whatever the route then answers for that body: 200, 404, 409, 422 …).
`assert_every_route_declared` fails when a service grows a route its test does
not list, so no route is left without a declared role.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from fastapi.routing import APIRoute

from shared.roles import ROLES
from tests.auth import ISSUER, bearer

# Open to anyone: operations, and the documents.
OPEN_PATHS = frozenset(
    {
        "/health",
        "/ready",
        "/metrics",
        "/asyncapi.json",
        "/asyncapi",
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
    }
)
ROWS = (
    "no token",
    "expired",
    "bad signature",
    "wrong audience",
    "wrong role",
    "another association's role",
    "right role",
)
REFUSED = {
    "no token": 401,
    "expired": 401,
    "bad signature": 401,
    "wrong audience": 401,
    "wrong role": 403,
    "another association's role": 403,
}


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # concrete: its parameters filled in
    template: str  # as the app declares it, e.g. "/cases/{case_key}"
    roles: tuple[str, ...]  # () for a public route
    association_id: str = "sidr"
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    kind: str = "human"  # "machine" for an adapter's route
    # A list of every association's records: another association's role gets 200 and
    # none of this association's records, rather than a 403.
    lists: bool = False
    # Who calls (by default `matrix-<role>`): a route that acts in the caller's
    # own name (a committee seat's vote) names a subject the record expects.
    subject: str | None = None


def _forged(token: str) -> str:
    """The same claims, signed by a key the issuer never published."""
    claims = jwt.decode(token, options={"verify_signature": False})
    stranger = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(claims, stranger, algorithm="ES256", headers={"kid": ISSUER.kid})


def row_headers(route: Route, row: str) -> dict[str, str]:
    other = "health-coop" if route.association_id != "health-coop" else "sidr"
    wrong = [r for r in ROLES if r not in route.roles]
    roles = {route.association_id: list(route.roles)}
    subject = route.subject or f"matrix-{route.roles[0] if route.roles else 'public'}"
    if row == "no token":
        return {}
    if row == "expired":
        return bearer(ISSUER.token(subject, roles, lifetime=-120, kind=route.kind))
    if row == "bad signature":
        return bearer(_forged(ISSUER.token(subject, roles, kind=route.kind)))
    if row == "wrong audience":
        return bearer(ISSUER.token(subject, roles, audience="another-system", kind=route.kind))
    if row == "wrong role":
        return bearer(ISSUER.token(subject, {route.association_id: wrong}, kind=route.kind))
    if row == "another association's role":
        return bearer(ISSUER.token(subject, {other: list(route.roles)}, kind=route.kind))
    return bearer(ISSUER.token(subject, roles, kind=route.kind))


async def call(client: httpx.AsyncClient, route: Route, headers: dict[str, str]) -> httpx.Response:
    return await client.request(
        route.method, route.path, json=route.json, params=route.params, headers=headers
    )


async def check_matrix(client: httpx.AsyncClient, routes: Iterable[Route]) -> list[str]:
    """Every row of every route; returns the problems found (empty when all hold)."""
    problems: list[str] = []
    for route in routes:
        for row in ROWS if route.roles else ("no token",):
            response = await call(client, route, row_headers(route, row))
            where = f"{route.method} {route.path} [{row}]"
            if not route.roles or row == "right role":
                if response.status_code in (401, 403):
                    problems.append(f"{where}: refused {response.status_code} {response.text}")
                continue
            if route.lists and row == "another association's role":
                shown = response.json() if response.status_code == 200 else None
                if not isinstance(shown, list) or any(
                    item.get("association_id") == route.association_id for item in shown
                ):
                    problems.append(f"{where}: {response.status_code}, shows {shown!r:.200}")
                continue
            expected = REFUSED[row]
            if response.status_code != expected:
                problems.append(f"{where}: {response.status_code}, expected {expected}")
                continue
            body = response.json()
            if not (body.get("error") and body.get("message", {}).get("ar")):
                problems.append(f"{where}: not the bilingual error shape: {body}")
    return problems


def assert_every_route_declared(api: FastAPI, routes: Sequence[Route]) -> None:
    declared = {(r.method, r.template) for r in routes}
    served = {
        (method, route.path)
        for route in api.routes
        if isinstance(route, APIRoute) and route.path not in OPEN_PATHS
        for method in route.methods
        if method not in ("HEAD", "OPTIONS")
    }
    missing = sorted(served - declared)
    assert not missing, f"routes with no declared role in the access matrix: {missing}"
