"""The privacy service's HTTP API: erasure requests and legal holds, for the privacy
officer of the association in the path.

The national id in an erasure request only finds the data subject (its keyed
blind index); it is neither stored nor logged nor answered back. Every command
records its caller (`Principal.actor`) as the actor, never a body field.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI
from pydantic import ConfigDict, Field

from services.privacy.application import PrivacyApplication
from services.privacy.views import CASES, ERASURES
from shared.auth import Principal, require
from shared.errors import NotFound
from shared.http import Page, runtime_of
from shared.roles import PRIVACY_OFFICER
from shared.runtime import ServiceRuntime
from shared.submissions import FromOutside

PrivacyRuntime = Annotated[ServiceRuntime[PrivacyApplication], Depends(runtime_of)]
# The association is the path's: `require` checks the role is held there.
PrivacyOfficer = Annotated[Principal, Depends(require(PRIVACY_OFFICER))]

# Empty texts are refused by the domain, with a stable code in both languages.
Text = Annotated[str, Field(default="", max_length=4000)]


class ErasureRequest(FromOutside):
    model_config = ConfigDict(extra="forbid")

    national_id: str = Field(default="", max_length=20)
    reason: Text
    legal_basis: Text


class HoldChange(FromOutside):
    model_config = ConfigDict(extra="forbid")

    reason: Text


router = APIRouter(tags=["privacy"])


@router.post("/associations/{association_id}/erasures", status_code=201)
async def request_erasure(
    association_id: str, body: ErasureRequest, runtime: PrivacyRuntime, principal: PrivacyOfficer
) -> dict[str, Any]:
    """Erases a person's personal data (crypto-shredding): records the request, with
    its reason and legal basis, then destroys the person's keys. 409 `legal_hold`
    while a case of theirs is under a legal hold."""
    done = await runtime.store.run(
        lambda: runtime.app.request_erasure(
            association_id,
            national_id=body.national_id,
            reason=body.reason,
            legal_basis=body.legal_basis,
            actor=principal.actor(PRIVACY_OFFICER),
        )
    )
    runtime.recorded()
    return done


@router.get("/associations/{association_id}/erasures")
async def list_erasures(
    association_id: str,
    runtime: PrivacyRuntime,
    principal: PrivacyOfficer,
    page: Page,
) -> list[dict[str, Any]]:
    """The association's erasures, the oldest first: why, on what basis, by whom, and
    the ids of the keys destroyed."""
    assert runtime.views is not None
    return runtime.views.find(
        ERASURES, limit=page.limit, offset=page.offset, association_id=association_id
    )


@router.get("/associations/{association_id}/erasures/{erasure_id}")
async def one_erasure(
    association_id: str, erasure_id: UUID, runtime: PrivacyRuntime, principal: PrivacyOfficer
) -> dict[str, Any]:
    assert runtime.views is not None
    doc = runtime.views.get(ERASURES, str(erasure_id))
    if doc is None or doc["association_id"] != association_id:
        raise NotFound(
            "erasure_not_found",
            f"No erasure {erasure_id} in this association (it may take a moment to appear).",
            f"لا يوجد محو {erasure_id} في هذه الجمعية (قد يستغرق ظهوره لحظات).",
        )
    return doc


@router.post("/associations/{association_id}/cases/{case_id}/hold")
async def place_hold(
    association_id: str,
    case_id: UUID,
    body: HoldChange,
    runtime: PrivacyRuntime,
    principal: PrivacyOfficer,
) -> dict[str, Any]:
    """Places a legal hold on a case: its applicant's data is kept from erasure
    (requested or for retention) until the hold is released."""
    done = await runtime.store.run(
        lambda: runtime.app.place_hold(
            association_id, case_id, reason=body.reason, actor=principal.actor(PRIVACY_OFFICER)
        )
    )
    runtime.recorded()
    return done


@router.post("/associations/{association_id}/cases/{case_id}/hold/release")
async def release_hold(
    association_id: str,
    case_id: UUID,
    body: HoldChange,
    runtime: PrivacyRuntime,
    principal: PrivacyOfficer,
) -> dict[str, Any]:
    done = await runtime.store.run(
        lambda: runtime.app.release_hold(
            association_id, case_id, reason=body.reason, actor=principal.actor(PRIVACY_OFFICER)
        )
    )
    runtime.recorded()
    return done


@router.get("/associations/{association_id}/holds")
async def list_holds(
    association_id: str,
    runtime: PrivacyRuntime,
    principal: PrivacyOfficer,
    page: Page,
) -> list[dict[str, Any]]:
    """The association's cases under a legal hold."""
    assert runtime.views is not None
    return runtime.views.find(
        CASES, limit=page.limit, offset=page.offset, association_id=association_id, held=True
    )


def include(api: FastAPI) -> None:
    api.include_router(router)
