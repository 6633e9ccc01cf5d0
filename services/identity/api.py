"""Identity's HTTP API: the OAuth2 token endpoint, the issuer's keys, and the administrators'
routes for users, roles and machine clients.

`POST /oauth/token` follows RFC 6749: form-encoded; `grant_type=password`
(username, password) for staff tools, `grant_type=client_credentials` for
adapters (client id and secret by HTTP Basic or in the form, not both); errors
as in section 5.2 (`error`, `error_description`) with the project's bilingual
`message` beside them. The administrators' routes need an admin token of this
issuer (shared.auth).
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any
from urllib.parse import unquote_plus

from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime, ConfigDict, Field

from services.identity.application import IdentityApplication
from services.identity.tokens import (
    InvalidClient,
    OAuthError,
    invalid_request,
    unsupported_grant_type,
)
from shared.auth import Principal, require
from shared.errors import Refused
from shared.http import runtime_of
from shared.roles import ADMIN, ROLES
from shared.runtime import ServiceRuntime
from shared.submissions import FromOutside

Runtime = Annotated[ServiceRuntime[IdentityApplication], Depends(runtime_of)]
Admin = Annotated[Principal, Depends(require(ADMIN))]
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
GRANT_TYPES = ("password", "client_credentials")

tokens = APIRouter(tags=["oauth"])
discovery = APIRouter(tags=["oauth"])
account = APIRouter(tags=["account"])
admin = APIRouter(tags=["administration"])


def actor(principal: Principal) -> str:
    """Who an administrator's change names: their user name on this issuer."""
    return "user:" + str(principal.claims.get("preferred_username") or principal.subject)


# The token endpoint -------------------------------------------------------------------


def _oauth_error(error: OAuthError) -> JSONResponse:
    headers = dict(NO_STORE)
    if isinstance(error, InvalidClient):
        headers["WWW-Authenticate"] = 'Basic realm="khidma"'
    return JSONResponse(error.response_body(), status_code=error.status, headers=headers)


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    """The client id and secret of an HTTP Basic header (RFC 6749 2.3.1: form-encoded)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise invalid_request(
            "The Authorization header is not valid HTTP Basic.",
            "ترويسة Authorization ليست مصادقة HTTP Basic صالحة.",
        ) from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise invalid_request(
            "The Authorization header is not valid HTTP Basic.",
            "ترويسة Authorization ليست مصادقة HTTP Basic صالحة.",
        )
    return unquote_plus(client_id), unquote_plus(secret)


def _missing(*names: str) -> OAuthError:
    listed = ", ".join(names)
    return invalid_request(
        f"The token request needs {listed}.",
        f"يحتاج طلب الرمز إلى {listed}.",
    )


@tokens.post(
    "/oauth/token",
    responses={
        200: {"description": "RFC 6749 5.1: access_token, token_type Bearer, expires_in"},
        400: {
            "description": "RFC 6749 5.2: invalid_request, invalid_grant, unsupported_grant_type"
        },
        401: {"description": "RFC 6749 5.2: invalid_client"},
    },
)
async def token(
    request: Request,
    runtime: Runtime,
    grant_type: Annotated[str | None, Form()] = None,
    username: Annotated[str | None, Form()] = None,
    password: Annotated[str | None, Form()] = None,
    client_id: Annotated[str | None, Form()] = None,
    client_secret: Annotated[str | None, Form()] = None,
    scope: Annotated[str | None, Form()] = None,
) -> Response:
    """Issues an access token (JWT): the password grant for staff, client credentials
    for adapters. `scope` is accepted and ignored: the roles decide."""
    app = runtime.app
    try:
        if not grant_type:
            raise _missing("grant_type")
        if grant_type == "password":
            if not username or not password:
                raise _missing("username", "password")
            issued = await runtime.store.run(app.password_token, username, password)
        elif grant_type == "client_credentials":
            basic = _basic_credentials(request)
            if basic and (client_id or client_secret):
                raise invalid_request(
                    "Authenticate the client one way only: HTTP Basic or the form.",
                    "صادِق العميل بطريقة واحدة فقط: HTTP Basic أو النموذج.",
                )
            identifier, secret = basic or (client_id, client_secret)
            if not identifier or not secret:
                raise _missing("client_id", "client_secret")
            issued = await runtime.store.run(app.client_token, identifier, secret)
        else:
            raise unsupported_grant_type(grant_type)
    except OAuthError as error:
        return _oauth_error(error)
    return JSONResponse(issued.response(), headers=NO_STORE)


# The issuer's keys and metadata ------------------------------------------------------------


@discovery.get("/.well-known/jwks.json")
async def jwks(runtime: Runtime) -> JSONResponse:
    """The public keys (RFC 7517) that verify this issuer's tokens: the signing key and
    every older key not yet retired."""
    keys = await runtime.store.run(runtime.app.jwks)
    return JSONResponse(keys, headers={"Cache-Control": "public, max-age=60"})


def _metadata(runtime: ServiceRuntime[IdentityApplication]) -> dict[str, Any]:
    issuer = runtime.app.tokens.issuer
    return {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/oauth/token",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "grant_types_supported": list(GRANT_TYPES),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        # No authorization endpoint: tokens come from the token endpoint only.
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256"],
        "claims_supported": [
            "iss",
            "aud",
            "sub",
            "exp",
            "nbf",
            "iat",
            "jti",
            "name",
            "preferred_username",
            "client_id",
            runtime.app.tokens.kind_claim,
            runtime.app.tokens.roles_claim,
        ],
        "khidma_roles": list(ROLES),
    }


@discovery.get("/.well-known/openid-configuration")
async def openid_configuration(runtime: Runtime) -> dict[str, Any]:
    """The issuer's metadata (OpenID Connect discovery; the fields of RFC 8414 it has)."""
    return _metadata(runtime)


