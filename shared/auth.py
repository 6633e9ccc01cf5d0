"""Bearer tokens at every service's HTTP edge: verify, then say who is calling.

A `Verifier` trusts one or more issuers, each by configuration alone: its
`iss`, the audience its tokens must name, where its JWKS is (a URL, or a file
or a dict for tests) and the name of the claim holding the roles. The embedded
identity service (`services/identity/`) is one such issuer; Keycloak or any
other OIDC provider is another, with no code change (docs/decisions.md).

A token is accepted when its header names a key of its issuer's JWKS (fetched
once and cached; fetched again, at most every few seconds, for a key id it has
not seen, so a rotation needs no restart), its signature verifies with an
asymmetric algorithm (RS256 or ES256, never `none` or a shared secret), and its
issuer, audience, expiry and not-before hold. It becomes a `Principal`.

The roles claim is `{"<association_id>": ["role", …]}`; a flat list of
`"<association_id>/<role>"` strings (a Keycloak group-membership mapper's
`/sidr/verifier`) is read the same way. A machine client's channels are roles
named `channel:<name>`.

FastAPI: `require(role, …)` is the dependency a route declares; it answers 401
(no token, or one that does not verify; with `WWW-Authenticate: Bearer`) or
403 (no such role in that association), in the project's bilingual error shape,
and puts the HTTP bearer security scheme in the OpenAPI document. `install`
puts the verifier on the app and the handler of these refusals. Domain code
never imports this module.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import httpx
import jwt
from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.errors import Refused, association_not_served
from shared.roles import CHANNEL_ROLE_PREFIX, actor_kind

log = logging.getLogger(__name__)

ALLOWED_ALGORITHMS: tuple[str, ...] = ("RS256", "ES256")
Kind = Literal["human", "machine"]


# Who is calling ----------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """The verified caller: the actor every recorded event will name."""

    subject: str
    name: str
    kind: Kind
    roles: Mapping[str, frozenset[str]]
    issuer: str
    token_id: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def username(self) -> str:
        """The name the caller signs in with (`preferred_username`, or the subject):
        how a committee seat in a policy pack names its member."""
        return str(self.claims.get("preferred_username") or self.subject)

    def holds(self, role: str, association_id: str) -> bool:
        return role in self.roles.get(association_id, frozenset())

    def associations_with(self, role: str) -> list[str]:
        """The associations in which the caller holds the role."""
        return sorted(a for a, held in self.roles.items() if role in held)

    def associations_with_any(self, *roles: str) -> list[str]:
        """The associations in which the caller holds at least one of the roles."""
        return sorted({a for role in roles for a in self.associations_with(role)})

    def associations_listed(self, roles: Iterable[str], asked: str | None) -> list[str]:
        """The associations a list answers for: the one asked for (the route's
        `require` has checked the caller holds a role there), else every one where
        the caller holds one of the roles."""
        return [asked] if asked is not None else self.associations_with_any(*roles)

    def channels(self, association_id: str) -> frozenset[str]:
        """A machine client's channels in the association."""
        return frozenset(
            role.removeprefix(CHANNEL_ROLE_PREFIX)
            for role in self.roles.get(association_id, frozenset())
            if role.startswith(CHANNEL_ROLE_PREFIX)
        )

    def require(self, *roles: str, association_id: str) -> str:
        """Refuses (403) unless the caller holds one of the roles in the association
        (for a route whose association is in its body or its record); returns the
        first of them held, the role the caller acts in."""
        for role in roles:
            if self.holds(role, association_id):
                return role
        raise forbidden(roles, association_id)

    def actor(self, role: str) -> dict[str, str]:
        """The recorded actor of what this caller does in the role: never a body field."""
        return {"kind": actor_kind(role), "id": self.subject, "name": self.name, "role": role}


# Refusals ----------------------------------------------------------------------------


class AuthRefused(Refused):
    """A refusal of the caller rather than of the command, with the headers it
    answers with (the `WWW-Authenticate` challenge). `shared/http.py` gives each
    kind its status."""

    def __init__(self, code: str, en: str, ar: str, headers: Mapping[str, str] | None = None):
        super().__init__(code, en, ar)
        self.headers = dict(headers or {})


