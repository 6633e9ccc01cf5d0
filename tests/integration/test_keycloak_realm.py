"""The Keycloak realm of deploy/keycloak, proven without Keycloak.

Keycloak cannot run where the tests run (no containers, no Java server), so
what it would do is checked from its configuration, as docker-compose.yml is:

1. deploy/keycloak/khidma-realm.json validates against the realm schema
   vendored from the Keycloak operator's CRD (deploy/keycloak/realm-schema.json),
   and against a strict reading of it that also refuses unknown keys; broken
   copies are refused, so the check can fail.
2. The realm defines every role of shared/roles.py in every association of the
   policy packs, and the channels each pack enables, as groups
   `/<association>/<role>`; the staff client uses the password grant, each
   adapter's client the client-credentials grant, with no secret in clear.
3. The claims: a token is built with exactly what the realm's protocol mappers
   (and Keycloak's built-in client scopes) would put in it, read from the
   mappers' own configuration, signed with an RSA key served as a JWKS file,
   and verified by `verifier_from_environment()` configured with the
   KHIDMA_AUTH_* of the compose override itself; the Principal's roles, kind
   and name are what the realm meant.
4. deploy/keycloak/compose.keycloak.yml validates against the compose
   specification, alone and merged with docker-compose.yml, requires its
   secrets, and points every service at Keycloak.

What Keycloak itself does with the file (the import, the `${VAR}` placeholders,
the token endpoint) is not run here: deploy/keycloak/README.md says what was
taken from Keycloak's documentation and source instead.
"""

from __future__ import annotations

import copy
import http.server
import json
import os
import re
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import jsonschema
import jwt
import pytest

from tests.helpers import compose_key_files
from cryptography.hazmat.primitives.asymmetric import rsa

from khidma.compose import (
    COMPOSE_FILE,
    COMPOSE_SCHEMA,
    ENV_EXAMPLE,
    PROJECT_ROOT,
    MissingVariable,
    environment_of,
    load_compose,
    load_merged,
    variables_used,
)
from khidma.nats_server import SERVICE_USERS
from shared.auth import Principal, Unauthenticated, verifier_from_environment
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from shared.roles import CHANNEL_ROLE_PREFIX, ROLES, channel_role

pytestmark = pytest.mark.integration

KEYCLOAK_DIR = PROJECT_ROOT / "deploy" / "keycloak"
REALM_FILE = KEYCLOAK_DIR / "khidma-realm.json"
REALM_SCHEMA = KEYCLOAK_DIR / "realm-schema.json"
OVERRIDE = KEYCLOAK_DIR / "compose.keycloak.yml"
STAFF_CLIENT = "khidma-staff"
SERVICES = SERVICE_USERS
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def realm() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(REALM_FILE.read_text(encoding="utf-8"))
    return document


