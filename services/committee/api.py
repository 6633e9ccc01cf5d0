"""The committee's HTTP API: the researcher's queue and closures, the agenda and decisions."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from services.committee.application import CommitteeApplication
from services.committee.views import CASES
from shared.errors import NotFound
from shared.events import Vote
from shared.runtime import ServiceRuntime

Text = Annotated[str, Field(min_length=1, max_length=2000)]


class Closure(BaseModel):
    """The researcher's answers to the referred applicant, and the note for the committee."""

    model_config = ConfigDict(extra="forbid")

    researcher: str = Field(min_length=1, max_length=200)
    answers: list[Text] = Field(default_factory=list)
    note: str = Field(default="", max_length=8000)


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approved", "rejected"]
    reasons: list[Text] = Field(min_length=1)
    votes: list[Vote] = Field(min_length=1)


def runtime_of(request: Request) -> ServiceRuntime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def build_router() -> APIRouter:
    router = APIRouter()

    @router.get("/agenda")
    async def agenda(
        limit: int = 100, offset: int = 0, runtime: ServiceRuntime = Depends(runtime_of)
    ) -> list[dict[str, Any]]:
        """Verified cases waiting for a decision, the nearest deadline first."""
        assert runtime.views is not None
        return runtime.views.find(
            CASES, limit=min(limit, 1000), offset=offset, on_agenda=True
        )

    @router.get("/researcher/queue")
    async def researcher_queue(
        limit: int = 100, offset: int = 0, runtime: ServiceRuntime = Depends(runtime_of)
    ) -> list[dict[str, Any]]:
        """Cases with a referral the researcher has not closed, the nearest deadline first."""
        assert runtime.views is not None
        return runtime.views.find(
            CASES, limit=min(limit, 1000), offset=offset, referral_open=True
        )

    @router.get("/cases/{case_id}")
    async def case(case_id: str, runtime: ServiceRuntime = Depends(runtime_of)) -> dict[str, Any]:
        assert runtime.views is not None
        doc = runtime.views.get(CASES, case_id)
        if doc is None:
            raise NotFound(
                "case_not_found",
                f"No request {case_id} at the committee (it may take a moment to appear).",
                f"لا يوجد طلب {case_id} لدى اللجنة (قد يستغرق ظهوره لحظات).",
            )
        return doc

    @router.post("/referrals/{case_id}/closure", status_code=202)
    async def close_referral(
        case_id: UUID, closure: Closure, runtime: ServiceRuntime = Depends(runtime_of)
    ) -> dict[str, str]:
        app: CommitteeApplication = runtime.app  # type: ignore[assignment]
        await runtime.store.run(lambda: app.close_referral(case_id, **closure.model_dump()))
        runtime.recorded()
        return {"case_id": str(case_id), "referral": "closed"}

    @router.post("/cases/{case_id}/decision", status_code=202)
    async def decide(
        case_id: UUID, decision: Decision, runtime: ServiceRuntime = Depends(runtime_of)
    ) -> dict[str, Any]:
        app: CommitteeApplication = runtime.app  # type: ignore[assignment]
        result = await runtime.store.run(
            lambda: app.decide(case_id, **decision.model_dump(mode="json"))
        )
        runtime.recorded()
        return result

    return router


def include(api: FastAPI) -> None:
    api.include_router(build_router())