class Unauthenticated(AuthRefused):
    """No token, or one that does not verify."""


class Forbidden(AuthRefused):
    """A verified caller without the role the route needs, there."""


class AuthUnavailable(AuthRefused):
    """The issuer's keys cannot be fetched: nobody can be verified for now."""


def _bearer_challenge(error: str | None = None, description: str | None = None) -> dict[str, str]:
    value = 'Bearer realm="khidma"'
    if error:
        value += f', error="{error}"'
    if description:
        value += ', error_description="' + description.replace('"', "'") + '"'
    return {"WWW-Authenticate": value}


def token_missing() -> Unauthenticated:
    return Unauthenticated(
        "token_missing",
        "Sign in first: this route needs a bearer token (Authorization: Bearer …).",
        "سجّل الدخول أولًا: هذا المسار يتطلب رمز وصول (Authorization: Bearer …).",
        _bearer_challenge(),
    )


def token_rejected(code: str, en: str, ar: str) -> Unauthenticated:
    return Unauthenticated(code, en, ar, _bearer_challenge("invalid_token", en))


def _invalid() -> Unauthenticated:
    return token_rejected(
        "token_invalid",
        "The token is not valid: sign in again.",
        "رمز الوصول غير صالح: سجّل الدخول من جديد.",
    )


def _expired() -> Unauthenticated:
    return token_rejected(
        "token_expired",
        "The token has expired: sign in again.",
        "انتهت صلاحية رمز الوصول: سجّل الدخول من جديد.",
    )


def _not_yet_valid() -> Unauthenticated:
    return token_rejected(
        "token_not_yet_valid",
        "The token is not valid yet (check the clocks).",
        "رمز الوصول لم يصبح صالحًا بعد (تحقق من الساعات).",
    )


def _bad_signature() -> Unauthenticated:
    return token_rejected(
        "token_bad_signature",
        "The token's signature does not verify with its issuer's keys.",
        "توقيع رمز الوصول لا يتحقق بمفاتيح الجهة المصدرة.",
    )


def _unknown_key() -> Unauthenticated:
    return token_rejected(
        "token_unknown_key",
        "The token was signed with a key its issuer does not publish (retired or unknown).",
        "وُقّع رمز الوصول بمفتاح لا تنشره الجهة المصدرة (موقوف أو غير معروف).",
    )


def _wrong_issuer() -> Unauthenticated:
    return token_rejected(
        "token_wrong_issuer",
        "The token comes from an issuer this service does not trust.",
        "رمز الوصول صادر عن جهة لا تثق بها هذه الخدمة.",
    )


def _wrong_audience() -> Unauthenticated:
    return token_rejected(
        "token_wrong_audience",
        "The token is meant for another audience, not this system.",
        "رمز الوصول موجّه إلى جهة أخرى، لا إلى هذا النظام.",
    )


def forbidden(roles: Iterable[str], association_id: str | None) -> Forbidden:
    needed = " or ".join(roles)
    needed_ar = " أو ".join(roles)
    where = f" in {association_id}" if association_id else " in any association"
    where_ar = f" في {association_id}" if association_id else " في أي جمعية"
    return Forbidden(
        "forbidden",
        f"This needs the role {needed}{where}, which the caller does not hold.",
        f"يتطلب هذا الدور {needed_ar}{where_ar}، ولا يحمله المستخدم.",
        _bearer_challenge("insufficient_scope"),
    )


def _jwks_unavailable(issuer: str) -> AuthUnavailable:
    return AuthUnavailable(
        "identity_provider_unavailable",
        f"The keys of the issuer {issuer} cannot be fetched now; try again shortly.",
        f"تعذّر جلب مفاتيح الجهة المصدرة {issuer} الآن؛ حاول بعد قليل.",
    )


# Where an issuer's keys are -------------------------------------------------------------