def clients(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {client["clientId"]: client for client in document["clients"]}


def service_accounts(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The service-account users, by the client they belong to."""
    return {
        user["serviceAccountClientId"]: user
        for user in document.get("users", [])
        if user.get("serviceAccountClientId")
    }


def group_paths(document: dict[str, Any]) -> set[str]:
    paths: set[str] = set()

    def walk(groups: list[dict[str, Any]], parent: str) -> None:
        for group in groups:
            path = f"{parent}/{group['name']}"
            paths.add(path)
            walk(group.get("subGroups", []), path)

    walk(document.get("groups", []), "")
    return paths


def dot_env() -> dict[str, str]:
    """An operator's .env for docker-compose.yml with the Keycloak override."""
    names = variables_used(COMPOSE_FILE) | variables_used(OVERRIDE)
    env = {name: "k" + secrets.token_urlsafe(18) for name in names if "PASSWORD" in name}
    env |= {name: "k" + secrets.token_urlsafe(24) for name in names if name.endswith("_SECRET")}
    env["SURVEYS_PUBLIC_BASE_URL"] = "https://surveys.example.org"
    env |= compose_key_files()
    return env


# --- 1. the realm file against Keycloak's schema ---------------------------------------


def strict(schema: Any) -> Any:
    """The schema, refusing keys it does not name: the CRD's schema lets any unknown
    key through, and Keycloak ignores one (a misspelt `directAccessGrantEnabled` would
    silently leave the grant off)."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    tightened = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        tightened["additionalProperties"] = False
    return tightened


def validators() -> tuple[jsonschema.Validator, jsonschema.Validator]:
    schema = json.loads(REALM_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema), jsonschema.Draft202012Validator(strict(schema))


def test_the_realm_file_validates_against_the_vendored_realm_schema() -> None:
    lenient, strict_validator = validators()
    document = realm()
    lenient.validate(document)
    strict_validator.validate(document)

    # A wrong type is refused: a boolean given as a string ...
    broken = copy.deepcopy(document)
    broken["enabled"] = "true"
    with pytest.raises(jsonschema.ValidationError):
        lenient.validate(broken)
    # ... a protocol mapper's configuration holds strings only (Keycloak's own
    # import refuses `"full.path": true`) ...
    broken = copy.deepcopy(document)
    broken["clients"][0]["protocolMappers"][0]["config"]["full.path"] = True
    with pytest.raises(jsonschema.ValidationError):
        lenient.validate(broken)
    # ... and a user's groups are a list of paths.
    broken = copy.deepcopy(document)
    broken["users"][0]["groups"] = "/sidr/verifier"
    with pytest.raises(jsonschema.ValidationError):
        lenient.validate(broken)
    # A misspelt key passes the CRD's schema (it lets unknown keys through) but not
    # the strict reading of it.
    broken = copy.deepcopy(document)
    staff = clients(broken)[STAFF_CLIENT]
    staff["directAccessGrantEnabled"] = staff.pop("directAccessGrantsEnabled")
    lenient.validate(broken)
    with pytest.raises(jsonschema.ValidationError):
        strict_validator.validate(broken)


def test_the_vendored_schema_names_its_source_and_the_image_is_of_that_version() -> None:
    schema = json.loads(REALM_SCHEMA.read_text(encoding="utf-8"))
    source = re.search(
        r"keycloak-k8s-resources tag (\d+\.\d+\.\d+) \(commit ([0-9a-f]{40})", schema["$comment"]
    )
    assert source, schema["$comment"]
    env = dot_env()
    image = load_compose(env, OVERRIDE)["services"]["keycloak"]["image"]
    assert image == f"quay.io/keycloak/keycloak:{source.group(1)}"


# --- 2. the roles, the clients --------------------------------------------------------


def test_every_role_of_every_association_and_each_pack_s_channels_is_a_group() -> None:
    packs = load_packs(DEFAULT_POLICIES_DIR)
    document = realm()
    assert document["realm"] == "khidma" and document["enabled"] is True
    top = {group["name"]: group for group in document["groups"]}
    assert set(top) == set(packs)
    for association_id, pack in packs.items():
        held = {sub["name"] for sub in top[association_id].get("subGroups", [])}
        assert held == set(ROLES) | {channel_role(c) for c in pack.channels}, association_id
        assert all(not sub.get("subGroups") for sub in top[association_id]["subGroups"])
    # Keycloak's built-in client scopes (`basic` holds the `sub` mapper, `profile` the
    # names) are created only when the file declares none of its own.
    assert "clientScopes" not in document


def test_the_staff_client_has_the_password_grant_and_each_adapter_a_service_account() -> None:
    packs = load_packs(DEFAULT_POLICIES_DIR)
    document = realm()
    by_id = clients(document)
    staff = by_id[STAFF_CLIENT]
    assert staff["enabled"] is True and staff["publicClient"] is True
    assert staff["directAccessGrantsEnabled"] is True
    assert not staff.get("serviceAccountsEnabled") and "secret" not in staff

    accounts = service_accounts(document)
    adapters = {cid: c for cid, c in by_id.items() if c.get("serviceAccountsEnabled")}
    assert adapters and set(accounts) == set(adapters)
    paths = group_paths(document)
    for client_id, client in adapters.items():
        assert (
            client["publicClient"] is False and client["clientAuthenticatorType"] == "client-secret"
        )
        assert (
            client["directAccessGrantsEnabled"] is False and client["standardFlowEnabled"] is False
        )
        # No secret in clear: a placeholder Keycloak fills from its environment on import.
        assert PLACEHOLDER.fullmatch(client["secret"]), client_id
        # A client that lists its scopes loses the realm's defaults: it must keep those
        # the claims come from (`sub`, the names, `client_id`).
        assert {"basic", "profile", "service_account"} <= set(client["defaultClientScopes"])
        account = accounts[client_id]
        assert account["username"] == f"service-account-{client_id}" and account["enabled"]
        assert account["groups"] and set(account["groups"]) <= paths
        for path in account["groups"]:
            association_id, role = path.strip("/").split("/")
            assert role.startswith(CHANNEL_ROLE_PREFIX), path  # an adapter holds channels only
            assert packs[association_id].enables(role.removeprefix(CHANNEL_ROLE_PREFIX)), path
    # `${VAR}` appears nowhere but in the secrets (Keycloak would fill it anywhere).
    text = REALM_FILE.read_text(encoding="utf-8")
    assert len(PLACEHOLDER.findall(text)) == len(adapters)
    assert text.count("${") == len(adapters)


def test_every_client_carries_the_khidma_claims() -> None:
    document = realm()
    for client_id, client in clients(document).items():
        kinds = {m["protocolMapper"]: m["config"] for m in client["protocolMappers"]}
        assert {
            "oidc-group-membership-mapper",
            "oidc-audience-mapper",
            "oidc-hardcoded-claim-mapper",
        } <= set(kinds), client_id
        kind = kinds["oidc-hardcoded-claim-mapper"]
        assert kind["claim.name"] == "khidma_kind"
        assert kind["claim.value"] == (
            "machine" if client.get("serviceAccountsEnabled") else "human"
        )
        groups = kinds["oidc-group-membership-mapper"]
        assert groups["full.path"] == "true", client_id  # "/sidr/verifier", not "verifier"
        for config in kinds.values():
            assert config["access.token.claim"] == "true", client_id


# --- 3. what the tokens carry, verified as the services would --------------------------


def put_claim(claims: dict[str, Any], name: str, value: Any) -> None:
    """Keycloak's `claim.name`: dots (not escaped as `\\.`) nest the claim."""
    parts = [part.replace("\\.", ".") for part in re.split(r"(?<!\\)\.", name)]
    for part in parts[:-1]:
        claims = claims.setdefault(part, {})
    claims[parts[-1]] = value


def typed(value: str, json_type: str) -> Any:
    """A hardcoded claim's value, as its `jsonType.label` makes it."""
    if json_type == "String":
        return value
    if json_type == "boolean":
        return value == "true"
    if json_type in ("int", "long"):
        return int(value)
    if json_type == "JSON":
        return json.loads(value)
    raise AssertionError(f"jsonType.label {json_type!r}: teach this test what Keycloak emits")


def keycloak_access_token(
    document: dict[str, Any], client: dict[str, Any], user: dict[str, Any], issuer: str
) -> dict[str, Any]:
    """The claims of the access token Keycloak issues to `user` through `client`:
    the built-in scopes' (`basic`: sub; `profile`: preferred_username, the names;
    `roles`: realm_access, resource_access and the `account` audience of a person's
    default roles; `service_account`: client_id), then the client's own protocol
    mappers, read from their configuration. A mapper this test does not model
    fails it rather than being skipped."""
    now = int(time.time())
    service_account = bool(user.get("serviceAccountClientId"))
    claims: dict[str, Any] = {
        "exp": now + int(document.get("accessTokenLifespan", 300)),
        "iat": now,
        "jti": str(uuid4()),
        "iss": issuer,
        "sub": user.get("id") or str(uuid4()),
        "typ": "Bearer",
        "azp": client["clientId"],
        "scope": "profile email",
        "preferred_username": user["username"],
    }
    audiences: list[str] = []
    if not service_account:
        # A person created in the admin console gets the realm's default roles.
        claims["realm_access"] = {"roles": [f"default-roles-{document['realm']}", "offline_access"]}
        claims["resource_access"] = {"account": {"roles": ["manage-account", "view-profile"]}}
        claims["sid"] = str(uuid4())
        audiences.append("account")
    full_name = " ".join(n for n in (user.get("firstName"), user.get("lastName")) if n)
    if full_name:
        claims |= {
            "name": full_name,
            "given_name": user.get("firstName"),
            "family_name": user.get("lastName"),
        }
    if service_account and "service_account" in client.get("defaultClientScopes", []):
        claims |= {
            "client_id": client["clientId"],
            "clientHost": "172.18.0.9",
            "clientAddress": "172.18.0.9",
        }
    for mapper in client["protocolMappers"]:
        config = mapper["config"]
        if config.get("access.token.claim") != "true":
            continue
        kind = mapper["protocolMapper"]
        if kind == "oidc-group-membership-mapper":
            # GroupMembershipMapper puts a list of the user's groups, however many.
            groups = user.get("groups", [])
            value = (
                groups
                if config.get("full.path") == "true"
                else [g.rsplit("/", 1)[-1] for g in groups]
            )
            put_claim(claims, config["claim.name"], list(value))
        elif kind == "oidc-audience-mapper":
            audience = config.get("included.custom.audience") or config["included.client.audience"]
            audiences.insert(0, audience)
        elif kind == "oidc-hardcoded-claim-mapper":
            put_claim(
                claims, config["claim.name"], typed(config["claim.value"], config["jsonType.label"])
            )
        else:
            raise AssertionError(f"protocol mapper {kind}: teach this test what it emits")
    if audiences:  # Keycloak writes one audience as a string, several as a list
        claims["aud"] = audiences[0] if len(audiences) == 1 else audiences
    return claims


class KeycloakKeys:
    """A realm's keys as Keycloak publishes them: an RS256 signing key and an
    RSA-OAEP encryption key (`use: enc`, which a verifier must skip)."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "kc-" + uuid4().hex[:12]
        self.enc_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        sig = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        enc = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.enc_key.public_key()))
        return {
            "keys": [
                {**enc, "kid": "kc-enc-" + uuid4().hex[:8], "use": "enc", "alg": "RSA-OAEP"},
                {**sig, "kid": self.kid, "use": "sig", "alg": "RS256"},
            ]
        }

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(
            claims, self.key, algorithm="RS256", headers={"kid": self.kid, "typ": "JWT"}
        )


def override_trust() -> dict[str, str]:
    """The KHIDMA_AUTH_* the override gives the services (the same for all four)."""
    compose = load_merged(dot_env(), COMPOSE_FILE, OVERRIDE)
    trusts = [
        {
            k: v
            for k, v in environment_of(compose["services"][name]).items()
            if k.startswith("KHIDMA_AUTH_")
        }
        for name in SERVICES
    ]
    assert all(trust == trusts[0] for trust in trusts)
    return trusts[0]


@pytest.fixture
def keycloak_verifier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[KeycloakKeys, str]]:
    """A services' verifier configured as the override configures them, but with
    Keycloak's JWKS in a file (nothing listens at http://keycloak:8080 here)."""
    document = realm()
    trust = override_trust()
    compose = load_compose(dot_env(), OVERRIDE)
    keycloak = compose["services"]["keycloak"]
    # The issuer Keycloak writes in `iss`: its fixed hostname and the realm.
    hostname = environment_of(keycloak)["KC_HOSTNAME"]
    assert trust["KHIDMA_AUTH_ISSUER"] == f"{hostname}/realms/{document['realm']}"
    # The keys: the realm's certificates endpoint, on the compose network.
    assert any(str(p).endswith(":8080") for p in keycloak["ports"])
    assert trust["KHIDMA_AUTH_JWKS_URL"] == (
        f"http://keycloak:8080/realms/{document['realm']}/protocol/openid-connect/certs"
    )
    keys = KeycloakKeys()
    jwks_file = tmp_path / "keycloak-certs.json"
    jwks_file.write_text(json.dumps(keys.jwks()), encoding="utf-8")
    for name in [n for n in os.environ if n.startswith("KHIDMA_AUTH_")]:
        monkeypatch.delenv(name)  # the tests' own issuer (tests/conftest.py) is not trusted here
    for name, value in trust.items():
        if name != "KHIDMA_AUTH_JWKS_URL":
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("KHIDMA_AUTH_JWKS_FILE", str(jwks_file))
    yield keys, trust["KHIDMA_AUTH_ISSUER"]


STAFF_PERSON = {
    "username": "amal",
    "firstName": "Amal",
    "lastName": "Haddad",
    "groups": ["/sidr/verifier", "/sidr/front_desk", "/health-coop/auditor"],
}


async def test_a_staff_member_s_token_gives_her_roles_per_association(
    keycloak_verifier: tuple[KeycloakKeys, str],
) -> None:
    keys, issuer = keycloak_verifier
    document = realm()
    assert set(STAFF_PERSON["groups"]) <= group_paths(document)
    claims = keycloak_access_token(document, clients(document)[STAFF_CLIENT], STAFF_PERSON, issuer)
    principal: Principal = await verifier_from_environment().verify(keys.sign(claims))
    assert principal.kind == "human"
    assert principal.name == "Amal Haddad" and principal.username == "amal"
    assert principal.issuer == issuer
    assert principal.roles == {"sidr": {"verifier", "front_desk"}, "health-coop": {"auditor"}}
    assert principal.holds("verifier", "sidr") and not principal.holds("verifier", "health-coop")
    assert principal.actor("verifier")["kind"] == "officer"


@pytest.mark.parametrize("client_id", sorted(service_accounts(realm())))
async def test_an_adapter_s_token_gives_its_channels_as_a_machine(
    keycloak_verifier: tuple[KeycloakKeys, str], client_id: str
) -> None:
    keys, issuer = keycloak_verifier
    document = realm()
    account = service_accounts(document)[client_id]
    claims = keycloak_access_token(document, clients(document)[client_id], account, issuer)
    principal = await verifier_from_environment().verify(keys.sign(claims))
    assert principal.kind == "machine"
    assert principal.name == principal.username == f"service-account-{client_id}"
    expected: dict[str, set[str]] = {}
    for path in account["groups"]:
        association_id, role = path.strip("/").split("/")
        expected.setdefault(association_id, set()).add(role.removeprefix(CHANNEL_ROLE_PREFIX))
    assert {a: set(principal.channels(a)) for a in principal.roles} == expected
    assert not any(principal.associations_with(role) for role in ROLES)  # no staff role
    role = account["groups"][0].rsplit("/", 1)[-1]
    assert principal.actor(role)["kind"] == "adapter"


async def test_without_the_realm_s_mappers_the_services_would_refuse_or_see_no_role(
    keycloak_verifier: tuple[KeycloakKeys, str],
) -> None:
    """The mappers are what make Keycloak's tokens ours: each one matters."""
    keys, issuer = keycloak_verifier
    document = realm()

    def staff_without(kind: str) -> dict[str, Any]:
        broken = copy.deepcopy(clients(document)[STAFF_CLIENT])
        broken["protocolMappers"] = [
            m for m in broken["protocolMappers"] if m["protocolMapper"] != kind
        ]
        return broken

    verifier = verifier_from_environment()
    # No audience mapper: `aud` is only "account", which the services refuse.
    claims = keycloak_access_token(
        document, staff_without("oidc-audience-mapper"), STAFF_PERSON, issuer
    )
    with pytest.raises(Unauthenticated) as refused:
        await verifier.verify(keys.sign(claims))
    assert refused.value.code == "token_wrong_audience"
    # Group names instead of paths: the roles lose their association.
    flat = copy.deepcopy(clients(document)[STAFF_CLIENT])
    for mapper in flat["protocolMappers"]:
        if mapper["protocolMapper"] == "oidc-group-membership-mapper":
            mapper["config"]["full.path"] = "false"
    principal = await verifier.verify(
        keys.sign(keycloak_access_token(document, flat, STAFF_PERSON, issuer))
    )
    assert principal.roles == {}
    # Another realm's (or Keycloak's master realm's) tokens come from another issuer.
    claims = keycloak_access_token(document, clients(document)[STAFF_CLIENT], STAFF_PERSON, issuer)
    claims["iss"] = issuer.replace("/realms/khidma", "/realms/master")
    with pytest.raises(Unauthenticated) as refused:
        await verifier.verify(keys.sign(claims))
    assert refused.value.code == "token_wrong_issuer"


# --- 4. the compose override ----------------------------------------------------------


def compose_validator() -> jsonschema.Validator:
    validator = jsonschema.Draft201909Validator(json.loads(COMPOSE_SCHEMA.read_text()))
    validator.check_schema(validator.schema)
    return validator


def test_the_override_validates_against_the_compose_specification_alone_and_merged() -> None:
    validator = compose_validator()
    env = dot_env()
    validator.validate(load_compose(env, OVERRIDE))
    merged = load_merged(env, COMPOSE_FILE, OVERRIDE)
    validator.validate(merged)
    broken = copy.deepcopy(merged)
    broken["services"]["keycloak"]["healthcheck"]["interval"] = 10
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)


def test_the_keycloak_service_imports_the_realm_and_requires_its_secrets() -> None:
    env = dot_env()
    keycloak = load_compose(env, OVERRIDE)["services"]["keycloak"]
    assert "--import-realm" in keycloak["command"]
    assert keycloak["restart"] == "unless-stopped" and keycloak["healthcheck"]["test"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in keycloak["volumes"]}
    assert (
        PROJECT_ROOT / mounts["/opt/keycloak/data/import/khidma-realm.json"]
    ).resolve() == REALM_FILE
    keycloak_env = environment_of(keycloak)
    assert keycloak_env["KC_BOOTSTRAP_ADMIN_PASSWORD"] == env["KEYCLOAK_ADMIN_PASSWORD"]
    # Every placeholder of the realm file is in Keycloak's environment, from .env.
    for name in PLACEHOLDER.findall(REALM_FILE.read_text(encoding="utf-8")):
        assert keycloak_env[name] == env[name], name
    for name in ("KEYCLOAK_ADMIN_PASSWORD", *PLACEHOLDER.findall(REALM_FILE.read_text())):
        missing = dict(env)
        del missing[name]
        with pytest.raises(MissingVariable) as refused:
            load_compose(missing, OVERRIDE)
        assert refused.value.name == name
    listed = set(re.findall(r"(?m)^([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text()))
    assert variables_used(OVERRIDE) <= listed, variables_used(OVERRIDE) - listed


def test_every_service_trusts_keycloak_and_waits_for_it_instead_of_the_identity_service() -> None:
    env = dot_env()
    base = load_compose(env)
    merged = load_merged(env, COMPOSE_FILE, OVERRIDE)
    services = merged["services"]
    assert services["identity"]["profiles"] == ["embedded-identity"]
    trust = override_trust()
    assert trust["KHIDMA_AUTH_ROLES_CLAIM"] == "khidma_roles"
    assert trust["KHIDMA_AUTH_AUDIENCE"] == "khidma"
    for name in SERVICES:
        service = services[name]
        assert "identity" not in service["depends_on"], name
        assert service["depends_on"]["keycloak"] == {"condition": "service_healthy"}
        assert {k: v for k, v in service["depends_on"].items() if k != "keycloak"} == {
            k: v for k, v in base["services"][name]["depends_on"].items() if k != "identity"
        }
        env_of = environment_of(service)
        # The rest of the service is untouched: only whom it trusts changes.
        assert {k: v for k, v in env_of.items() if not k.startswith("KHIDMA_AUTH_")} == {
            k: v
            for k, v in environment_of(base["services"][name]).items()
            if not k.startswith("KHIDMA_AUTH_")
        }
        assert {k: v for k, v in service.items() if k not in ("depends_on", "environment")} == {
            k: v
            for k, v in base["services"][name].items()
            if k not in ("depends_on", "environment")
        }
    # The claim names the services read are the ones the realm's mappers write.
    document = realm()
    for client in document["clients"]:
        configs = {m["protocolMapper"]: m["config"] for m in client["protocolMappers"]}
        assert (
            configs["oidc-group-membership-mapper"]["claim.name"]
            == trust["KHIDMA_AUTH_ROLES_CLAIM"]
        )
        assert (
            configs["oidc-audience-mapper"]["included.custom.audience"]
            == trust["KHIDMA_AUTH_AUDIENCE"]
        )
    assert not any(
        "identity" in (s.get("depends_on") or {}) for n, s in services.items() if n != "identity"
    )


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        body = json.dumps({"status": "UP" if self.status == 200 else "DOWN", "checks": []}).encode()
        self.send_response(self.status if self.path == "/health/ready" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash, as the Keycloak image has")
@pytest.mark.parametrize("status, healthy", [(200, True), (503, False)])
def test_the_health_check_reads_keycloak_s_readiness_with_bash_alone(
    status: int, healthy: bool
) -> None:
    """The image has no curl: the check is bash's /dev/tcp, run here against a stand-in
    for Keycloak's management port (the port number swapped for a free one)."""
    command = load_compose(dot_env(), OVERRIDE)["services"]["keycloak"]["healthcheck"]["test"]
    assert command[:3] == ["CMD", "bash", "-c"] and "/dev/tcp/127.0.0.1/9000" in command[3]
    handler = type("Handler", (_Health,), {"status": status})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        script = command[3].replace(
            "/dev/tcp/127.0.0.1/9000", f"/dev/tcp/127.0.0.1/{server.server_port}"
        )
        bash = shutil.which("bash")
        assert bash
        # No PATH: bash builtins alone, as in the image.
        done = subprocess.run(
            [bash, "-c", script], check=False, capture_output=True, timeout=10, env={"PATH": ""}
        )
        assert (done.returncode == 0) is healthy, done
    finally:
        server.shutdown()
        server.server_close()
