"""The committee's HTTP API: the researcher's queue, sittings (votes, recusals, decisions,
minutes), the agenda, the cases awaiting the applicant's correction and the
decision-window flags.

Every route declares the roles it needs (issue 9; README). A route
on a case or a sitting loads it, then checks the role in its association; the
recorded actor of every command is the caller (`Principal.actor`), never a body
field. A member votes and recuses with their own token: the member is the
caller's username, which must be a seat of the association's committee (its
pack) and present at the sitting.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi.responses import HTMLResponse
from pydantic import AwareDatetime, ConfigDict, Field, model_validator

from services.committee.application import CommitteeApplication
from services.committee.views import CASES, SITTINGS
from shared.access_log import CASE_FILE
from shared.auth import Forbidden, Principal, require
from shared.errors import NotFound
from shared.http import ListPage, Page, runtime_of
from shared.roles import AUDITOR, COMMITTEE_CHAIR, COMMITTEE_MEMBER, RESEARCHER
from shared.runtime import ServiceRuntime
from shared.submissions import FromOutside

# Every route's way to the committee's runtime, typed with its application.
CommitteeRuntime = Annotated[ServiceRuntime[CommitteeApplication], Depends(runtime_of)]

# Who may call what (the table).
COMMITTEE_READERS = (COMMITTEE_MEMBER, COMMITTEE_CHAIR, AUDITOR)
CASE_READERS = (COMMITTEE_MEMBER, COMMITTEE_CHAIR, RESEARCHER, AUDITOR)
CASE_FILE_READERS = (COMMITTEE_MEMBER, COMMITTEE_CHAIR, RESEARCHER)
VOTERS = (COMMITTEE_MEMBER, COMMITTEE_CHAIR)

ListReader = Annotated[Principal, Depends(require(*COMMITTEE_READERS))]
SittingReader = Annotated[Principal, Depends(require(*COMMITTEE_READERS))]
CaseReader = Annotated[Principal, Depends(require(*CASE_READERS))]
CaseFileReader = Annotated[Principal, Depends(require(*CASE_FILE_READERS))]
Researcher = Annotated[Principal, Depends(require(RESEARCHER))]
Voter = Annotated[Principal, Depends(require(*VOTERS))]
Chair = Annotated[Principal, Depends(require(COMMITTEE_CHAIR))]

Text = Annotated[str, Field(min_length=1, max_length=2000)]
MemberId = Annotated[str, Field(min_length=1, max_length=100)]


class _NoNamedActor(FromOutside):
    """A command's body: who acts is the caller's token. The fields older clients
    sent to name the actor (`IGNORED`) are accepted and have no effect."""

    model_config = ConfigDict(extra="forbid")
    IGNORED: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _drop_named_actor(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if key not in cls.IGNORED}
        return data


class Closure(_NoNamedActor):
    """The researcher's answers to the referred applicant, and the note for the committee.
    The researcher recorded is the caller (a `researcher` field is ignored)."""

    IGNORED: ClassVar[frozenset[str]] = frozenset({"researcher"})

    answers: list[Text] = Field(default_factory=list)
    note: str = Field(default="", max_length=8000)


class Convening(FromOutside):
    """The chair opens the sitting and records attendance: the seats present
    (the ids of the pack's committee members)."""

    model_config = ConfigDict(extra="forbid")

    association_id: str = Field(min_length=1, max_length=32)
    members_present: list[MemberId] = Field(min_length=1)
    held_at: AwareDatetime | None = None


class Recusal(_NoNamedActor):
    """The caller recuses from the case (a `member` field is ignored)."""

    IGNORED: ClassVar[frozenset[str]] = frozenset({"member"})

    reason: Text


class CastVote(_NoNamedActor):
    """The caller's vote (a `member` field is ignored)."""

    IGNORED: ClassVar[frozenset[str]] = frozenset({"member"})

    vote: Literal["approve", "reject", "abstain"]
    dissent_note: str | None = Field(default=None, max_length=4000)


class Decision(FromOutside):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approved", "rejected"]
    reasons: list[Text] = Field(min_length=1)


AgendaOutcome = Literal["verified", "ineligible"]


def _cases(
    runtime: ServiceRuntime[CommitteeApplication],
    associations: list[str],
    page: ListPage,
    **filters: Any,
) -> list[dict[str, Any]]:
    """A page of the read model's cases of these associations matching the filters
    (None: not filtered), by deadline."""
    assert runtime.views is not None  # the committee's runtime always has its read model
    return runtime.views.find(
        CASES,
        limit=page.limit,
        offset=page.offset,
        association_id=associations,
        **{name: value for name, value in filters.items() if value is not None},
    )


def case_not_found(case_id: object) -> NotFound:
    return NotFound(
        "case_not_found",
        f"No request {case_id} at the committee (it may take a moment to appear).",
        f"لا يوجد طلب {case_id} لدى اللجنة (قد يستغرق ظهوره لحظات).",
    )


def not_a_committee_member(username: str, association_id: str) -> Forbidden:
    return Forbidden(
        "not_a_committee_member",
        f"{username} holds no seat on the committee of {association_id}: only its "
        "members vote or recuse there.",
        f"{username} ليس من أعضاء لجنة {association_id}: لا يصوّت فيها ولا يتنحّى إلا أعضاؤها.",
    )


# The lists the committee and the researcher work from, and one case ------------------

lists = APIRouter()


@lists.get("/agenda")
async def agenda(
    runtime: CommitteeRuntime,
    principal: ListReader,
    page: Page,
    association_id: str | None = None,
    outcome: AgendaOutcome | None = None,
    case_ref: str | None = None,
) -> list[dict[str, Any]]:
    """Received, attested cases waiting for a decision, the nearest deadline first,
    of the associations where the caller holds one of the roles (or the one asked);
    `case_ref` finds one case by its reference.

    Verified cases are decided by the votes; ineligible ones are listed for a
    decision too (`expected_decision` "rejected", with `ineligible_rule` and
    `ineligible_reason` {ar, en}). `outcome` lists only one of the two.
    """
    return _cases(
        runtime,
        principal.associations_listed(COMMITTEE_READERS, association_id),
        page,
        on_agenda=True,
        verification_outcome=outcome,
        case_ref=case_ref,
    )


@lists.get("/awaiting-correction")
async def awaiting_correction(
    runtime: CommitteeRuntime,
    principal: ListReader,
    page: Page,
    association_id: str | None = None,
) -> list[dict[str, Any]]:
    """Cases whose verification found discrepancies, waiting for the applicant's
    correction (`corrections`), the nearest deadline first: the window keeps running."""
    return _cases(
        runtime,
        principal.associations_listed(COMMITTEE_READERS, association_id),
        page,
        awaiting_correction=True,
    )


@lists.get("/researcher/queue")
async def researcher_queue(
    runtime: CommitteeRuntime,
    principal: Researcher,
    page: Page,
    association_id: str | None = None,
    case_ref: Annotated[str | None, Query(min_length=1, max_length=40)] = None,
) -> list[dict[str, Any]]:
    """Cases with a referral the researcher has not closed, the nearest deadline first,
    of the associations where the caller is a researcher; each referral with its
    reason and questions, opened from the case (the read model does not keep them);
    `case_ref` finds one case by its reference."""
    docs = _cases(
        runtime,
        principal.associations_listed((RESEARCHER,), association_id),
        page,
        referral_open=True,
        case_ref=case_ref.strip().upper() if case_ref else None,
    )
    texts = await runtime.store.run(
        runtime.app.open_referrals_shown, [UUID(doc["case_id"]) for doc in docs]
    )
    for doc in docs:
        if doc.get("referral") is not None:
            doc["referral"].update(texts.get(doc["case_id"], {}))
    return docs


@lists.get("/deadlines")
async def deadlines(
    runtime: CommitteeRuntime,
    principal: ListReader,
    page: Page,
    status: Literal["approaching", "overdue"] | None = None,
    association_id: str | None = None,
) -> list[dict[str, Any]]:
    """Undecided cases flagged by the scanner as approaching or past their deadline;
    each with `days_left` by the committee's clock (whole days, negative once past)."""
    found = _cases(
        runtime,
        principal.associations_listed(COMMITTEE_READERS, association_id),
        page,
        deadline_flagged=True,
        deadline_flag=status,
    )
    now = runtime.app.clock.now()
    return [{**doc, "days_left": days_left(doc.get("deadline"), now)} for doc in found]


def days_left(deadline: str | None, now: datetime) -> int | None:
    """Whole days from now to the deadline: 0 on its last day, -1 the day after it."""
    if not deadline:
        return None
    return math.floor((datetime.fromisoformat(deadline) - now) / timedelta(days=1))


@lists.get("/cases/{case_id}")
async def case(case_id: str, runtime: CommitteeRuntime, principal: CaseReader) -> dict[str, Any]:
    assert runtime.views is not None  # the committee's runtime always has its read model
    doc = runtime.views.get(CASES, case_id)
    if doc is None:
        raise case_not_found(case_id)
    principal.require(*CASE_READERS, association_id=doc["association_id"])
    return doc


@lists.get("/cases/{case_id}/file")
async def case_file(
    case_id: UUID, runtime: CommitteeRuntime, principal: CaseFileReader
) -> dict[str, Any]:
    """What the committee holds of the request: what it recorded of it (each
    revision, the applicant's declaration), its verification, and each referral
    with its questions and the researcher's answers and note. Every read is
    recorded in the access log (who, when, which case) before it is answered."""
    app = runtime.app
    file = await runtime.store.run(app.case_file, case_id)
    association_id = file["association_id"]
    role = principal.require(*CASE_FILE_READERS, association_id=association_id)
    await runtime.store.run(
        app.record_access, principal.actor(role), association_id, CASE_FILE, str(case_id)
    )
    runtime.recorded()
    return file


# The researcher ---------------------------------------------------------------------

researcher = APIRouter()


@researcher.post("/referrals/{case_id}/closure", status_code=202)
async def close_referral(
    case_id: UUID, closure: Closure, runtime: CommitteeRuntime, principal: Researcher
) -> dict[str, str]:
    app = runtime.app
    association_id = await runtime.store.run(app.case_association, case_id)
    role = principal.require(RESEARCHER, association_id=association_id)
    await runtime.store.run(
        lambda: app.close_referral(
            case_id,
            researcher=principal.username,
            answers=list(closure.answers),
            note=closure.note,
            actor=principal.actor(role),
        )
    )
    runtime.recorded()
    return {"case_id": str(case_id), "referral": "closed"}


# Sittings ---------------------------------------------------------------------------

sittings = APIRouter()


async def _sitting_role(
    runtime: ServiceRuntime[CommitteeApplication],
    principal: Principal,
    sitting_id: UUID,
    roles: tuple[str, ...],
) -> tuple[str, str]:
    """The sitting's association and the role the caller holds there (404: no such
    sitting; 403: none of the roles in its association)."""
    association_id = await runtime.store.run(runtime.app.sitting_association, sitting_id)
    return association_id, principal.require(*roles, association_id=association_id)


async def _member(
    runtime: ServiceRuntime[CommitteeApplication], principal: Principal, sitting_id: UUID
) -> tuple[str, dict[str, str]]:
    """The seat the caller votes or recuses in (their username, a seat of the
    pack's committee), and the recorded actor. Presence at the sitting is the
    sitting's rule (409 `not_present`)."""
    association_id, role = await _sitting_role(runtime, principal, sitting_id, VOTERS)
    if principal.username not in runtime.app.seats(association_id):
        raise not_a_committee_member(principal.username, association_id)
    return principal.username, principal.actor(role)


@sittings.post("/sittings", status_code=201)
async def convene(body: Convening, runtime: CommitteeRuntime, principal: Chair) -> dict[str, Any]:
    """The chair opens a sitting of the association's committee and records who is
    present (seat ids of its pack)."""
    app = runtime.app
    app.seats(body.association_id)  # an unknown association: 404, before the role
    role = principal.require(COMMITTEE_CHAIR, association_id=body.association_id)
    result = await runtime.store.run(
        lambda: app.convene(
            association_id=body.association_id,
            members_present=list(body.members_present),
            held_at=body.held_at,
            actor=principal.actor(role),
        )
    )
    runtime.recorded()
    return result


@sittings.get("/sittings")
async def list_sittings(
    runtime: CommitteeRuntime,
    principal: ListReader,
    page: Page,
    association_id: str | None = None,
    closed: bool | None = None,
) -> list[dict[str, Any]]:
    """The sittings of the associations where the caller holds one of the roles (or
    the one asked), the latest first: when each was held, who was present, its
    quorum and whether it is closed (`closed` lists only open or closed ones)."""
    assert runtime.views is not None  # the committee's runtime always has its read model
    filters = {} if closed is None else {"closed": closed}
    return runtime.views.find(
        SITTINGS,
        limit=page.limit,
        offset=page.offset,
        association_id=principal.associations_listed(COMMITTEE_READERS, association_id),
        **filters,
    )


@sittings.get("/sittings/{sitting_id}")
async def sitting(
    sitting_id: UUID, runtime: CommitteeRuntime, principal: SittingReader
) -> dict[str, Any]:
    await _sitting_role(runtime, principal, sitting_id, COMMITTEE_READERS)
    return await runtime.store.run(runtime.app.sitting_status, sitting_id)


@sittings.get("/sittings/{sitting_id}/agenda")
async def sitting_agenda(
    sitting_id: UUID,
    runtime: CommitteeRuntime,
    principal: SittingReader,
    page: Page,
    outcome: AgendaOutcome | None = None,
) -> list[dict[str, Any]]:
    """The attested, undecided cases of the sitting's association, by deadline:
    verified ones, and ineligible ones to be rejected (see `GET /agenda`)."""
    association_id, _ = await _sitting_role(runtime, principal, sitting_id, COMMITTEE_READERS)
    return _cases(
        runtime,
        [association_id],
        page,
        on_agenda=True,
        verification_outcome=outcome,
    )


@sittings.post("/sittings/{sitting_id}/cases/{case_id}/recusals", status_code=201)
async def recuse(
    sitting_id: UUID, case_id: UUID, body: Recusal, runtime: CommitteeRuntime, principal: Voter
) -> dict[str, Any]:
    """The caller, a member present, declares a conflict of interest on the case."""
    app = runtime.app
    member, actor = await _member(runtime, principal, sitting_id)
    result = await runtime.store.run(
        lambda: app.recuse(sitting_id, case_id, member=member, reason=body.reason, actor=actor)
    )
    runtime.recorded()
    return result


@sittings.post("/sittings/{sitting_id}/cases/{case_id}/votes", status_code=201)
async def vote(
    sitting_id: UUID, case_id: UUID, body: CastVote, runtime: CommitteeRuntime, principal: Voter
) -> dict[str, Any]:
    """The caller's vote, as a member present and not recused; a later vote replaces it."""
    app = runtime.app
    member, actor = await _member(runtime, principal, sitting_id)
    result = await runtime.store.run(
        lambda: app.vote(
            sitting_id,
            case_id,
            member=member,
            vote=body.vote,
            dissent_note=body.dissent_note,
            actor=actor,
        )
    )
    runtime.recorded()
    return result


@sittings.post("/sittings/{sitting_id}/cases/{case_id}/decision", status_code=202)
async def decide(
    sitting_id: UUID, case_id: UUID, body: Decision, runtime: CommitteeRuntime, principal: Chair
) -> dict[str, Any]:
    """The chair records the decision the votes of this sitting reached."""
    app = runtime.app
    _, role = await _sitting_role(runtime, principal, sitting_id, (COMMITTEE_CHAIR,))
    result = await runtime.store.run(
        lambda: app.decide(
            sitting_id,
            case_id,
            decision=body.decision,
            reasons=list(body.reasons),
            actor=principal.actor(role),
        )
    )
    runtime.recorded()
    return result


@sittings.post("/sittings/{sitting_id}/close")
async def close_sitting(
    sitting_id: UUID, runtime: CommitteeRuntime, principal: Chair
) -> dict[str, Any]:
    _, role = await _sitting_role(runtime, principal, sitting_id, (COMMITTEE_CHAIR,))
    result = await runtime.store.run(runtime.app.close_sitting, sitting_id, principal.actor(role))
    runtime.recorded()
    return result


@sittings.get("/sittings/{sitting_id}/minutes", response_class=HTMLResponse)
async def minutes(
    sitting_id: UUID,
    runtime: CommitteeRuntime,
    principal: SittingReader,
    lang: Literal["ar", "en"] = "ar",
) -> HTMLResponse:
    """The minutes of the sitting, printable: Arabic (right to left) or English."""
    await _sitting_role(runtime, principal, sitting_id, COMMITTEE_READERS)
    page = await runtime.store.run(runtime.app.minutes, sitting_id, lang)
    return HTMLResponse(page)


def include(api: FastAPI) -> None:
    for router in (lists, researcher, sittings):
        api.include_router(router)