class JwksSource(Protocol):
    async def fetch(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class UrlJwks:
    url: str
    timeout: float = 5.0

    async def fetch(self) -> Mapping[str, Any]:
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            response = await client.get(self.url, headers={"Accept": "application/json"})
            response.raise_for_status()
            document: Mapping[str, Any] = response.json()
            return document


@dataclass(frozen=True)
class FileJwks:
    path: Path

    async def fetch(self) -> Mapping[str, Any]:
        document: Mapping[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        return document


@dataclass(frozen=True)
class StaticJwks:
    document: Mapping[str, Any]

    async def fetch(self) -> Mapping[str, Any]:
        return self.document


@dataclass(frozen=True)
class FunctionJwks:
    """Keys from a coroutine function: the identity service reads its own store."""

    function: Callable[[], Awaitable[Mapping[str, Any]]]

    async def fetch(self) -> Mapping[str, Any]:
        return await self.function()


# Settings ------------------------------------------------------------------------------


class IssuerSettings(BaseModel):
    """One trusted issuer. Exactly one of jwks_url, jwks_file, jwks."""

    issuer: str = Field(min_length=1)
    audience: str = Field(min_length=1)
    jwks_url: str | None = None
    jwks_file: Path | None = None
    jwks: dict[str, Any] | None = None
    roles_claim: str = "khidma_roles"
    kind_claim: str = "khidma_kind"
    name_claim: str = "name"
    algorithms: list[str] = Field(default_factory=lambda: list(ALLOWED_ALGORITHMS))

    @model_validator(mode="after")
    def _one_source(self) -> IssuerSettings:
        given = [s for s in (self.jwks_url, self.jwks_file, self.jwks) if s is not None]
        if len(given) != 1:
            raise ValueError(f"issuer {self.issuer}: give exactly one of jwks_url, jwks_file, jwks")
        unsafe = sorted(set(self.algorithms) - set(ALLOWED_ALGORITHMS))
        if unsafe or not self.algorithms:
            raise ValueError(f"issuer {self.issuer}: algorithms must be among {ALLOWED_ALGORITHMS}")
        return self

    def source(self) -> JwksSource:
        if self.jwks_url:
            return UrlJwks(self.jwks_url)
        if self.jwks_file:
            return FileJwks(self.jwks_file)
        assert self.jwks is not None
        return StaticJwks(self.jwks)


class AuthSettings(BaseSettings):
    """`KHIDMA_AUTH_*`: the issuer whose tokens a service accepts, and any others.

    `KHIDMA_AUTH_ISSUER`, `KHIDMA_AUTH_AUDIENCE`, `KHIDMA_AUTH_JWKS_URL` (or
    `_JWKS_FILE`), `KHIDMA_AUTH_ROLES_CLAIM`; more issuers as a JSON list in
    `KHIDMA_AUTH_EXTRA_ISSUERS` (each with the fields of IssuerSettings).
    """

    model_config = SettingsConfigDict(env_prefix="KHIDMA_AUTH_", extra="ignore")

    issuer: str | None = None
    audience: str = "khidma"
    jwks_url: str | None = None
    jwks_file: Path | None = None
    roles_claim: str = "khidma_roles"
    kind_claim: str = "khidma_kind"
    name_claim: str = "name"
    extra_issuers: list[IssuerSettings] = Field(default_factory=list)
    leeway_seconds: int = Field(default=30, ge=0, le=300)
    jwks_cache_seconds: float = Field(default=300.0, gt=0)
    jwks_min_refetch_seconds: float = Field(default=10.0, ge=0)

    @model_validator(mode="after")
    def _some_issuer(self) -> AuthSettings:
        if not self.issuer and not self.extra_issuers:
            raise ValueError("no trusted issuer: set KHIDMA_AUTH_ISSUER and its JWKS")
        if self.issuer and not (self.jwks_url or self.jwks_file):
            raise ValueError("KHIDMA_AUTH_ISSUER needs KHIDMA_AUTH_JWKS_URL or _JWKS_FILE")
        return self

    def issuers(self) -> list[IssuerSettings]:
        main = []
        if self.issuer:
            main.append(
                IssuerSettings(
                    issuer=self.issuer,
                    audience=self.audience,
                    jwks_url=self.jwks_url,
                    jwks_file=self.jwks_file if not self.jwks_url else None,
                    roles_claim=self.roles_claim,
                    kind_claim=self.kind_claim,
                    name_claim=self.name_claim,
                )
            )
        return [*main, *self.extra_issuers]


# The keys, cached --------------------------------------------------------------------


class KeyCache:
    """An issuer's JWKS, fetched once and kept `ttl` seconds; an unknown key id makes it
    fetch again, but not more often than every `min_refetch` seconds (a stream of
    made-up key ids must not hammer the issuer)."""

    def __init__(
        self,
        issuer: str,
        source: JwksSource,
        *,
        ttl: float = 300.0,
        min_refetch: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.issuer = issuer
        self.source = source
        self.ttl = ttl
        self.min_refetch = min_refetch
        self._monotonic = monotonic
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def _refresh(self) -> None:
        try:
            document = await self.source.fetch()
        except Exception as error:  # noqa: BLE001 — reported, and the cached keys still serve
            log.warning("JWKS of %s not fetched: %r", self.issuer, error)
            if not self._keys:
                raise _jwks_unavailable(self.issuer) from None
            return
        finally:
            self.fetches += 1
            self._fetched_at = self._monotonic()
        keys: dict[str | None, jwt.PyJWK] = {}
        for entry in document.get("keys", []):
            if entry.get("use", "sig") != "sig":
                continue
            try:
                key = jwt.PyJWK(dict(entry))
            except jwt.PyJWTError as error:  # an unusable key: skipped, the others serve
                log.warning("JWKS of %s: key %s skipped: %s", self.issuer, entry.get("kid"), error)
                continue
            keys[entry.get("kid")] = key
        self._keys = keys

    def _age(self) -> float:
        return float("inf") if self._fetched_at is None else self._monotonic() - self._fetched_at

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        async with self._lock:
            if self._age() > self.ttl or (
                kid not in self._keys and self._age() >= self.min_refetch
            ):
                await self._refresh()
            if kid is None and len(self._keys) == 1:
                return next(iter(self._keys.values()))
            return self._keys.get(kid)


# The verifier ----------------------------------------------------------------------------


def read_roles(value: Any) -> dict[str, frozenset[str]]:
    """The roles claim, `{association: [role, …]}` or `["association/role", …]`."""
    roles: dict[str, set[str]] = {}
    if isinstance(value, Mapping):
        for association_id, held in value.items():
            if isinstance(association_id, str) and isinstance(held, list):
                roles.setdefault(association_id, set()).update(
                    r for r in held if isinstance(r, str)
                )
    elif isinstance(value, list):
        for entry in value:
            if isinstance(entry, str):
                parts = entry.strip("/").split("/")
                if len(parts) == 2 and all(parts):
                    roles.setdefault(parts[0], set()).add(parts[1])
    return {association_id: frozenset(held) for association_id, held in roles.items()}


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by name, or by a dotted path into nested claims (`resource_access.khidma.roles`)."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


class Verifier:
    def __init__(
        self,
        issuers: Iterable[IssuerSettings],
        *,
        leeway_seconds: int = 30,
        jwks_cache_seconds: float = 300.0,
        jwks_min_refetch_seconds: float = 10.0,
        sources: Mapping[str, JwksSource] | None = None,
    ):
        """`sources` replaces the JWKS source of the issuers it names."""
        self.leeway = leeway_seconds
        self.issuers: dict[str, IssuerSettings] = {}
        self.caches: dict[str, KeyCache] = {}
        for settings in issuers:
            self.issuers[settings.issuer] = settings
            source = (sources or {}).get(settings.issuer) or settings.source()
            self.caches[settings.issuer] = KeyCache(
                settings.issuer,
                source,
                ttl=jwks_cache_seconds,
                min_refetch=jwks_min_refetch_seconds,
            )

    @classmethod
    def from_settings(
        cls, settings: AuthSettings, sources: Mapping[str, JwksSource] | None = None
    ) -> Verifier:
        return cls(
            settings.issuers(),
            leeway_seconds=settings.leeway_seconds,
            jwks_cache_seconds=settings.jwks_cache_seconds,
            jwks_min_refetch_seconds=settings.jwks_min_refetch_seconds,
            sources=sources,
        )

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _invalid() from None
        issuer = unverified.get("iss")
        settings = self.issuers.get(issuer) if isinstance(issuer, str) else None
        if settings is None:
            raise _wrong_issuer()
        algorithm = header.get("alg")
        if algorithm not in settings.algorithms:
            raise _invalid()
        kid = header.get("kid")
        key = await self.caches[settings.issuer].key(kid if isinstance(kid, str) else None)
        if key is None:
            raise _unknown_key()
        if key.algorithm_name != algorithm:
            raise _invalid()
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise _expired() from None
        except jwt.ImmatureSignatureError:
            raise _not_yet_valid() from None
        except jwt.InvalidAudienceError:
            raise _wrong_audience() from None
        except jwt.InvalidIssuerError:
            raise _wrong_issuer() from None
        except jwt.InvalidSignatureError:
            raise _bad_signature() from None
        except jwt.PyJWTError:
            raise _invalid() from None
        return self._principal(settings, claims)

    @staticmethod
    def _principal(settings: IssuerSettings, claims: Mapping[str, Any]) -> Principal:
        kind_claim = claims.get(settings.kind_claim)
        kind: Kind
        if kind_claim in ("human", "machine"):
            kind = kind_claim
        else:
            # An external issuer without the claim: a client-credentials token
            # names its client (Keycloak's `client_id`); a person's does not.
            kind = "machine" if "client_id" in claims else "human"
        subject = str(claims["sub"])
        name = _claim(claims, settings.name_claim) or claims.get("preferred_username") or subject
        jti = claims.get("jti")
        return Principal(
            subject=subject,
            name=str(name),
            kind=kind,
            roles=read_roles(_claim(claims, settings.roles_claim)),
            issuer=settings.issuer,
            token_id=str(jti) if jti is not None else None,
            claims=dict(claims),
        )


# FastAPI -----------------------------------------------------------------------------

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="JWT",
    description="An OAuth2 access token (JWT) from a trusted issuer: "
    "`Authorization: Bearer <token>`.",
)


def install(api: FastAPI, verifier: Verifier) -> None:
    """Puts the verifier on the app (the HTTP edge answers its refusals)."""
    api.state.verifier = verifier


def verifier_from_environment() -> Verifier:
    """The verifier of the issuers `KHIDMA_AUTH_*` names; a service without one
    does not start (every route but the operations ones needs a token)."""
    from shared.settings import load_settings

    return Verifier.from_settings(load_settings(AuthSettings))


def verifier_of(request: Request) -> Verifier:
    verifier: Verifier | None = getattr(request.app.state, "verifier", None)
    if verifier is None:
        raise RuntimeError("no verifier: call shared.auth.install(app, verifier) at assembly")
    return verifier


async def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """The caller, from a valid bearer token (any roles)."""
    if credentials is None or not credentials.credentials:
        raise token_missing()
    return await verifier_of(request).verify(credentials.credentials)


def _refuse_an_unserved_association(
    request: Request, principal: Principal, roles: Iterable[str], association_id: str
) -> None:
    """A caller who holds the role somewhere learns that an association is not served
    (404) rather than that they lack a role in it; anyone else learns nothing (403)."""
    served: frozenset[str] | None = getattr(request.app.state, "associations", None)
    if served is None or association_id in served:
        return
    if any(principal.associations_with(role) for role in roles):
        raise association_not_served(association_id)


def require(
    *roles: str, association: str | None = "association_id"
) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller, who must hold one of the roles.

    In the association named by the route's path or query parameter
    `association` when the route has one; otherwise in at least one association
    (the route then narrows what it returns to `principal.associations_with(role)`,
    or checks a body's association with `principal.require`).
    """
    if not roles:
        raise ValueError("require() needs at least one role")

    async def dependency(
        request: Request, principal: Annotated[Principal, Depends(authenticated)]
    ) -> Principal:
        association_id = None
        if association:
            association_id = request.path_params.get(association) or request.query_params.get(
                association
            )
        if association_id is not None:
            _refuse_an_unserved_association(request, principal, roles, str(association_id))
            principal.require(*roles, association_id=str(association_id))
        elif not any(principal.associations_with(role) for role in roles):
            raise forbidden(roles, None)
        return principal

    return dependency
