"""shared.auth: a bearer token is accepted only from a trusted issuer, signed by a key of
its JWKS, for this audience, in its validity window; a route answers 401 without one and
403 without the role in the association, in both languages."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from uuid import uuid4

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import Depends, FastAPI
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from shared.auth import (
    AuthSettings,
    IssuerSettings,
    KeyCache,
    Principal,
    StaticJwks,
    Unauthenticated,
    Verifier,
    install,
    read_roles,
    require,
)
from shared.http import answer_refusals

pytestmark = pytest.mark.unit

AUDIENCE = "khidma"


class Issuer:
    """A stand-in identity provider: its keys, its JWKS, its tokens."""

    def __init__(self, url: str, algorithm: str = "ES256", roles_claim: str = "khidma_roles"):
        self.url = url
        self.roles_claim = roles_claim
        self.keys: dict[str, tuple[str, Any]] = {}
        self.kid = self.add_key(algorithm)

    def add_key(self, algorithm: str) -> str:
        kid = uuid4().hex[:12]
        key: Any = (
            ec.generate_private_key(ec.SECP256R1())
            if algorithm == "ES256"
            else rsa.generate_private_key(public_exponent=65537, key_size=2048)
        )
        self.keys[kid] = (algorithm, key)
        self.kid = kid
        return kid

    def jwks(self, *, without: str | None = None) -> dict[str, Any]:
        keys = []
        for kid, (algorithm, key) in self.keys.items():
            if kid == without:
                continue
            to_jwk = ECAlgorithm.to_jwk if algorithm == "ES256" else RSAAlgorithm.to_jwk
            jwk: dict[str, Any] = to_jwk(key.public_key(), as_dict=True)
            jwk.update(kid=kid, alg=algorithm, use="sig")
            keys.append(jwk)
        return {"keys": keys}

    def settings(self, **overrides: Any) -> IssuerSettings:
        return IssuerSettings(
            issuer=self.url,
            audience=AUDIENCE,
            jwks=self.jwks(),
            roles_claim=self.roles_claim,
            **overrides,
        )

    def token(
        self,
        roles: Any = None,
        *,
        kid: str | None = None,
        issued: float | None = None,
        lifetime: int = 600,
        not_before: float | None = None,
        **claims: Any,
    ) -> str:
        kid = kid or self.kid
        algorithm, key = self.keys[kid]
        now = time.time() if issued is None else issued
        body = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "user-1",
            "name": "Huda Al-Harbi",
            "iat": int(now),
            "nbf": int(now if not_before is None else not_before),
            "exp": int(now + lifetime),
            "jti": uuid4().hex,
            self.roles_claim: roles if roles is not None else {"sidr": ["verifier"]},
            **claims,
        }
        return jwt.encode(body, key, algorithm=algorithm, headers={"kid": kid})


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer("https://id.khidma.test")


@pytest.fixture(scope="module")
def stranger() -> Issuer:
    return Issuer("https://elsewhere.test")


def app_with(verifier: Verifier) -> FastAPI:
    api = FastAPI()
    install(api, verifier)
    answer_refusals(api)

    @api.get("/associations/{association_id}/verifications")
    async def queue(
        association_id: str,
        principal: Annotated[Principal, Depends(require("verifier"))],
    ) -> dict[str, Any]:
        return {"subject": principal.subject, "name": principal.name, "kind": principal.kind}

    @api.get("/health")
    async def health() -> dict[str, bool]:
        return {"alive": True}

    return api


async def call(api: FastAPI, path: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api), base_url="http://test"
    ) as client:
        return await client.get(path, headers=headers)


def matrix(issuer: Issuer, stranger: Issuer) -> list[tuple[str, str | None, str, int, str | None]]:
    """(row, token, association, status, error code)."""
    forged = jwt.encode(
        jwt.decode(issuer.token(), options={"verify_signature": False}),
        ec.generate_private_key(ec.SECP256R1()),
        algorithm="ES256",
        headers={"kid": issuer.kid},
    )
    return [
        ("no token", None, "sidr", 401, "token_missing"),
        (
            "expired",
            issuer.token(issued=time.time() - 3600, lifetime=600),
            "sidr",
            401,
            "token_expired",
        ),
        (
            "not yet valid",
            issuer.token(not_before=time.time() + 3600, lifetime=7200),
            "sidr",
            401,
            "token_not_yet_valid",
        ),
        ("bad signature", forged, "sidr", 401, "token_bad_signature"),
        ("not a JWT", "not.a.jwt", "sidr", 401, "token_invalid"),
        ("wrong issuer", stranger.token(), "sidr", 401, "token_wrong_issuer"),
        ("wrong audience", issuer.token(aud="another-system"), "sidr", 401, "token_wrong_audience"),
        ("wrong role", issuer.token({"sidr": ["auditor"]}), "sidr", 403, "forbidden"),
        (
            "another association's role",
            issuer.token({"health-coop": ["verifier"]}),
            "sidr",
            403,
            "forbidden",
        ),
        ("the right role", issuer.token({"sidr": ["verifier"]}), "sidr", 200, None),
    ]


async def test_the_verifier_matrix(issuer: Issuer, stranger: Issuer) -> None:
    api = app_with(Verifier([issuer.settings()], leeway_seconds=0))
    for row, token, association, status, code in matrix(issuer, stranger):
        response = await call(api, f"/associations/{association}/verifications", token)
        assert response.status_code == status, (row, response.text)
        if code is None:
            assert response.json() == {
                "subject": "user-1",
                "name": "Huda Al-Harbi",
                "kind": "human",
            }
            continue
        body = response.json()
        assert body["error"] == code, row
        assert body["message"]["en"] and body["message"]["ar"], row
        challenge = response.headers.get("www-authenticate", "")
        assert challenge.startswith("Bearer"), row
        if status == 401 and code != "token_missing":
            assert 'error="invalid_token"' in challenge, row


async def test_open_routes_need_no_token(issuer: Issuer) -> None:
    api = app_with(Verifier([issuer.settings()]))
    assert (await call(api, "/health", None)).status_code == 200


async def test_a_token_signed_with_none_or_a_shared_secret_is_refused(issuer: Issuer) -> None:
    verifier = Verifier([issuer.settings()])
    claims = jwt.decode(issuer.token(), options={"verify_signature": False})
    unsigned = jwt.encode(claims, None, algorithm="none")
    hs256 = jwt.encode(claims, "a shared secret of enough length", algorithm="HS256")
    for token in (unsigned, hs256):
        with pytest.raises(Unauthenticated) as refused:
            await verifier.verify(token)
        assert refused.value.code == "token_invalid"


def test_the_openapi_document_shows_the_bearer_scheme(issuer: Issuer) -> None:
    document = app_with(Verifier([issuer.settings()])).openapi()
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": document["components"]["securitySchemes"]["bearer"]["description"],
    }
    route = document["paths"]["/associations/{association_id}/verifications"]["get"]
    assert route["security"] == [{"bearer": []}]
    assert "security" not in document["paths"]["/health"]["get"]


async def test_a_principal_says_who_in_which_associations(issuer: Issuer) -> None:
    verifier = Verifier([issuer.settings()])
    principal = await verifier.verify(
        issuer.token(
            {"sidr": ["channel:website", "channel:phone"]},
            sub="client-9",
            name="Website adapter",
            khidma_kind="machine",
        )
    )
    assert principal.kind == "machine"
    assert principal.channels("sidr") == {"website", "phone"}
    assert principal.associations_with("channel:website") == ["sidr"]
    assert principal.issuer == issuer.url and principal.token_id


async def test_key_rotation_old_tokens_verify_until_the_key_is_retired() -> None:
    issuer = Issuer("https://rotating.test")
    published = {"document": issuer.jwks()}

    class Live:
        async def fetch(self) -> Mapping[str, Any]:
            return published["document"]

    verifier = Verifier(
        [issuer.settings()], jwks_min_refetch_seconds=0, sources={issuer.url: Live()}
    )
    old_kid = issuer.kid
    old_token = issuer.token()
    assert (await verifier.verify(old_token)).subject == "user-1"
    issuer.add_key("RS256")  # rotation: the new key signs, the old one is still published
    published["document"] = issuer.jwks()
    new_token = issuer.token()
    assert jwt.get_unverified_header(new_token)["kid"] != old_kid
    assert (await verifier.verify(new_token)).subject == "user-1"  # unknown kid: fetched again
    assert (await verifier.verify(old_token)).subject == "user-1"
    published["document"] = issuer.jwks(without=old_kid)  # the old key retired
    verifier.caches[issuer.url]._fetched_at = None  # its cache lifetime over
    with pytest.raises(Unauthenticated) as refused:
        await verifier.verify(old_token)
    assert refused.value.code == "token_unknown_key"
    assert (await verifier.verify(new_token)).subject == "user-1"


async def test_the_jwks_is_cached_and_unknown_key_ids_do_not_hammer_the_issuer(
    issuer: Issuer,
) -> None:
    now = {"t": 0.0}
    cache = KeyCache(
        issuer.url, StaticJwks(issuer.jwks()), ttl=300, min_refetch=10, monotonic=lambda: now["t"]
    )
    assert await cache.key(issuer.kid) is not None
    for _ in range(20):
        assert await cache.key("made-up") is None
    assert cache.fetches == 1
    now["t"] = 11.0
    await cache.key("made-up")
    assert cache.fetches == 2
    now["t"] = 400.0
    await cache.key(issuer.kid)
    assert cache.fetches == 3


async def test_a_second_issuer_is_accepted_by_configuration_alone(
    issuer: Issuer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An external OIDC provider (as Keycloak would be): its own keys, its own
    # URL, its roles as a flat list of group paths in a `groups` claim.
    keycloak = Issuer(
        "https://keycloak.test/realms/khidma", algorithm="RS256", roles_claim="groups"
    )
    embedded_jwks = tmp_path / "embedded-jwks.json"
    embedded_jwks.write_text(json.dumps(issuer.jwks()))
    keycloak_jwks = tmp_path / "keycloak-jwks.json"
    keycloak_jwks.write_text(json.dumps(keycloak.jwks()))
    monkeypatch.setenv("KHIDMA_AUTH_ISSUER", issuer.url)
    monkeypatch.setenv("KHIDMA_AUTH_JWKS_FILE", str(embedded_jwks))
    monkeypatch.setenv(
        "KHIDMA_AUTH_EXTRA_ISSUERS",
        json.dumps(
            [
                {
                    "issuer": keycloak.url,
                    "audience": AUDIENCE,
                    "jwks_file": str(keycloak_jwks),
                    "roles_claim": "groups",
                    "name_claim": "name",
                }
            ]
        ),
    )
    api = app_with(Verifier.from_settings(AuthSettings()))
    external = keycloak.token(
        ["/sidr/verifier", "/health-coop/auditor"], sub="kc-42", name="Kc User"
    )
    response = await call(api, "/associations/sidr/verifications", external)
    assert response.status_code == 200, response.text
    assert response.json()["subject"] == "kc-42"
    embedded = issuer.token()
    assert (await call(api, "/associations/sidr/verifications", embedded)).status_code == 200
    # Keycloak's issuer with the embedded issuer's key: not its key, refused.
    _, key = issuer.keys[issuer.kid]
    claims = jwt.decode(external, options={"verify_signature": False})
    mixed = jwt.encode(claims, key, algorithm="ES256", headers={"kid": issuer.kid})
    assert (await call(api, "/associations/sidr/verifications", mixed)).status_code == 401


def test_settings_without_a_trusted_issuer_fail_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KHIDMA_AUTH_ISSUER", raising=False)
    monkeypatch.delenv("KHIDMA_AUTH_EXTRA_ISSUERS", raising=False)
    monkeypatch.delenv("KHIDMA_AUTH_JWKS_FILE", raising=False)  # the test session's own issuer
    monkeypatch.delenv("KHIDMA_AUTH_JWKS_URL", raising=False)
    with pytest.raises(ValueError, match="no trusted issuer"):
        AuthSettings()
    with pytest.raises(ValueError, match="JWKS"):
        AuthSettings(issuer="https://id.test")


def test_the_roles_claim_reads_both_shapes() -> None:
    assert read_roles({"sidr": ["verifier", 3], "x": "bad"}) == {"sidr": frozenset({"verifier"})}
    assert read_roles(["/sidr/verifier", "sidr/auditor", "/nogroup", 7]) == {
        "sidr": frozenset({"verifier", "auditor"})
    }
    assert read_roles(None) == {}


async def test_an_unreachable_jwks_is_a_503_not_a_crash() -> None:
    class Down:
        async def fetch(self) -> Mapping[str, Any]:
            raise httpx.ConnectError("down")

    issuer = Issuer("https://down.test")
    api = app_with(Verifier([issuer.settings()], sources={issuer.url: Down()}))
    response = await call(api, "/associations/sidr/verifications", issuer.token())
    assert response.status_code == 503
    assert response.json()["error"] == "identity_provider_unavailable"


def test_concurrent_verifications_fetch_the_jwks_once(issuer: Issuer) -> None:
    fetched = []

    class Counting:
        async def fetch(self) -> Mapping[str, Any]:
            fetched.append(1)
            await asyncio.sleep(0.01)
            return issuer.jwks()

    verifier = Verifier([issuer.settings()], sources={issuer.url: Counting()})

    async def many() -> None:
        await asyncio.gather(*(verifier.verify(issuer.token()) for _ in range(10)))

    asyncio.run(many())
    assert len(fetched) == 1
