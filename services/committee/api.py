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
from shared.auth import Principal, require
from shared.errors import NotFound
from shared.http import runtime_of
from shared.roles import AUDITOR, COMMITTEE_CHAIR, COMMITTEE_MEMBER, RESEARCHER
from shared.runtime import ServiceRuntime

# Every route's way to the committee's runtime, typed with its application.
CommitteeRuntime = Annotated[ServiceRuntime[CommitteeApplication], Depends(runtime_of)]

# Who may call (shared/roles.py); each route narrows to the record's association.
COMMITTEE = (COMMITTEE_MEMBER, COMMITTEE_CHAIR)
READERS = (*COMMITTEE, AUDITOR)
CommitteeReader = Annotated[Principal, Depends(require(*READERS))]
CaseReader = Annotated[Principal, Depends(require(*READERS, RESEARCHER))]
Researcher = Annotated[Principal, Depends(require(RESEARCHER))]
Chair = Annotated[Principal, Depends(require(COMMITTEE_CHAIR))]
Member = Annotated[Principal, Depends(require(*COMMITTEE))]

Text = Annotated[str, Field(min_length=1, max_length=2000)]
MemberId = Annotated[str, Field(min_length=1, max_length=100)]


class Closure(BaseModel):
    """The researcher's answers to the referred applicant, and the note for the committee."""

    model_config = ConfigDict(extra="forbid")

    researcher: str | None = Field(
        default=None, max_length=200, description="ignored: the signed-in researcher is recorded"
    )
    answers: list[Text] = Field(default_factory=list)
    note: str = Field(default="", max_length=8000)


class Convening(BaseModel):
    model_config = ConfigDict(extra="forbid")

    association_id: str = Field(min_length=1, max_length=32)
    members_present: list[MemberId] = Field(min_length=1)
    held_at: AwareDatetime | None = None


class Recusal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member: MemberId | None = Field(
        default=None, description="ignored: the member is the signed-in one"
    )
    reason: Text


class CastVote(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member: MemberId | None = Field(
        default=None, description="ignored: the member is the signed-in one"
    )
    vote: Literal["approve", "reject", "abstain"]
    dissent_note: str | None = Field(default=None, max_length=4000)


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approved", "rejected"]
    reasons: list[Text] = Field(min_length=1)


AgendaOutcome = Literal["verified", "ineligible"]


MAX_PAGE = 1000  # the most cases one list answers with, whatever `limit` asks


def _associations(
    principal: Principal, roles: tuple[str, ...], association_id: str | None
) -> list[str]:
    """The associations a list shows: the one asked for (if the caller holds a role
    there), else every one where the caller holds one of the roles."""
    if association_id is not None:
        principal.require(*roles, association_id=association_id)
        return [association_id]
    return principal.associations_with_any(*roles)


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
    principal: CommitteeReader,
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
        association_id=_associations(principal, READERS, association_id),
        verification_outcome=outcome,
    )


