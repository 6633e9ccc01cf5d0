"""The access tokens the identity service issues: JWTs signed with the active key.

Claims: `iss`, `aud`, `sub` (the user's or client's id in this store), `exp`,
`nbf`, `iat`, `jti`, `name` (display name), `preferred_username` or
`client_id`, the kind (`human` or `machine`) and the roles claim, shaped
`{"<association_id>": ["role", …]}`; a machine client's lists hold its channels
as `channel:<name>` (docs/decisions.md). The header names the key (`kid`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import uuid4

import jwt

from services.identity.keys import PrivateKey
from shared.errors import Refused

Kind = Literal["human", "machine"]


@dataclass(frozen=True)
class TokenPolicy:
    issuer: str
    audience: str
    lifetime_seconds: int = 900
    roles_claim: str = "khidma_roles"
    kind_claim: str = "khidma_kind"


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    token_id: str

    def response(self) -> dict[str, Any]:
        """The token response of RFC 6749 section 5.1."""
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }


def sign(
    policy: TokenPolicy,
    key: PrivateKey,
    *,
    subject: str,
    name: str,
    kind: Kind,
    roles: dict[str, list[str]],
    now: datetime,
    extra: dict[str, Any] | None = None,
) -> IssuedToken:
    issued = int(now.timestamp())
    token_id = uuid4().hex
    claims: dict[str, Any] = {
        "iss": policy.issuer,
        "aud": policy.audience,
        "sub": subject,
        "iat": issued,
        "nbf": issued,
        "exp": int((now + timedelta(seconds=policy.lifetime_seconds)).timestamp()),
        "jti": token_id,
        "name": name,
        policy.kind_claim: kind,
        policy.roles_claim: roles,
        **(extra or {}),
    }
    token = jwt.encode(
        claims,
        key.key,  # type: ignore[arg-type]  # PyJWT's AllowedPrivateKeys is narrower than PrivateKeyTypes; keys.generate makes only EC and RSA keys
        algorithm=key.algorithm,
        headers={"kid": key.kid, "typ": "at+jwt"},
    )
    return IssuedToken(token, policy.lifetime_seconds, token_id)


class OAuthError(Refused):
    """A token request refused with an RFC 6749 section 5.2 error code.

    `error` is the protocol's code (`invalid_grant`, …), `code` the stable
    Khidma reason beside it, the texts the bilingual message.
    """

    status = 400

    def __init__(self, error: str, code: str, en: str, ar: str):
        super().__init__(code, en, ar)
        self.error = error

    def response_body(self) -> dict[str, Any]:
        return {
            "error": self.error,
            "error_description": self.en,
            "reason": self.code,
            "message": {"en": self.en, "ar": self.ar},
        }


class InvalidClient(OAuthError):
    status = 401


def invalid_grant() -> OAuthError:
    return OAuthError(
        "invalid_grant",
        "wrong_credentials",
        "The user name or the password is wrong.",
        "اسم المستخدم أو كلمة المرور غير صحيحة.",
    )


def account_disabled() -> OAuthError:
    return OAuthError(
        "invalid_grant",
        "account_disabled",
        "This account is disabled; ask an administrator.",
        "هذا الحساب معطّل؛ راجع المسؤول.",
    )


def password_change_required() -> OAuthError:
    return OAuthError(
        "invalid_grant",
        "password_change_required",
        "This is a one-time password: choose your own first (POST /account/password), "
        "then sign in with it.",
        "هذه كلمة مرور لمرة واحدة: اختر كلمة مرورك أولًا (POST /account/password) "
        "ثم سجّل الدخول بها.",
    )


def invalid_client() -> InvalidClient:
    return InvalidClient(
        "invalid_client",
        "wrong_client_credentials",
        "The client is unknown, disabled, or its secret is wrong.",
        "العميل غير معروف أو معطّل، أو سرّه غير صحيح.",
    )


def invalid_request(en: str, ar: str) -> OAuthError:
    return OAuthError("invalid_request", "invalid_token_request", en, ar)


def unsupported_grant_type(grant_type: str) -> OAuthError:
    return OAuthError(
        "unsupported_grant_type",
        "unsupported_grant_type",
        f"The grant type {grant_type!r} is not supported: use password or client_credentials.",
        f"نوع المنح {grant_type!r} غير مدعوم: استخدم password أو client_credentials.",
    )
