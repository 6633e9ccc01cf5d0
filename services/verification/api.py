"""Verification's HTTP API: the officers' queue, the case file and their confirmations.

Every route needs a bearer token (shared/auth.py): the verifier works the queue
of the associations where they hold the role, reads a case file beside its
checks (every read logged) and confirms; the auditor reads verifications; the
administrator keeps the member registry. The recorded officer of a
confirmation, and the actor of a registry change, is the caller, never a field
of the body.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import ConfigDict, Field

from services.verification.application import VerificationApplication
from services.verification.domain import OFFICER_MAX_LENGTH
from services.verification.members import InvalidRegistry
from services.verification.views import VERIFICATIONS
from shared.auth import Principal, require
from shared.errors import NotFound
from shared.http import Page, runtime_of
from shared.roles import ADMIN, AUDITOR, VERIFIER
from shared.runtime import ServiceRuntime
from shared.submissions import FromOutside

# Every route reaches verification's runtime, its application typed, through this.
VerificationRuntime = Annotated[ServiceRuntime[VerificationApplication], Depends(runtime_of)]
# Who may call: each route names the roles it needs (shared/roles.py).
Verifier = Annotated[Principal, Depends(require(VERIFIER))]
VerifierOrAuditor = Annotated[Principal, Depends(require(VERIFIER, AUDITOR))]
Admin = Annotated[Principal, Depends(require(ADMIN))]
AdminOrVerifier = Annotated[Principal, Depends(require(ADMIN, VERIFIER))]

Outcome = Literal["verified", "discrepancies", "ineligible"]
Status = Literal["pending", "confirmed"]


class Confirmation(FromOutside):
    # A misspelt field (say "outcom") must not silently confirm the suggestion.
    model_config = ConfigDict(extra="forbid")

    officer: str | None = Field(
        default=None,
        max_length=OFFICER_MAX_LENGTH,
        description="ignored: the officer recorded is the signed-in verifier",
    )
    outcome: Outcome | None = None
    reason: str | None = Field(default=None, max_length=2000)
    revision: int | None = Field(
        default=None,
        ge=1,
        description="the revision of the request the officer reviewed; refused (409 "
        "revision_changed) when a corrected revision arrived meanwhile",
    )


class MemberEntry(FromOutside):
    """One line of the member registry, for a single member: dates YYYY-MM-DD, or
    YYYY-MM-DDh for a Hijri date (Umm al-Qura), each one that can be real (422 otherwise)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    joined_on: str
    status: Literal["good", "suspended", "left"]
    status_since: str


router = APIRouter()


@router.get("/verifications")
async def list_verifications(
    runtime: VerificationRuntime,
    principal: Verifier,
    page: Page,
    status: Status | None = None,
    association_id: str | None = Query(default=None, min_length=1, max_length=32),
    case_ref: str | None = Query(default=None, min_length=1, max_length=40),
) -> list[dict[str, Any]]:
    """The verifications of the associations where the caller verifies (or of the one
    asked, where they must verify), as the read model holds them, oldest submission
    first; `case_ref` finds one case by its reference."""
    assert runtime.views is not None
    filters: dict[str, Any] = {
        "association_id": principal.associations_listed((VERIFIER,), association_id)
    }
    if status:
        filters["status"] = status
    if case_ref:
        filters["case_ref"] = case_ref.strip().upper()
    return runtime.views.find(VERIFICATIONS, limit=page.limit, offset=page.offset, **filters)


@router.get("/verifications/{case_id}")
async def get_verification(
    case_id: UUID, runtime: VerificationRuntime, principal: VerifierOrAuditor
) -> dict[str, Any]:
    """The current round (the request's latest revision) and the earlier rounds."""
    assert runtime.views is not None
    doc = runtime.views.get(VERIFICATIONS, str(case_id))
    if doc is None:
        raise NotFound(
            "verification_not_found",
            f"No verification for request {case_id} (it may take a moment to appear).",
            f"لا يوجد تحقق للطلب {case_id} (قد يستغرق ظهوره لحظات).",
        )
    principal.require(VERIFIER, AUDITOR, association_id=doc["association_id"])
    return doc


@router.get("/verifications/{case_id}/file")
async def get_case_file(
    case_id: UUID, runtime: VerificationRuntime, principal: Verifier
) -> dict[str, Any]:
    """The case file beside the automatic checks, for the verifier to match the data
    (policy step 2): each revision's applicant, attestation, fields and documents as
    received, the checks run on them and how the round was confirmed. Every read is
    logged (shared/access_log.py)."""

    def read() -> dict[str, Any]:
        role = principal.require(VERIFIER, association_id=runtime.app.association_of(case_id))
        return runtime.app.case_file_read_by(principal.actor(role), case_id)

    case_file = await runtime.store.run(read)
    runtime.recorded()
    return case_file


@router.post("/verifications/{case_id}/confirmation", status_code=202)
async def confirm(
    case_id: UUID,
    confirmation: Confirmation,
    runtime: VerificationRuntime,
    principal: Verifier,
) -> dict[str, str]:
    """Confirms the current round's outcome (or overrides it, with a reason), in the
    name of the signed-in verifier of the case's association."""
    association_id = await runtime.store.run(runtime.app.association_of, case_id)
    role = principal.require(VERIFIER, association_id=association_id)
    outcome = await runtime.store.run(
        lambda: runtime.app.confirm(
            case_id,
            officer=principal.username,
            actor=principal.actor(role),
            outcome=confirmation.outcome,
            reason=confirmation.reason,
            revision=confirmation.revision,
        )
    )
    runtime.recorded()
    return {"case_id": str(case_id), "outcome": outcome}


@router.post("/members/import")
async def import_members(
    request: Request,
    runtime: VerificationRuntime,
    principal: Admin,
    association_id: str = Query(min_length=1, max_length=32),
) -> dict[str, Any]:
    """Imports a member registry CSV (national_id,name,joined_on,status,status_since)."""
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRegistry(
            "registry_not_utf8",
            "The member registry must be a CSV file encoded in UTF-8.",
            "يجب أن يكون سجل الأعضاء ملف CSV بترميز UTF-8.",
        ) from None
    report = await runtime.store.run(
        runtime.app.import_members, association_id, text, principal.actor(ADMIN)
    )
    runtime.recorded()
    return report


@router.put("/members/{association_id}/{national_id}")
async def register_member(
    association_id: str,
    national_id: str,
    entry: MemberEntry,
    runtime: VerificationRuntime,
    principal: Admin,
) -> dict[str, Any]:
    """Registers one member, or records a change of their standing from its date, in
    the name of the signed-in administrator."""
    shown = await runtime.store.run(
        lambda: runtime.app.register_member(
            association_id, national_id.strip(), actor=principal.actor(ADMIN), **entry.model_dump()
        )
    )
    runtime.recorded()
    return shown


@router.get("/members/{association_id}/{national_id}")
async def get_member(
    association_id: str,
    national_id: str,
    runtime: VerificationRuntime,
    principal: AdminOrVerifier,
) -> dict[str, Any]:
    """A member's standing and its history, each date in both calendars; the read is
    logged (shared/access_log.py)."""
    role = principal.require(ADMIN, VERIFIER, association_id=association_id)
    return await runtime.store.run(
        runtime.app.member_read_by, principal.actor(role), association_id, national_id.strip()
    )


def include(api: FastAPI) -> None:
    api.include_router(router)