@lists.get("/awaiting-correction")
async def awaiting_correction(
    runtime: CommitteeRuntime,
    principal: CommitteeReader,
    association_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Cases whose verification found discrepancies, waiting for the applicant's
    correction (`corrections`), the nearest deadline first: the window keeps running."""
    return _cases(
        runtime,
        limit,
        offset,
        awaiting_correction=True,
        association_id=_associations(principal, READERS, association_id),
    )


@lists.get("/researcher/queue")
async def researcher_queue(
    runtime: CommitteeRuntime,
    principal: Researcher,
    association_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Cases with a referral the researcher has not closed, the nearest deadline first."""
    return _cases(
        runtime,
        limit,
        offset,
        referral_open=True,
        association_id=_associations(principal, (RESEARCHER,), association_id),
    )


@lists.get("/deadlines")
async def deadlines(
    runtime: CommitteeRuntime,
    principal: CommitteeReader,
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
        association_id=_associations(principal, READERS, association_id),
    )


@lists.get("/cases/{case_id}")
async def case(case_id: str, runtime: CommitteeRuntime, principal: CaseReader) -> dict[str, Any]:
    assert runtime.views is not None  # the committee's runtime always has its read model
    doc = runtime.views.get(CASES, case_id)
    if doc is None:
        raise NotFound(
            "case_not_found",
            f"No request {case_id} at the committee (it may take a moment to appear).",
            f"لا يوجد طلب {case_id} لدى اللجنة (قد يستغرق ظهوره لحظات).",
        )
    principal.require(*READERS, RESEARCHER, association_id=doc["association_id"])
    return doc


# The researcher ---------------------------------------------------------------------

researcher = APIRouter()


@researcher.post("/referrals/{case_id}/closure", status_code=202)
async def close_referral(
    case_id: UUID, closure: Closure, runtime: CommitteeRuntime, principal: Researcher
) -> dict[str, str]:
    """The researcher's answers and note; the researcher recorded is the signed-in one."""
    app = runtime.app
    status = await runtime.store.run(app.case_status, case_id)
    principal.require(RESEARCHER, association_id=status["association_id"])
    await runtime.store.run(
        lambda: app.close_referral(
            case_id, researcher=principal.username, answers=closure.answers, note=closure.note
        )
    )
    runtime.recorded()
    return {"case_id": str(case_id), "referral": "closed"}


# Sittings ---------------------------------------------------------------------------

sittings = APIRouter()


@sittings.post("/sittings", status_code=201)
async def convene(body: Convening, runtime: CommitteeRuntime, principal: Chair) -> dict[str, Any]:
    """The chair opens the sitting and records who is present (the pack's seat ids)."""
    if body.association_id in runtime.app.packs:  # else refused as unknown, below
        principal.require(COMMITTEE_CHAIR, association_id=body.association_id)
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
async def sitting(
    sitting_id: UUID, runtime: CommitteeRuntime, principal: CommitteeReader
) -> dict[str, Any]:
    return await _sitting_for(runtime, principal, sitting_id, READERS)


async def _sitting_for(
    runtime: ServiceRuntime[CommitteeApplication],
    principal: Principal,
    sitting_id: UUID,
    roles: tuple[str, ...],
) -> dict[str, Any]:
    """The sitting, once the caller holds one of the roles in its association."""
    status = await runtime.store.run(runtime.app.sitting_status, sitting_id)
    principal.require(*roles, association_id=status["association_id"])
    return status


@sittings.get("/sittings/{sitting_id}/agenda")
async def sitting_agenda(
    sitting_id: UUID,
    runtime: CommitteeRuntime,
    principal: CommitteeReader,
    outcome: AgendaOutcome | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """The attested, undecided cases of the sitting's association, by deadline:
    verified ones, and ineligible ones to be rejected (see `GET /agenda`)."""
    status = await _sitting_for(runtime, principal, sitting_id, READERS)
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
    sitting_id: UUID, case_id: UUID, body: Recusal, runtime: CommitteeRuntime, principal: Member
) -> dict[str, Any]:
    """The signed-in member steps aside from the case."""
    await _sitting_for(runtime, principal, sitting_id, COMMITTEE)
    app = runtime.app
    result = await runtime.store.run(
        lambda: app.recuse(sitting_id, case_id, member=principal.username, reason=body.reason)
    )
    runtime.recorded()
    return result


@sittings.post("/sittings/{sitting_id}/cases/{case_id}/votes", status_code=201)
async def vote(
    sitting_id: UUID, case_id: UUID, body: CastVote, runtime: CommitteeRuntime, principal: Member
) -> dict[str, Any]:
    """The signed-in member's own vote: a seat of the pack, present at the sitting."""
    await _sitting_for(runtime, principal, sitting_id, COMMITTEE)
    app = runtime.app
    result = await runtime.store.run(
        lambda: app.vote(
            sitting_id,
            case_id,
            member=principal.username,
            vote=body.vote,
            dissent_note=body.dissent_note,
        )
    )
    runtime.recorded()
    return result


@sittings.post("/sittings/{sitting_id}/cases/{case_id}/decision", status_code=202)
async def decide(
    sitting_id: UUID, case_id: UUID, body: Decision, runtime: CommitteeRuntime, principal: Chair
) -> dict[str, Any]:
    await _sitting_for(runtime, principal, sitting_id, (COMMITTEE_CHAIR,))
    app = runtime.app
    result = await runtime.store.run(
        lambda: app.decide(sitting_id, case_id, decision=body.decision, reasons=list(body.reasons))
    )
    runtime.recorded()
    return result


@sittings.post("/sittings/{sitting_id}/close")
async def close_sitting(
    sitting_id: UUID, runtime: CommitteeRuntime, principal: Chair
) -> dict[str, Any]:
    await _sitting_for(runtime, principal, sitting_id, (COMMITTEE_CHAIR,))
    result = await runtime.store.run(runtime.app.close_sitting, sitting_id)
    runtime.recorded()
    return result


@sittings.get("/sittings/{sitting_id}/minutes", response_class=HTMLResponse)
async def minutes(
    sitting_id: UUID,
    runtime: CommitteeRuntime,
    principal: CommitteeReader,
    lang: Literal["ar", "en"] = "ar",
) -> HTMLResponse:
    """The minutes of the sitting, printable: Arabic (right to left) or English."""
    await _sitting_for(runtime, principal, sitting_id, READERS)
    page = await runtime.store.run(runtime.app.minutes, sitting_id, lang)
    return HTMLResponse(page)


def include(api: FastAPI) -> None:
    for router in (lists, researcher, sittings):
        api.include_router(router)
