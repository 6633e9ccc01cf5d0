"""Who may do what at intake (docs: README, "Who may call what").

- A submission comes from a channel adapter (a machine client holding
  `channel:<channel>` in the association), or from the front desk there (staff
  entering an interview, a phone call, a letter or a visit to the branch), over
  HTTP or over NATS request/reply with the same token.
- Information and corrections come from the front desk of the case's
  association, or from the applicant with the case's secret code (`X-Case-Code`).
- The staff who read cases: the front desk, the verifier, the researcher, the
  committee and the auditor, each in their own associations.

The recorded actor is always the caller (`Principal.actor`), or the applicant
who gave the right code; never a field of a body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials

from shared.auth import (
    Principal,
    Unauthenticated,
    bearer_scheme,
    forbidden,
    require,
    token_missing,
    verifier_of,
)
from shared.roles import (
    AUDITOR,
    CHANNEL_ROLE_PREFIX,
    COMMITTEE_CHAIR,
    COMMITTEE_MEMBER,
    FRONT_DESK,
    RESEARCHER,
    VERIFIER,
    channel_role,
)

# Who reads cases (the read model's view of a case, the list, the case file).
CASE_READERS: tuple[str, ...] = (
    FRONT_DESK,
    VERIFIER,
    RESEARCHER,
    COMMITTEE_MEMBER,
    COMMITTEE_CHAIR,
    AUDITOR,
)

# The applicant, when they act with their secret code: they have no account.
APPLICANT_ACTOR: dict[str, str] = {"kind": "applicant", "id": "applicant"}

CASE_CODE_HEADER = "X-Case-Code"

# The applicant's way in, beside the bearer token: the OpenAPI documents show it as
# a security scheme of its own (either one will do where both are listed).
case_code_scheme = APIKeyHeader(
    name=CASE_CODE_HEADER,
    scheme_name="caseCode",
    auto_error=False,
    description="The secret code the applicant was given, once, when they applied "
    "(with the request's reference or id).",
)
CaseCode = Annotated[str | None, Depends(case_code_scheme)]


def submitting_role(principal: Principal, association_id: str, channel: str) -> str:
    """The role the caller submits in: the channel's (an adapter), else the front
    desk's; refused (403) with neither in the association."""
    return principal.require(channel_role(channel), FRONT_DESK, association_id=association_id)


def may_submit_somewhere(principal: Principal) -> bool:
    return any(
        role == FRONT_DESK or role.startswith(CHANNEL_ROLE_PREFIX)
        for held in principal.roles.values()
        for role in held
    )


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


async def _submitter(request: Request, credentials: Credentials) -> Principal:
    """A caller who may submit somewhere (the body names the association, checked
    once the body is read)."""
    principal = await _verified(request, credentials)
    if principal is None:
        raise token_missing()
    if not may_submit_somewhere(principal):
        raise forbidden((FRONT_DESK, "channel:<channel>"), None)
    return principal


async def _verified(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> Principal | None:
    if credentials is None or not credentials.credentials:
        return None
    return await verifier_of(request).verify(credentials.credentials)


@dataclass(frozen=True)
class CaseCaller:
    """Who acts on a case: a verified officer, or whoever holds the case's code."""

    principal: Principal | None
    code: str | None


def _no_token_nor_code() -> Unauthenticated:
    return Unauthenticated(
        "token_missing",
        "Sign in (Authorization: Bearer …), or give the request's secret code "
        f"({CASE_CODE_HEADER}) you were given when you applied.",
        "سجّل الدخول (Authorization: Bearer …)، أو أرسل الرمز السري للطلب "
        f"({CASE_CODE_HEADER}) الذي أُعطيته عند التقديم.",
        {"WWW-Authenticate": 'Bearer realm="khidma"'},
    )


async def _officer_or_applicant(
    request: Request, credentials: Credentials, code: CaseCode = None
) -> CaseCaller:
    """A token, when one is sent, decides (a front-desk officer, in some association
    for now; the case's own is checked once it is loaded); without one, the code."""
    principal = await _verified(request, credentials)
    if principal is not None:
        if not principal.associations_with(FRONT_DESK):
            raise forbidden((FRONT_DESK,), None)
        return CaseCaller(principal, None)
    if code:
        return CaseCaller(None, code)
    raise _no_token_nor_code()


# The dependencies the routes declare.
Submitter = Annotated[Principal, Depends(_submitter)]
OfficerOrApplicant = Annotated[CaseCaller, Depends(_officer_or_applicant)]
CaseReader = Annotated[Principal, Depends(require(*CASE_READERS, association=None))]
CaseLister = Annotated[Principal, Depends(require(*CASE_READERS))]
FrontDeskOnCase = Annotated[Principal, Depends(require(FRONT_DESK, association=None))]
