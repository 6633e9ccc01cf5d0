"""The identity service over HTTP, in process, on a real SQLite store: the OAuth2 token
endpoint (password and client credentials, RFC 6749 errors), the JWKS and the metadata,
key rotation, the administrators' routes, and role history by replay."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

from services.identity.application import IdentityApplication
from services.identity.main import IdentitySettings, build, open_identity
from shared.auth import FunctionJwks, IssuerSettings, Unauthenticated, Verifier
from shared.clock import FrozenClock
from shared.runtime import ServiceRuntime

pytestmark = pytest.mark.integration

ISSUER = "http://identity.test"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "the administrator's own passphrase"


@dataclass
class Identity:
    api: FastAPI
    client: httpx.AsyncClient
    clock: FrozenClock
    settings: IdentitySettings

    @property
    def app(self) -> IdentityApplication:
        runtime: ServiceRuntime[IdentityApplication] = self.api.state.runtime
        return runtime.app

    async def jwks(self) -> Mapping[str, Any]:
        document: Mapping[str, Any] = (await self.client.get("/.well-known/jwks.json")).json()
        return document

    def verifier(self) -> Verifier:
        """A verifier as another service would configure it, the JWKS fetched over HTTP."""
        return Verifier(
            [IssuerSettings(issuer=ISSUER, audience="khidma", jwks={"keys": []})],
            jwks_min_refetch_seconds=0,
            sources={ISSUER: FunctionJwks(self.jwks)},
        )

    async def password_token(self, username: str, password: str) -> httpx.Response:
        return await self.client.post(
            "/oauth/token",
            data={"grant_type": "password", "username": username, "password": password},
        )

    async def sign_in(self, username: str, password: str) -> str:
        response = await self.password_token(username, password)
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    async def admin_token(self) -> str:
        created = self.app.create_admin("admin", "Administrator", by="test")
        changed = await self.client.post(
            "/account/password",
            json={
                "username": "admin",
                "current_password": created["one_time_password"],
                "new_password": ADMIN_PASSWORD,
            },
        )
        assert changed.status_code == 204, changed.text
        return await self.sign_in("admin", ADMIN_PASSWORD)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def identity(tmp_path: Path) -> AsyncIterator[Identity]:
    settings = IdentitySettings(data_dir=tmp_path / "data", issuer=ISSUER)
    clock = FrozenClock(datetime.now(UTC))
    api = build(settings, clock=clock)
    async with (
        api.router.lifespan_context(api),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url=ISSUER) as client,
    ):
        yield Identity(api, client, clock, settings)


async def test_the_issuer_publishes_its_metadata_and_keys(identity: Identity) -> None:
    metadata = (await identity.client.get("/.well-known/openid-configuration")).json()
    assert metadata["issuer"] == ISSUER
    assert metadata["token_endpoint"] == f"{ISSUER}/oauth/token"
    assert metadata["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    assert set(metadata["grant_types_supported"]) == {"password", "client_credentials"}
    (key,) = (await identity.jwks())["keys"]
    assert key["kty"] == "EC" and key["alg"] == "ES256" and key["use"] == "sig" and key["kid"]
    assert "d" not in key
    ready = await identity.client.get("/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True


async def test_the_password_grant_gives_a_signed_token_with_the_roles(identity: Identity) -> None:
    identity.app.register_user(
        "huda",
        "هدى الحربي",
        by="test",
        password="a long enough passphrase",
        roles={"sidr": ["verifier", "front_desk"], "health-coop": ["auditor"]},
    )
    response = await identity.password_token("huda", "a long enough passphrase")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    token = body["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256"
    assert header["kid"] == (await identity.jwks())["keys"][0]["kid"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert {"iss", "aud", "sub", "exp", "nbf", "iat", "jti", "name"} <= set(claims)
    assert claims["khidma_roles"] == {
        "health-coop": ["auditor"],
        "sidr": ["front_desk", "verifier"],
    }
    assert claims["name"] == "هدى الحربي" and claims["khidma_kind"] == "human"
    principal = await identity.verifier().verify(token)
    assert principal.holds("verifier", "sidr") and not principal.holds("verifier", "health-coop")


async def test_token_errors_follow_rfc_6749_with_a_bilingual_message(identity: Identity) -> None:
    identity.app.register_user("huda", "Huda", by="test", password="a long enough passphrase")
    cases = [
        ({"grant_type": "password", "username": "huda", "password": "wrong"}, 400, "invalid_grant"),
        ({"grant_type": "password", "username": "nobody", "password": "x"}, 400, "invalid_grant"),
        ({"grant_type": "password", "username": "huda"}, 400, "invalid_request"),
        ({"grant_type": "authorization_code", "code": "x"}, 400, "unsupported_grant_type"),
        ({}, 400, "invalid_request"),
        (
            {"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"},
            401,
            "invalid_client",
        ),
    ]
    for form, status, error in cases:
        response = await identity.client.post("/oauth/token", data=form)
        assert response.status_code == status, (form, response.text)
        body = response.json()
        assert body["error"] == error, form
        assert body["error_description"] == body["message"]["en"]
        assert body["message"]["ar"]
        assert response.headers["cache-control"] == "no-store"
    refused = await identity.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"},
    )
    assert refused.headers["www-authenticate"].startswith("Basic")
    as_json = await identity.client.post(
        "/oauth/token", json={"grant_type": "password", "username": "huda", "password": "x"}
    )
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"


async def test_the_client_credentials_grant_for_an_adapter(identity: Identity) -> None:
    admin = await identity.admin_token()
    registered = await identity.client.post(
        "/clients",
        json={
            "client_id": "website-adapter",
            "name": "Website adapter",
            "associations": ["sidr"],
            "channels": ["website"],
        },
        headers=bearer(admin),
    )
    assert registered.status_code == 201, registered.text
    secret = registered.json()["client_secret"]
    basic = base64.b64encode(f"website-adapter:{secret}".encode()).decode()
    response = await identity.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200, response.text
    principal = await identity.verifier().verify(response.json()["access_token"])
    assert principal.kind == "machine"
    assert principal.channels("sidr") == {"website"}
    assert principal.claims["client_id"] == "website-adapter"
    in_form = await identity.client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "website-adapter",
            "client_secret": secret,
        },
    )
    assert in_form.status_code == 200
    both = await identity.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "website-adapter"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert both.status_code == 400 and both.json()["error"] == "invalid_request"
    wrong = base64.b64encode(b"website-adapter:not-the-secret").decode()
    refused = await identity.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {wrong}"},
    )
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"


async def test_admin_routes_need_an_admin_token_of_the_association(identity: Identity) -> None:
    assert (await identity.client.get("/users")).status_code == 401
    no_token = await identity.client.get("/users")
    assert no_token.headers["www-authenticate"].startswith("Bearer")
    assert no_token.json()["error"] == "token_missing" and no_token.json()["message"]["ar"]
    identity.app.register_user(
        "sidr-admin",
        "Sidr admin",
        by="test",
        password="a long enough passphrase",
        roles={"sidr": ["admin"]},
    )
    identity.app.register_user(
        "clerk",
        "Clerk",
        by="test",
        password="a long enough passphrase",
        roles={"sidr": ["front_desk"]},
    )
    clerk = await identity.sign_in("clerk", "a long enough passphrase")
    forbidden = await identity.client.get("/users", headers=bearer(clerk))
    assert forbidden.status_code == 403 and forbidden.json()["error"] == "forbidden"
    sidr_admin = await identity.sign_in("sidr-admin", "a long enough passphrase")
    listed = await identity.client.get("/users", headers=bearer(sidr_admin))
    assert listed.status_code == 200
    assert {user["username"] for user in listed.json()} == {"sidr-admin", "clerk"}
    assert "password_hash" not in listed.text and "$argon2" not in listed.text
    elsewhere = await identity.client.post(
        "/users/clerk/roles",
        json={"role": "verifier", "association_id": "health-coop"},
        headers=bearer(sidr_admin),
    )
    assert elsewhere.status_code == 403
    unknown = await identity.client.post(
        "/users/clerk/roles",
        json={"role": "overlord", "association_id": "sidr"},
        headers=bearer(sidr_admin),
    )
    assert unknown.status_code == 422 and unknown.json()["error"] == "unknown_role"
    assert unknown.json()["message"]["ar"]


async def test_a_revoked_role_and_a_disabled_user_are_not_in_the_next_token(
    identity: Identity,
) -> None:
    admin = await identity.admin_token()
    registered = await identity.client.post(
        "/users",
        json={"username": "omar", "display_name": "Omar", "roles": {"sidr": ["committee_member"]}},
        headers=bearer(admin),
    )
    assert registered.status_code == 201, registered.text
    one_time = registered.json()["one_time_password"]
    assert (await identity.password_token("omar", one_time)).json()["reason"] == (
        "password_change_required"
    )
    await identity.client.post(
        "/account/password",
        json={
            "username": "omar",
            "current_password": one_time,
            "new_password": "omar's passphrase!",
        },
    )
    granted = await identity.client.post(
        "/users/omar/roles",
        json={"role": "committee_chair", "association_id": "sidr"},
        headers=bearer(admin),
    )
    assert granted.status_code == 201, granted.text
    first = await identity.verifier().verify(await identity.sign_in("omar", "omar's passphrase!"))
    assert first.holds("committee_member", "sidr") and first.holds("committee_chair", "sidr")
    revoked = await identity.client.delete(
        "/users/omar/roles/sidr/committee_chair",
        params={"reason": "term ended"},
        headers=bearer(admin),
    )
    assert revoked.status_code == 200, revoked.text
    second = await identity.verifier().verify(await identity.sign_in("omar", "omar's passphrase!"))
    assert second.holds("committee_member", "sidr") and not second.holds("committee_chair", "sidr")
    disabled = await identity.client.post(
        "/users/omar/disable", json={"reason": "left"}, headers=bearer(admin)
    )
    assert disabled.status_code == 200, disabled.text
    refused = await identity.password_token("omar", "omar's passphrase!")
    assert refused.status_code == 400
    assert (refused.json()["error"], refused.json()["reason"]) == (
        "invalid_grant",
        "account_disabled",
    )


async def test_a_rotated_key_signs_and_the_old_one_verifies_until_retired(
    identity: Identity,
) -> None:
    identity.app.register_user(
        "huda", "Huda", by="test", password="a long enough passphrase", roles={"sidr": ["verifier"]}
    )
    verifier = identity.verifier()
    old_token = await identity.sign_in("huda", "a long enough passphrase")
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    new_kid = identity.app.rotate_keys(algorithm="RS256", by="test")
    new_token = await identity.sign_in("huda", "a long enough passphrase")
    assert jwt.get_unverified_header(new_token) == {"alg": "RS256", "kid": new_kid, "typ": "at+jwt"}
    assert {key["kid"] for key in (await identity.jwks())["keys"]} == {old_kid, new_kid}
    assert (await verifier.verify(old_token)).holds("verifier", "sidr")
    assert (await verifier.verify(new_token)).holds("verifier", "sidr")
    identity.app.retire_key(old_kid, by="test")
    assert [key["kid"] for key in (await identity.jwks())["keys"]] == [new_kid]
    assert old_kid not in (identity.settings.key_file or Path()).read_text()
    fresh = identity.verifier()
    with pytest.raises(Unauthenticated) as refused:
        await fresh.verify(old_token)
    assert refused.value.code == "token_unknown_key"
    assert (await fresh.verify(new_token)).subject


async def test_role_history_by_replay(identity: Identity, tmp_path: Path) -> None:
    app = identity.app
    admin = await identity.admin_token()  # before the clock moves a month on
    app.register_user("omar", "Omar", by="test", password="a long enough passphrase")
    granted_at = identity.clock.now()
    app.grant("omar", "committee_member", "sidr", by="test")
    identity.clock.advance(timedelta(days=30))
    app.revoke("omar", "committee_member", "sidr", by="test", reason="term ended")
    revoked_at = identity.clock.now()
    t1, t2 = granted_at + timedelta(days=1), revoked_at + timedelta(days=1)
    # A new application on the same store: the answer comes from the events alone.
    replayed = open_identity(identity.settings)
    try:
        assert replayed.held_role("omar", "committee_member", "sidr", t1)
        assert not replayed.held_role("omar", "committee_member", "sidr", t2)
        assert not replayed.held_role("omar", "committee_member", "sidr", granted_at - timedelta(1))
        (grant,) = replayed.role_history("omar")
        assert grant["revoke_reason"] == "term ended"
    finally:
        replayed.close()
    for moment, held in ((t1, True), (t2, False)):
        answer = await identity.client.get(
            "/users/omar/held",
            params={"role": "committee_member", "association_id": "sidr", "at": moment.isoformat()},
            headers=bearer(admin),
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["held"] is held


async def test_the_openapi_document_shows_the_security_scheme(identity: Identity) -> None:
    document = identity.api.openapi()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["paths"]["/users"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in document["paths"]["/oauth/token"]["post"]
    token_form = document["paths"]["/oauth/token"]["post"]["requestBody"]["content"]
    assert "application/x-www-form-urlencoded" in token_form


def test_the_command_line_works_on_the_store(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "KHIDMA_DATA_DIR": str(tmp_path / "data"),
        "KHIDMA_ISSUER": ISSUER,
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "services.identity", *args],
            check=False,
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    created = run("create-admin")
    assert created.returncode == 0, created.stderr
    assert "One-time password for admin" in created.stdout
    keys_before = run("keys")
    assert keys_before.stdout.strip() == "[]"  # keys are made by the service or rotate-keys
    assert run("rotate-keys").returncode == 0
    assert run("add-user", "huda", "--name", "Huda", "--role", "sidr:verifier").returncode == 0
    assert run("grant", "huda", "auditor", "sidr").returncode == 0
    refused = run("grant", "huda", "auditor", "nowhere")
    assert refused.returncode == 1 and "unknown_association" in refused.stderr
    assert run("revoke", "huda", "auditor", "sidr", "--reason", "moved").returncode == 0
    added = run(
        "add-client", "letters", "--name", "Letters", "--association", "sidr", "--channel", "letter"
    )
    assert added.returncode == 0, added.stderr
    assert "secret" in added.stdout
    moment = (datetime.now(UTC) + timedelta(seconds=5)).isoformat()
    assert run("held", "huda", "verifier", "sidr", "--at", moment).stdout.strip() == "held"
    assert run("held", "huda", "auditor", "sidr", "--at", moment).stdout.strip() == "not held"
    key_file = tmp_path / "data" / "identity-keys.json"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    app = open_identity(IdentitySettings(data_dir=tmp_path / "data", issuer=ISSUER))
    try:
        roles = {user["username"]: user["roles"] for user in app.users()}
        assert roles["huda"] == {"sidr": ["verifier"]}
        stored = b"".join(n.state for n in app.read_notifications(0, 1000))
        assert b"PRIVATE" not in stored
    finally:
        app.close()
