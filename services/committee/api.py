"""The committee's HTTP API: the researcher's queue, sittings (votes, recusals, decisions,
minutes), the agenda, the cases awaiting the applicant's correction and the
decision-window flags."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import HTMLResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.committee.application import CommitteeApplication
from services.committee.views import CASES
from shared.errors import NotFound
from shared.http import runtime_of
from shared.runtime import ServiceRuntime

# Every route's way to the committee's runtime, typed with its application.
CommitteeRuntime = Annotated[ServiceRuntime[CommitteeApplication], Depends(runtime_of)]

Text = Annotated[str, Field(min_length=1, max_length=2000)]
MemberId = Annotated[str, Field(min_length=1, max_length=100)]


class Closure(BaseModel):
    """The researcher's answers to the referred applicant, and the note for the committee."""

    model_config = ConfigDict(extra="forbid")

    researcher: str = Field(min_length=1, max_length=200)
    answers: list[Text] = Field(default_factory=list)
    note: str = Field(default="", max_length=8000)


class Convening(BaseModel):
    model_config = ConfigDict(extra="forbid")

    association_id: str = Field(min_length=1, max_length=32)
    members_present: list[MemberId] = Field(min_length=1)
    held_at: AwareDatetime | None = None


class Recusal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member: MemberId
    reason: Text


