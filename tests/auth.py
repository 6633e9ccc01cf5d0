"""A token issuer for the tests: its own key and JWKS file, the tokens each role needs.

The services trust it by configuration alone (`KHIDMA_AUTH_ISSUER` and
`KHIDMA_AUTH_JWKS_FILE`, set for the whole session in `tests/conftest.py`), as
they would trust Keycloak or the embedded identity service.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from uuid import uuid4

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from shared.roles import ROLES, channel_role

ASSOCIATIONS: tuple[str, ...] = ("sidr", "health-coop", "textile-coop", "dumat-bees", "elites")
AUDIENCE = "khidma"


class TestIssuer:
    """Signs ES256 access tokens shaped as the identity service's."""

    __test__ = False  # not a test class

    def __init__(self, issuer: str = "https://issuer.khidma.test", kid: str = "tests-1"):
        self.issuer = issuer
        self.kid = kid
        self.key = ec.generate_private_key(ec.SECP256R1())

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "ES256"}]}

    def write_jwks(self, path: Path) -> Path:
        path.write_text(json.dumps(self.jwks()), encoding="utf-8")
        return path

    def token(
        self,
        subject: str,
        roles: Mapping[str, Iterable[str]],
        *,
        name: str | None = None,
        kind: str = "human",
        lifetime: int = 3600,
        audience: str = AUDIENCE,
        not_before: int | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        body = {
            "iss": self.issuer,
            "aud": audience,
            "sub": subject,
            "iat": now,
            "nbf": now if not_before is None else not_before,
            "exp": now + lifetime,
            "jti": uuid4().hex,
            "name": name or subject,
            "preferred_username": subject,
            "khidma_kind": kind,
            "khidma_roles": {a: sorted(held) for a, held in roles.items()},
            **claims,
        }
        return jwt.encode(body, self.key, algorithm="ES256", headers={"kid": self.kid})


ISSUER = TestIssuer()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def as_role(
    role: str, association_id: str = "sidr", *, subject: str | None = None, name: str | None = None
) -> dict[str, str]:
    """The headers of a person holding one role in one association."""
    subject = subject or f"{role}-1"
    return bearer(ISSUER.token(subject, {association_id: [role]}, name=name))


def as_roles(
    roles: Mapping[str, Iterable[str]], *, subject: str, name: str | None = None
) -> dict[str, str]:
    return bearer(ISSUER.token(subject, roles, name=name))


def as_adapter(
    channels: Iterable[str],
    associations: Iterable[str] = ASSOCIATIONS,
    *,
    subject: str = "adapter-tests",
) -> dict[str, str]:
    """A channel adapter's (a machine client's) headers, for its channels."""
    roles = {a: [channel_role(c) for c in channels] for a in associations}
    return bearer(ISSUER.token(subject, roles, kind="machine"))


def as_seat(member: str, association_id: str = "sidr") -> dict[str, str]:
    """The committee member who holds this seat of the pack (the chair's seat: the chair)."""
    roles = ["committee_member"] + (["committee_chair"] if member == "chair" else [])
    return bearer(ISSUER.token(member, {association_id: roles}, name=f"Seat {member}"))


def as_caller_of(body: object, association_id: str = "sidr") -> dict[str, str]:
    """A committee member's own token when the body names the member (a vote, a
    recusal); anyone else's staff token: the body's name no longer counts, the token does."""
    if isinstance(body, dict) and isinstance(body.get("member"), str):
        return as_seat(body["member"], association_id)
    return as_staff()


def as_staff(subject: str = "staff-1", name: str = "Test Staff") -> dict[str, str]:
    """Every role in every seed association: for tests about something else than access."""
    return bearer(ISSUER.token(subject, {a: ROLES for a in ASSOCIATIONS}, name=name))


def auth_environment(jwks_file: Path) -> dict[str, str]:
    """What a service needs to trust the tests' issuer: as an extra issuer, so that a
    system with an issuer of its own (make run's identity service) trusts both."""
    trusted = [{"issuer": ISSUER.issuer, "audience": AUDIENCE, "jwks_file": str(jwks_file)}]
    return {"KHIDMA_AUTH_EXTRA_ISSUERS": json.dumps(trusted)}
