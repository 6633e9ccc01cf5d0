"""Surveys' HTTP API: the applicant's answer, the invitations, and the results."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Path
from pydantic import BaseModel, ConfigDict, Field

from services.surveys.application import SurveysApplication
from services.surveys.domain import MINIMUM_GROUP_SIZE, group_results, survey_not_found
from services.surveys.views import DIMENSIONS, RESULTS, SURVEYS, TOKENS, tallies
from shared.errors import NotFound
from shared.events import Ratings
from shared.runtime import ServiceRuntime, runtime_of

RESULTS_NOTE = {
    "en": (
        f"Groups with fewer than {MINIMUM_GROUP_SIZE} answers are suppressed. "
        "The results are for improving the service, never for judging staff."
    ),
    "ar": (
        f"لا تُعرض المجموعات التي تقل إجاباتها عن {MINIMUM_GROUP_SIZE}. "
        "النتائج لتحسين الخدمة، وليست لمحاسبة الموظفين."
    ),
}


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ratings: Ratings
    comment: str | None = Field(default=None, max_length=4000)
    anonymous: bool = True


def build_router() -> APIRouter:
    router = APIRouter()

    @router.post("/surveys/{token}/answers", status_code=202)
    async def answer_survey(
        body: Answer,
        token: str = Path(min_length=1, max_length=128),
        runtime: ServiceRuntime = Depends(runtime_of),
    ) -> dict[str, str]:
        """The applicant's answer; the token of the invitation works once."""
        assert runtime.views is not None
        found = runtime.views.get(TOKENS, token)
        if found is None:
            raise survey_not_found()
        case_id = UUID(found["case_id"])
        app: SurveysApplication = runtime.app  # type: ignore[assignment]
        await runtime.store.run(
            lambda: app.answer(
                case_id,
                token=token,
                ratings=body.ratings,
                comment=body.comment,
                anonymous=body.anonymous,
            )
        )
        runtime.recorded()
        return {"case_id": str(case_id), "status": "answered"}

    @router.get("/surveys/{token}")
    async def the_survey(
        token: str = Path(min_length=1, max_length=128),
        runtime: ServiceRuntime = Depends(runtime_of),
    ) -> dict[str, Any]:
        """The survey as the applicant sees it; 410 once answered, 404 for an unknown link."""
        assert runtime.views is not None
        found = runtime.views.get(TOKENS, token)
        if found is None:
            raise survey_not_found()
        app: SurveysApplication = runtime.app  # type: ignore[assignment]
        return await runtime.store.run(app.survey_for, UUID(found["case_id"]), token)

    @router.get("/surveys/by-case/{case_id}")
    async def by_case(
        case_id: UUID, runtime: ServiceRuntime = Depends(runtime_of)
    ) -> dict[str, Any]:
        """The invitation of a case, with its token, once the applicant was invited."""
        assert runtime.views is not None
        doc = runtime.views.get(SURVEYS, str(case_id))
        if doc is None:
            raise NotFound(
                "survey_not_invited",
                f"No survey invitation for request {case_id} yet "
                "(it may take a moment to appear).",
                f"لا توجد دعوة استبيان للطلب {case_id} بعد (قد يستغرق ظهورها لحظات).",
            )
        return doc

    @router.get("/surveys")
    async def list_surveys(
        answered: bool | None = None,
        limit: int = 100,
        offset: int = 0,
        runtime: ServiceRuntime = Depends(runtime_of),
    ) -> list[dict[str, Any]]:
        assert runtime.views is not None
        filters = {} if answered is None else {"answered": answered}
        return runtime.views.find(
            SURVEYS, limit=max(0, min(limit, 1000)), offset=max(0, offset), **filters
        )

    @router.get("/results")
    async def results(
        association_id: str | None = None, runtime: ServiceRuntime = Depends(runtime_of)
    ) -> dict[str, Any]:
        """Answers and average satisfaction by service, channel, stage and association.

        Never by officer; a group with fewer than five answers is suppressed.
        """
        assert runtime.views is not None
        docs = [
            doc
            for doc in runtime.views.iter_all(RESULTS)
            if association_id is None or doc["association_id"] == association_id
        ]
        report: dict[str, Any] = {
            "association_id": association_id,
            "minimum_answers": MINIMUM_GROUP_SIZE,
            "note": RESULTS_NOTE,
        }
        for dimension in DIMENSIONS:
            report[f"by_{dimension}"] = group_results(dimension, tallies(docs, dimension))
        return report

    return router


def include(api: FastAPI) -> None:
    api.include_router(build_router())
