"""Verification's HTTP API: the officers' queue and their confirmations."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from services.verification.application import VerificationApplication
from services.verification.domain import OFFICER_MAX_LENGTH
from services.verification.views import VERIFICATIONS
from shared.errors import NotFound
from shared.runtime import ServiceRuntime

Outcome = Literal["verified", "discrepancies", "ineligible"]
Status = Literal["pending", "confirmed"]


class Confirmation(BaseModel):
    # A misspelt field (say "outcom") must not silently confirm the suggestion.
    model_config = ConfigDict(extra="forbid")

    officer: str = Field(min_length=1, max_length=OFFICER_MAX_LENGTH)
    outcome: Outcome | None = None
    reason: str | None = Field(default=None, max_length=2000)


def runtime_of(request: Request) -> ServiceRuntime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def build_router() -> APIRouter:
    router = APIRouter()

    @router.get("/verifications")
    async def list_verifications(
        status: Status | None = None,
        limit: int = Query(default=100, ge=1, le=1000),
        offset: int = Query(default=0, ge=0),
        runtime: ServiceRuntime = Depends(runtime_of),
    ) -> list[dict[str, Any]]:
        """The verifications as the read model holds them, oldest submission first."""
        assert runtime.views is not None
        filters = {"status": status} if status else {}
        return runtime.views.find(VERIFICATIONS, limit=limit, offset=offset, **filters)

    @router.get("/verifications/{case_id}")
    async def get_verification(
        case_id: UUID, runtime: ServiceRuntime = Depends(runtime_of)
    ) -> dict[str, Any]:
        assert runtime.views is not None
        doc = runtime.views.get(VERIFICATIONS, str(case_id))
        if doc is None:
            raise NotFound(
                "verification_not_found",
                f"No verification for request {case_id} (it may take a moment to appear).",
                f"لا يوجد تحقق للطلب {case_id} (قد يستغرق ظهوره لحظات).",
            )
        return doc

    @router.post("/verifications/{case_id}/confirmation", status_code=202)
    async def confirm(
        case_id: UUID,
        confirmation: Confirmation,
        runtime: ServiceRuntime = Depends(runtime_of),
    ) -> dict[str, str]:
        app: VerificationApplication = runtime.app  # type: ignore[assignment]
        outcome = await runtime.store.run(
            lambda: app.confirm(case_id, **confirmation.model_dump())
        )
        runtime.recorded()
        return {"case_id": str(case_id), "outcome": outcome}

    return router


def include(api: FastAPI) -> None:
    api.include_router(build_router())
