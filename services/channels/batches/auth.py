"""Bearer tokens at the channels service's own edge (the upload, the JSON endpoint):
verified with the issuers of `KHIDMA_AUTH_*`, as every service's edge is.

The verifier is built once, on first use, unless the app was given one
(`shared.auth.install`); without a trusted issuer configured the caller is told
the service cannot verify anyone (503), never let through.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials

from shared.auth import (
    AuthSettings,
    AuthUnavailable,
    Principal,
    Verifier,
    bearer_scheme,
    token_missing,
)

log = logging.getLogger(__name__)


def _no_issuer() -> AuthUnavailable:
    return AuthUnavailable(
        "identity_provider_unconfigured",
        "This service trusts no issuer yet (KHIDMA_AUTH_ISSUER): nobody can be verified.",
        "لا تثق هذه الخدمة بأي جهة مصدرة بعد (KHIDMA_AUTH_ISSUER): لا يمكن التحقق من أحد.",
    )


def verifier_for(app: FastAPI) -> Verifier:
    found: Verifier | None = getattr(app.state, "verifier", None)
    if found is None:
        try:
            settings = AuthSettings()
        except ValueError as error:
            log.error("channels: no trusted issuer configured (KHIDMA_AUTH_*): %s", error)
            raise _no_issuer() from None
        found = Verifier.from_settings(settings)
        app.state.verifier = found
    return found


@dataclass(frozen=True)
class Verified:
    """The caller and its bearer token, which intake is handed in turn: intake then
    records this caller (the representative, the other system) as the actor."""

    principal: Principal
    token: str


async def verified_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Verified:
    """The verified caller (401 without a valid bearer token)."""
    if credentials is None or not credentials.credentials:
        raise token_missing()
    principal = await verifier_for(request.app).verify(credentials.credentials)
    return Verified(principal, credentials.credentials)


VerifiedCaller = Annotated[Verified, Depends(verified_caller)]