@discovery.get("/.well-known/oauth-authorization-server")
async def authorization_server_metadata(runtime: Runtime) -> dict[str, Any]:
    """The same metadata at the address of RFC 8414."""
    return _metadata(runtime)


# The user's own account ---------------------------------------------------------------


class PasswordChange(FromOutside):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


@account.post("/account/password", status_code=204)
async def change_password(body: PasswordChange, runtime: Runtime) -> Response:
    """The user chooses their password, proving the current (or one-time) one; the
    one-time password an administrator gave signs in to nothing else."""
    try:
        await runtime.store.run(
            runtime.app.set_own_password, body.username, body.current_password, body.new_password
        )
    except OAuthError as error:
        return _oauth_error(error)
    return Response(status_code=204)


# Administration ------------------------------------------------------------------------


class NewUser(FromOutside):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    display_name: str = Field(min_length=1, max_length=200)
    roles: dict[str, list[str]] = Field(
        default_factory=dict, description="roles per association: {association_id: [role, …]}"
    )


class RoleGrant(FromOutside):
    model_config = ConfigDict(extra="forbid")

    role: str = Field(min_length=1, max_length=64)
    association_id: str = Field(min_length=1, max_length=32)


class Disabling(FromOutside):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=2000)


class NewClient(FromOutside):
    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    associations: list[str] = Field(min_length=1)
    channels: list[str] = Field(min_length=1)


def cannot_disable_self() -> Refused:
    return Refused(
        "cannot_disable_self",
        "An administrator cannot disable their own account.",
        "لا يمكن للمسؤول تعطيل حسابه.",
    )


@admin.get("/users")
async def list_users(principal: Admin, runtime: Runtime) -> list[dict[str, Any]]:
    """Every user with their roles now (never a password or its hash)."""
    return await runtime.store.run(runtime.app.users)


@admin.post("/users", status_code=201)
async def register_user(body: NewUser, principal: Admin, runtime: Runtime) -> dict[str, Any]:
    """Registers a user with a one-time password (in the answer, this once), and any roles
    in associations where the caller is an administrator."""
    for association_id in body.roles:
        principal.require(ADMIN, association_id=association_id)
    return await runtime.store.run(
        lambda: runtime.app.register_user(
            body.username, body.display_name, by=actor(principal), roles=body.roles
        )
    )


@admin.get("/users/{username}")
async def get_user(username: str, principal: Admin, runtime: Runtime) -> dict[str, Any]:
    summary = await runtime.store.run(runtime.app.user, username)
    summary["role_history"] = await runtime.store.run(runtime.app.role_history, username)
    return summary


@admin.post("/users/{username}/roles", status_code=201)
async def grant_role(
    username: str, body: RoleGrant, principal: Admin, runtime: Runtime
) -> dict[str, Any]:
    """Grants a role in an association where the caller is an administrator."""
    principal.require(ADMIN, association_id=body.association_id)
    return await runtime.store.run(
        lambda: runtime.app.grant(username, body.role, body.association_id, by=actor(principal))
    )


@admin.delete("/users/{username}/roles/{association_id}/{role}")
async def revoke_role(
    username: str,
    association_id: str,
    role: str,
    principal: Annotated[Principal, Depends(require(ADMIN, association="association_id"))],
    runtime: Runtime,
    reason: Annotated[str | None, Query(max_length=2000)] = None,
) -> dict[str, Any]:
    """Revokes a role: it is in none of the user's next tokens."""
    return await runtime.store.run(
        lambda: runtime.app.revoke(
            username, role, association_id, by=actor(principal), reason=reason
        )
    )


@admin.post("/users/{username}/disable")
async def disable_user(
    username: str, body: Disabling, principal: Admin, runtime: Runtime
) -> dict[str, Any]:
    """Disables a user (no more tokens), by an administrator of every association in
    which they hold a role."""
    user = await runtime.store.run(runtime.app.user, username)
    if user["user_id"] == principal.subject:
        raise cannot_disable_self()
    for association_id in user["roles"]:
        principal.require(ADMIN, association_id=association_id)
    return await runtime.store.run(
        lambda: runtime.app.disable(username, by=actor(principal), reason=body.reason)
    )


@admin.get("/users/{username}/held")
async def held_role(
    username: str,
    role: str,
    association_id: str,
    at: AwareDatetime,
    principal: Annotated[
        Principal, Depends(require(ADMIN, "auditor", association="association_id"))
    ],
    runtime: Runtime,
) -> dict[str, Any]:
    """Whether the user held the role in the association at that moment (from the
    replayed history of grants and revocations)."""
    held = await runtime.store.run(runtime.app.held_role, username, role, association_id, at)
    return {
        "username": username,
        "role": role,
        "association_id": association_id,
        "at": at.isoformat(),
        "held": held,
    }


@admin.post("/clients", status_code=201)
async def register_client(body: NewClient, principal: Admin, runtime: Runtime) -> dict[str, Any]:
    """Registers a machine client (an adapter) for associations where the caller is an
    administrator; its secret is in the answer, this once."""
    for association_id in body.associations:
        principal.require(ADMIN, association_id=association_id)
    return await runtime.store.run(
        lambda: runtime.app.register_client(
            body.client_id,
            body.name,
            associations=body.associations,
            channels=body.channels,
            by=actor(principal),
        )
    )


def include(api: FastAPI) -> None:
    for router in (tokens, discovery, account, admin):
        api.include_router(router)