class CastVote(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member: MemberId
    vote: Literal["approve", "reject", "abstain"]
    dissent_note: str | None = Field(default=None, max_length=4000)


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approved", "rejected"]
    reasons: list[Text] = Field(min_length=1)


AgendaOutcome = Literal["verified", "ineligible"]


MAX_PAGE = 1000  # the most cases one list answers with, whatever `limit` asks


def _cases(
    runtime: ServiceRuntime[CommitteeApplication], limit: int, offset: int, **filters: Any
) -> list[dict[str, Any]]:
    """A page of the read model's cases matching the filters (None: not filtered), by deadline."""
    assert runtime.views is not None  # the committee's runtime always has its read model
    return runtime.views.find(
        CASES,
        limit=min(limit, MAX_PAGE),
        offset=offset,
        **{name: value for name, value in filters.items() if value is not None},
    )


# The lists the committee and the researcher work from, and one case ------------------

lists = APIRouter()


@lists.get("/agenda")
async def agenda(
    runtime: CommitteeRuntime,
    association_id: str | None = None,
    outcome: AgendaOutcome | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Received, attested cases waiting for a decision, the nearest deadline first.

    Verified cases are decided by the votes; ineligible ones are listed for a
    decision too (`expected_decision` "rejected", with `ineligible_rule` and
    `ineligible_reason` {ar, en}). `outcome` lists only one of the two.
    """
    return _cases(
        runtime,
        limit,
        offset,
        on_agenda=True,
        association_id=association_id,
        verification_outcome=outcome,
    )


@lists.get("/awaiting-correction")
async def awaiting_correction(
    runtime: CommitteeRuntime,
    association_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Cases whose verification found discrepancies, waiting for the applicant's
    correction (`corrections`), the nearest deadline first: the window keeps running."""
    return _cases(runtime, limit, offset, awaiting_correction=True, association_id=association_id)


@lists.get("/researcher/queue")
async def researcher_queue(
    runtime: CommitteeRuntime,
    association_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Cases with a referral the researcher has not closed, the nearest deadline first."""
    return _cases(runtime, limit, offset, referral_open=True, association_id=association_id)


@lists.get("/deadlines")
async def deadlines(
    runtime: CommitteeRuntime,
    status: Literal["approaching", "overdue"] | None = None,
    association_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Undecided cases flagged by the scanner as approaching or past their deadline."""
    return _cases(
        runtime,
        limit,
        offset,
        deadline_flagged=True,
        deadline_flag=status,
        association_id=association_id,
    )


@lists.get("/cases/{case_id}")
async def case(case_id: str, runtime: CommitteeRuntime) -> dict[str, Any]:
    assert runtime.views is not None  # the committee's runtime always has its read model
    doc = runtime.views.get(CASES, case_id)
    if doc is None:
        raise NotFound(
            "case_not_found",
            f"No request {case_id} at the committee (it may take a moment to appear).",
            f"لا يوجد طلب {case_id} لدى اللجنة (قد يستغرق ظهوره لحظات).",
        )
    return doc


# The researcher ---------------------------------------------------------------------

researcher = APIRouter()


@researcher.post("/referrals/{case_id}/closure", status_code=202)
async def close_referral(
    case_id: UUID, closure: Closure, runtime: CommitteeRuntime
) -> dict[str, str]:
    app = runtime.app
    await runtime.store.run(lambda: app.close_referral(case_id, **closure.model_dump()))
    runtime.recorded()
    return {"case_id": str(case_id), "referral": "closed"}


# Sittings ---------------------------------------------------------------------------

sittings = APIRouter()


@sittings.post("/sittings", status_code=201)
async def convene(body: Convening, runtime: CommitteeRuntime) -> dict[str, Any]:
    app = runtime.app
    result = await runtime.store.run(
        lambda: app.convene(
            association_id=body.association_id,
            members_present=list(body.members_present),
            held_at=body.held_at,
        )
    )
    runtime.recorded()
    return result


@sittings.get("/sittings/{sitting_id}")
async def sitting(sitting_id: UUID, runtime: CommitteeRuntime) -> dict[str, Any]:
    return await runtime.store.run(runtime.app.sitting_status, sitting_id)


@sittings.get("/sittings/{sitting_id}/agenda")
async def sitting_agenda(
    sitting_id: UUID,
    runtime: CommitteeRuntime,
    outcome: AgendaOutcome | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """The attested, undecided cases of the sitting's association, by deadline:
    verified ones, and ineligible ones to be rejected (see `GET /agenda`)."""
    status = await runtime.store.run(runtime.app.sitting_status, sitting_id)
    return _cases(
        runtime,
        limit,
        offset,
        on_agenda=True,
        association_id=status["association_id"],
        verification_outcome=outcome,
    )


@sittings.post("/sittings/{sitting_id}/cases/{case_id}/recusals", status_code=201)
async def recuse(
    sitting_id: UUID, case_id: UUID, body: Recusal, runtime: CommitteeRuntime
) -> dict[str, Any]:
    app = runtime.app
    result = await runtime.store.run(
        lambda: app.recuse(sitting_id, case_id, member=body.member, reason=body.reason)
    )
    runtime.recorded()
    return result


@sittings.post("/sittings/{sitting_id}/cases/{case_id}/votes", status_code=201)
async def vote(
    sitting_id: UUID, case_id: UUID, body: CastVote, runtime: CommitteeRuntime
) -> dict[str, Any]:
    app = runtime.app
    result = await runtime.store.run(
        lambda: app.vote(
            sitting_id,
            case_id,
            member=body.member,
            vote=body.vote,
            dissent_note=body.dissent_note,
        )
    )
    runtime.recorded()
    return result


@sittings.post("/sittings/{sitting_id}/cases/{case_id}/decision", status_code=202)
async def decide(
    sitting_id: UUID, case_id: UUID, body: Decision, runtime: CommitteeRuntime
) -> dict[str, Any]:
    app = runtime.app
    result = await runtime.store.run(
        lambda: app.decide(sitting_id, case_id, decision=body.decision, reasons=list(body.reasons))
    )
    runtime.recorded()
    return result


@sittings.post("/sittings/{sitting_id}/close")
async def close_sitting(sitting_id: UUID, runtime: CommitteeRuntime) -> dict[str, Any]:
    result = await runtime.store.run(runtime.app.close_sitting, sitting_id)
    runtime.recorded()
    return result


@sittings.get("/sittings/{sitting_id}/minutes", response_class=HTMLResponse)
async def minutes(
    sitting_id: UUID,
    runtime: CommitteeRuntime,
    lang: Literal["ar", "en"] = "ar",
) -> HTMLResponse:
    """The minutes of the sitting, printable: Arabic (right to left) or English."""
    page = await runtime.store.run(runtime.app.minutes, sitting_id, lang)
    return HTMLResponse(page)


def include(api: FastAPI) -> None:
    for router in (lists, researcher, sittings):
        api.include_router(router)
