"""Surveys' HTTP API: the applicant's answer, the invitations, and the results."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Path
from pydantic import ConfigDict, Field

from services.surveys.application import SurveysApplication
from services.surveys.domain import MINIMUM_GROUP_SIZE, group_results, survey_not_found
from services.surveys.views import DIMENSIONS, RESULTS, SURVEYS, TOKENS, tallies
from shared.auth import Principal, require
from shared.errors import NotFound
from shared.events import Ratings
from shared.http import Page, runtime_of
from shared.limits import LIMITED, RateLimited
from shared.roles import AUDITOR, SURVEYS_OFFICER
from shared.runtime import ServiceRuntime
from shared.submissions import FromOutside

# Every route reaches surveys' runtime, its application typed, through this.
SurveysRuntime = Annotated[ServiceRuntime[SurveysApplication], Depends(runtime_of)]

# Who may read what (the survey itself and its answer are public: the token the
# applicant was sent is their proof). An `association_id` query parameter is
# checked by the dependency; without one, a route answers only for the
# associations where the caller holds the role.
SurveysOfficer = Annotated[Principal, Depends(require(SURVEYS_OFFICER))]
ResultsReader = Annotated[Principal, Depends(require(SURVEYS_OFFICER, AUDITOR))]

RESULTS_NOTE = {
    "en": (
        f"Groups with fewer than {MINIMUM_GROUP_SIZE} answers are suppressed, and so is "
        "the next smallest group of the same breakdown whenever the hidden groups "
        f"together hold fewer than {MINIMUM_GROUP_SIZE} answers, so that no hidden "
        "group can be worked out from the total and the groups shown. "
        '"Would recommend" (0 to 10) follows the same rule on its own count; its net '
        "promoter score is the share of 9 and 10 minus the share of 0 to 6. "
        "The results are for improving the service, never for judging staff."
    ),
    "ar": (
        f"لا تُعرض المجموعات التي تقل إجاباتها عن {MINIMUM_GROUP_SIZE}، وتُخفى معها "
        "أصغر مجموعة تالية في التقسيم نفسه ما دامت المجموعات المخفية مجتمعةً أقل من "
        f"{MINIMUM_GROUP_SIZE} إجابات، حتى لا تُستنتج مجموعة مخفية من المجموع والمجموعات "
        "المعروضة. ويخضع سؤال احتمال التوصية (٠ إلى ١٠) للقاعدة نفسها على عدد إجاباته؛ "
        "وصافي نقاط الترويج هو نسبة من أجابوا ٩ أو ١٠ مطروحًا منها نسبة من أجابوا ٠ إلى ٦. "
        "النتائج لتحسين الخدمة، وليست لمحاسبة الموظفين."
    ),
}


class Answer(FromOutside):
    model_config = ConfigDict(extra="forbid")

    ratings: Ratings
    comment: str | None = Field(default=None, max_length=4000)
    anonymous: bool = True


router = APIRouter()


@router.post(
    "/surveys/{token}/answers", status_code=202, dependencies=[RateLimited], responses=LIMITED
)
async def answer_survey(
    body: Answer,
    runtime: SurveysRuntime,
    token: str = Path(min_length=1, max_length=128),
) -> dict[str, str]:
    """The applicant's answer; the token of the invitation works once."""
    assert runtime.views is not None
    found = runtime.views.get(TOKENS, token)
    if found is None:
        raise survey_not_found()
    case_id = UUID(found["case_id"])
    await runtime.store.run(
        lambda: runtime.app.answer(
            case_id,
            token=token,
            ratings=body.ratings,
            comment=body.comment,
            anonymous=body.anonymous,
        )
    )
    runtime.recorded()
    return {"case_id": str(case_id), "status": "answered"}


@router.get("/surveys/{token}", dependencies=[RateLimited], responses=LIMITED)
async def the_survey(
    runtime: SurveysRuntime,
    token: str = Path(min_length=1, max_length=128),
) -> dict[str, Any]:
    """The survey as the applicant sees it; 410 once answered, 404 for an unknown link."""
    assert runtime.views is not None
    found = runtime.views.get(TOKENS, token)
    if found is None:
        raise survey_not_found()
    return await runtime.store.run(runtime.app.survey_for, UUID(found["case_id"]), token)


@router.get("/surveys/by-case/{case_id}")
async def by_case(
    case_id: UUID, runtime: SurveysRuntime, principal: SurveysOfficer
) -> dict[str, Any]:
    """The invitation of a case once the applicant was invited: whether it was sent
    or why it could not be, for the surveys officer of the case's association.
    Never its token, which answers in the applicant's name: the link reaches the
    applicant only through the invitation."""
    assert runtime.views is not None
    doc = runtime.views.get(SURVEYS, str(case_id))
    if doc is None:
        raise NotFound(
            "survey_not_invited",
            f"No survey invitation for request {case_id} yet (it may take a moment to appear).",
            f"لا توجد دعوة استبيان للطلب {case_id} بعد (قد يستغرق ظهورها لحظات).",
        )
    principal.require(SURVEYS_OFFICER, association_id=doc["association_id"])
    return without_token(doc)


@router.get("/surveys")
async def list_surveys(
    runtime: SurveysRuntime,
    principal: SurveysOfficer,
    page: Page,
    answered: bool | None = None,
    association_id: str | None = None,
) -> list[dict[str, Any]]:
    """The invitations of the associations where the caller is the surveys officer
    (or of the one `association_id` names), without their tokens (a token answers
    the survey in the applicant's name)."""
    assert runtime.views is not None
    held = principal.associations_listed((SURVEYS_OFFICER,), association_id)
    filters: dict[str, Any] = {} if answered is None else {"answered": answered}
    docs = runtime.views.find(
        SURVEYS, limit=page.limit, offset=page.offset, association_id=held, **filters
    )
    return [without_token(doc) for doc in docs]


def without_token(doc: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in doc.items() if key != "token"}


@router.get("/results")
async def results(
    runtime: SurveysRuntime, principal: ResultsReader, association_id: str | None = None
) -> dict[str, Any]:
    """Answers, average satisfaction and "would recommend" by service, channel, stage and
    association (the total).

    Never by officer. A group with fewer than five answers is suppressed, and so
    are as many of the next smallest groups as it takes for no suppressed group to
    be worked out by subtraction; each suppressed entry says why in both languages.
    For the surveys officer or the auditor of `association_id`; without it, of the
    associations where the caller holds one of these roles.
    """
    assert runtime.views is not None
    readable = set(principal.associations_listed((SURVEYS_OFFICER, AUDITOR), association_id))
    docs = [doc for doc in runtime.views.iter_all(RESULTS) if doc["association_id"] in readable]
    report: dict[str, Any] = {
        "association_id": association_id,
        "minimum_answers": MINIMUM_GROUP_SIZE,
        "note": RESULTS_NOTE,
    }
    for dimension in DIMENSIONS:
        report[f"by_{dimension}"] = group_results(dimension, tallies(docs, dimension))
    return report


def include(api: FastAPI) -> None:
    api.include_router(router)
