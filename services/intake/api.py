"""Intake's HTTP API: submissions, the front desk, and "where is my request?".

Who may call what is in `services/intake/access.py`: submissions need a channel
adapter's or the front desk's token; information and corrections the front
desk's, or the applicant's secret code; reading cases a staff role in the case's
association; the associations, the eligibility preview and the applicant's
status (with the code) are public. Every recorded actor is the caller.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.intake.access import (
    APPLICANT_ACTOR,
    CASE_READERS,
    CaseCaller,
    CaseCode,
    CaseLister,
    CaseReader,
    FrontDeskOnCase,
    OfficerOrApplicant,
    Submitter,
    submitting_role,
)
from services.intake.application import IntakeApplication, no_such_request
from services.intake.domain import CaseStatus, shown_status
from services.intake.submitting import SubmissionGroup, submission_group, submit_through
from services.intake.views import CASES, REFS
from shared.access_log import CASE_FILE
from shared.dates import both_calendars
from shared.errors import NotFound
from shared.events import Attestation
from shared.http import Page, runtime_of
from shared.limits import LIMITED, RateLimited
from shared.roles import FRONT_DESK
from shared.runtime import ServiceRuntime
from shared.submissions import (
    FromOutside,
    Submission,
    SubmittedDocuments,
    SubmittedFields,
    with_ascii_digits,
)

# The runtime every route works on, typed with intake's application.
IntakeRuntime = Annotated[ServiceRuntime[IntakeApplication], Depends(runtime_of)]

STATUS_LABELS: dict[CaseStatus, tuple[str, str]] = {
    CaseStatus.INCOMPLETE: (
        "Incomplete; some information is missing (see the list)",
        "غير مكتمل؛ تنقصه بعض المعلومات (انظر القائمة)",
    ),
    CaseStatus.RECEIVED: ("Received; being checked", "تم الاستلام؛ قيد التحقق"),
    CaseStatus.VERIFIED: (
        "Verified; waiting for the research committee",
        "تم التحقق؛ بانتظار لجنة البحث",
    ),
    CaseStatus.DISCREPANCIES: (
        "Some data must be corrected (see the corrections)",
        "بعض البيانات تحتاج إلى تصحيح (انظر التصحيحات المطلوبة)",
    ),
    CaseStatus.CORRECTING: (
        "Being corrected; something is still missing (see the list)",
        "قيد التصحيح؛ ما زال ينقصه شيء (انظر القائمة)",
    ),
    CaseStatus.INELIGIBLE: (
        "Not eligible for this service (see the reason)",
        "غير مستحق لهذه الخدمة (انظر السبب)",
    ),
    CaseStatus.APPROVED: ("Approved by the committee", "تمت الموافقة من اللجنة"),
    CaseStatus.REJECTED: ("Rejected by the committee", "تم الرفض من اللجنة"),
    CaseStatus.DELIVERED: ("Service delivered", "تم تقديم الخدمة"),
    CaseStatus.HELD: ("Held: an operator must look", "موقوف: يجب أن يراجعه أحد المشغّلين"),
}


# The bodies name no actor: the officer is the caller. A field an older client
# still sends (`referred_by`, `delivered_by`, `added_by`, `corrected_by`) is ignored.


class Referral(FromOutside):
    reason: str = Field(min_length=1, max_length=2000)
    questions: list[Annotated[str, Field(max_length=1000)]] = Field(
        default_factory=list, max_length=50
    )


class Delivery(FromOutside):
    delivered: str = Field(min_length=1, max_length=2000)


class Information(FromOutside):
    """What the applicant still owed: any of fields, documents, the declaration."""

    fields: SubmittedFields
    documents: SubmittedDocuments
    attestation: Attestation | None = None


class ApplicantCorrection(BaseModel):
    """The applicant's details to correct; only those given change (phone or email: null removes)."""

    model_config = ConfigDict(extra="forbid")

    national_id: str | None = Field(default=None, min_length=1, max_length=20)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    phone: str | None = Field(default=None, max_length=32)
    email: str | None = Field(default=None, max_length=254)

    # Read as a submission's are (shared.submissions): ASCII digits from here on.
    _digits = field_validator("national_id", "phone")(with_ascii_digits)


class Corrections(FromOutside):
    """What verification asked to correct, and the declaration on the corrected data."""

    applicant: ApplicantCorrection | None = None
    fields: SubmittedFields
    documents: SubmittedDocuments
    attestation: Attestation | None = None


class EligibilityQuestion(FromOutside):
    association_id: str = Field(min_length=1, max_length=32)
    service_code: str = Field(min_length=1, max_length=64)
    fields: SubmittedFields
    documents: SubmittedDocuments


def with_displays(doc: Any) -> Any:
    """Every date a person reads, also in both calendars (`<name>_display`)."""
    if isinstance(doc, list):
        return [with_displays(item) for item in doc]
    if not isinstance(doc, dict):
        return doc
    shown: dict[str, Any] = {}
    for key, value in doc.items():
        shown[key] = with_displays(value)
        if (key == "at" or key.endswith("_at")) and isinstance(value, str) and value:
            try:
                shown[f"{key}_display"] = both_calendars(datetime.fromisoformat(value))
            except ValueError:
                pass
    return shown


HISTORY_LABELS = {
    "submitted": ("Request submitted", "تم تقديم الطلب"),
    "information_requested": ("Missing information requested", "طُلبت المعلومات الناقصة"),
    "information_added": ("Information added", "أُضيفت معلومات"),
    "received": ("Request complete; registration completed", "اكتمل الطلب واستُكمل التسجيل"),
    "duplicate_linked": (
        "The same request arrived again and was linked",
        "ورد الطلب نفسه مرة أخرى ورُبط به",
    ),
    "referred_to_researcher": ("Referred to the social researcher", "أحيل إلى الباحث الاجتماعي"),
    "corrected": ("Corrections made by the applicant", "أجرى مقدم الطلب التصحيحات"),
    "resubmitted": (
        "Corrected request complete and sent for verification again; revision",
        "اكتمل الطلب المصحح وأُعيد إلى التحقق؛ النسخة",
    ),
    "verification": ("Verification", "التحقق"),
    "decision": ("Research committee decision", "قرار لجنة البحث"),
    "delivered": ("Service delivered", "تم تقديم الخدمة"),
    "held": (
        "Held: a message about it could not be processed; an operator must look",
        "موقوف: تعذّرت معالجة رسالة تخصه؛ يجب أن يراجعه أحد المشغّلين",
    ),
    "hold_lifted": ("Hold lifted; processing resumed", "رُفع الإيقاف واستؤنفت المعالجة"),
}


def history_label(what: str) -> dict[str, str]:
    step, _, detail = what.partition(":")
    en, ar = HISTORY_LABELS.get(step, (step, step))
    if detail in STATUS_LABELS:
        detail_en, detail_ar = STATUS_LABELS[CaseStatus(detail)]
        en, ar = f"{en}: {detail_en}", f"{ar}: {detail_ar}"
    elif detail:
        en, ar = f"{en}: {detail}", f"{ar}: {detail}"
    return {"en": en, "ar": ar}


def with_labels(doc: dict[str, Any]) -> dict[str, Any]:
    status = doc["status"]
    if status in STATUS_LABELS:
        status = shown_status(CaseStatus(status), bool(doc.get("held")))
    en, ar = STATUS_LABELS.get(status, (status, status))
    history = [{**item, "label": history_label(item["what"])} for item in doc.get("history", [])]
    return with_displays({**doc, "history": history, "status_label": {"en": en, "ar": ar}})


# Submissions ---------------------------------------------------------------------

submissions = APIRouter()


def submissions_of(request: Request, runtime: ServiceRuntime[IntakeApplication]) -> SubmissionGroup:
    """The group commit of the service's submissions (main assembles it, shared with
    the NATS ones); an API assembled without one (the tests' in-process services)
    gets its own on first use."""
    group: SubmissionGroup | None = getattr(request.app.state, "submissions", None)
    if group is None:
        group = request.app.state.submissions = submission_group(runtime.app, runtime.store)
    return group


@submissions.post("/submissions", status_code=201, dependencies=[RateLimited], responses=LIMITED)
async def submit(
    submission: Submission, runtime: IntakeRuntime, principal: Submitter, request: Request
) -> JSONResponse:
    """A request from a channel adapter (`channel:<channel>` in the association) or
    the front desk there. The answer that opens the case carries the applicant's
    secret code (`access_code`), once: a repeat of the submission does not."""
    app = runtime.app
    # What the association serves is public (GET /associations): checked first.
    app.check_channel(submission.association_id, submission.channel)
    role = submitting_role(principal, submission.association_id, submission.channel)
    result = await submit_through(
        submissions_of(request, runtime), submission, principal.actor(role)
    )
    runtime.recorded()
    return JSONResponse(result.as_dict(), status_code=200 if result.duplicate else 201)


# The associations served and what they ask for -----------------------------------

associations = APIRouter()


@associations.get("/associations")
async def list_associations(runtime: IntakeRuntime) -> list[dict[str, Any]]:
    """The associations this deployment serves, with the channels each enables."""
    return [
        {
            "association_id": pack.association_id,
            "name": pack.name.model_dump(),
            "clients": pack.clients.model_dump(mode="json"),
            "channels": list(pack.channels),
            "services": [
                {"code": service.code, "name": service.name.model_dump()}
                for service in pack.services
            ],
        }
        for pack in sorted(runtime.app.packs.values(), key=lambda p: p.association_id)
    ]


@associations.get("/associations/{association_id}")
async def get_association(association_id: str, runtime: IntakeRuntime) -> dict[str, Any]:
    """An association's policy as its pack says: what each service needs, the
    officers' tools and guides, the decision window, the committee and the board's
    approval (its date in both calendars)."""
    packs = runtime.app.packs
    pack = packs.get(association_id)
    if pack is None:
        raise NotFound(
            "association_not_found",
            f"No association '{association_id}' is served here; known: {', '.join(sorted(packs))}.",
            f"لا توجد جمعية بالمعرّف '{association_id}' في هذا النظام؛ "
            f"المعروفة: {'، '.join(sorted(packs))}.",
        )
    return pack.model_dump(mode="json")


@associations.post("/eligibility", dependencies=[RateLimited], responses=LIMITED)
async def eligibility(question: EligibilityQuestion, runtime: IntakeRuntime) -> dict[str, Any]:
    """Seed 004, article 6: may I have this service, and why? Creates nothing."""
    return runtime.app.preview_eligibility(
        question.association_id,
        question.service_code,
        question.fields,
        [doc.model_dump(mode="json") for doc in question.documents],
    )


# Cases: the applicant's and the front desk's -------------------------------------

cases = APIRouter()


def _attestation(attestation: Attestation | None) -> dict[str, Any] | None:
    return attestation.model_dump(mode="json") if attestation else None


def _acting(
    app: IntakeApplication, caller: CaseCaller, case_key: str
) -> tuple[UUID, dict[str, Any]]:
    """(case id, recorded actor) of a command on a case: the front-desk officer of
    the case's association, or the applicant whose code opens it (anything else
    with a code is the same 404 as an unknown request)."""
    if caller.principal is not None:
        case_id, association_id = app.association_of(case_key)
        role = caller.principal.require(FRONT_DESK, association_id=association_id)
        return case_id, caller.principal.actor(role)
    assert caller.code is not None
    return app.case_opened_by(case_key, caller.code), dict(APPLICANT_ACTOR)


@cases.post("/cases/{case_id}/information", dependencies=[RateLimited], responses=LIMITED)
async def add_information(
    case_id: UUID, information: Information, runtime: IntakeRuntime, caller: OfficerOrApplicant
) -> dict[str, Any]:
    """What the request still lacked, from the front desk or the applicant (code)."""
    app = runtime.app

    def command() -> dict[str, Any]:
        found, actor = _acting(app, caller, str(case_id))
        return app.add_information(
            found,
            fields=information.fields,
            documents=[d.model_dump(mode="json") for d in information.documents],
            attestation=_attestation(information.attestation),
            actor=actor,
        ).as_dict()

    result = await runtime.store.run(command)
    runtime.recorded()
    return result


@cases.post("/cases/{case_key}/corrections", dependencies=[RateLimited], responses=LIMITED)
async def correct(
    case_key: str, corrections: Corrections, runtime: IntakeRuntime, caller: OfficerOrApplicant
) -> dict[str, Any]:
    """The applicant corrects what verification listed (by case id or reference),
    with their code or at the front desk.

    Published again, whole, as the next revision once the declaration on the
    corrected data is given (here, or later as information).
    """
    app = runtime.app
    applicant = (
        corrections.applicant.model_dump(mode="json", exclude_unset=True)
        if corrections.applicant
        else {}
    )

    def command() -> dict[str, Any]:
        found, actor = _acting(app, caller, case_key)
        return app.correct(
            found,
            applicant=applicant,
            fields=corrections.fields,
            documents=[d.model_dump(mode="json") for d in corrections.documents],
            attestation=_attestation(corrections.attestation),
            actor=actor,
        ).as_dict()

    result = await runtime.store.run(command)
    runtime.recorded()
    return result


@cases.get("/cases/{case_ref}/status", dependencies=[RateLimited], responses=LIMITED)
async def my_request(
    case_ref: str, runtime: IntakeRuntime, code: CaseCode = None
) -> dict[str, Any]:
    """The applicant's "where is my request?": the reference and the secret code.

    A wrong or missing code is the same 404 as an unknown reference. A request
    from before secret codes existed has none: only staff can see it.
    """
    if not code:
        raise no_such_request(case_ref)
    view = await runtime.store.run(runtime.app.applicant_view, case_ref, code)
    assert runtime.views is not None
    doc = runtime.views.get(CASES, view["case_id"])
    history = [
        {"at": item["at"], "what": item["what"], "label": history_label(item["what"])}
        for item in (doc or {}).get("history", [])
    ]
    en, ar = STATUS_LABELS[shown_status(CaseStatus(view["status"]), view["held"])]
    return with_displays({**view, "status_label": {"en": en, "ar": ar}, "history": history})


@cases.get("/cases/{case_key}")
async def where_is_my_request(
    case_key: str, runtime: IntakeRuntime, principal: CaseReader
) -> dict[str, Any]:
    """A case by its id or by its reference, as the read model holds it (staff)."""
    assert runtime.views is not None
    ref = runtime.views.get(REFS, case_key)
    doc = runtime.views.get(CASES, ref["case_id"] if ref else case_key)
    if doc is None:
        raise NotFound(
            "case_not_found",
            f"No request {case_key} (it may take a moment to appear).",
            f"لا يوجد طلب {case_key} (قد يستغرق ظهوره لحظات).",
        )
    principal.require(*CASE_READERS, association_id=doc["association_id"])
    return with_labels(doc)


@cases.get("/cases")
async def list_cases(
    runtime: IntakeRuntime,
    principal: CaseLister,
    page: Page,
    status: str | None = None,
    association_id: str | None = Query(default=None, min_length=1, max_length=32),
) -> list[dict[str, Any]]:
    """The cases of the associations where the caller holds a staff role (or of the
    one `association_id` names), oldest first."""
    # `status` is not typed by CaseStatus: an unknown one finds no case (200, []),
    # as it always has, rather than a 422.
    assert runtime.views is not None
    associations = principal.associations_listed(CASE_READERS, association_id)
    filters: dict[str, Any] = {"status": status} if status else {}
    if status == CaseStatus.HELD:  # shown over the stored status: found by its holds
        filters = {"held": True}
    docs = runtime.views.find(
        CASES, limit=page.limit, offset=page.offset, association_id=associations, **filters
    )
    return [with_labels(doc) for doc in docs]


@cases.get("/cases/{case_key}/file")
async def case_file(case_key: str, runtime: IntakeRuntime, principal: CaseReader) -> dict[str, Any]:
    """The request itself, as intake holds it: the applicant, fields, documents and
    declaration, each revision as published, and who entered what. Every read is
    logged (who, when, which case) before the file is returned."""
    app = runtime.app

    def read() -> dict[str, Any]:
        case_id, association_id = app.association_of(case_key)
        role = principal.require(*CASE_READERS, association_id=association_id)
        file = app.case_file(case_id)
        app.record_access(principal.actor(role), association_id, CASE_FILE, str(case_id))
        return file

    file = await runtime.store.run(read)
    runtime.recorded()
    return with_displays(file)


@cases.post("/cases/{case_id}/referral", status_code=202)
async def refer(
    case_id: UUID, referral: Referral, runtime: IntakeRuntime, principal: FrontDeskOnCase
) -> dict[str, str]:
    """The front desk refers the case to the social researcher (the officer: the caller)."""
    app = runtime.app

    def command() -> None:
        _, association_id = app.association_of(str(case_id))
        role = principal.require(FRONT_DESK, association_id=association_id)
        app.refer_to_researcher(
            case_id,
            reason=referral.reason,
            questions=list(referral.questions),
            referred_by=principal.username,
            actor=principal.actor(role),
        )

    await runtime.store.run(command)
    runtime.recorded()
    # Being referred is not a status of the case: the answer names what was done.
    return {"case_id": str(case_id), "status": "referred"}


@cases.post("/cases/{case_id}/delivery", status_code=202)
async def deliver(
    case_id: UUID, delivery: Delivery, runtime: IntakeRuntime, principal: FrontDeskOnCase
) -> dict[str, str]:
    """The front desk records the service delivered (the officer: the caller)."""
    app = runtime.app

    def command() -> None:
        _, association_id = app.association_of(str(case_id))
        role = principal.require(FRONT_DESK, association_id=association_id)
        app.deliver(
            case_id,
            delivered=delivery.delivered,
            delivered_by=principal.username,
            actor=principal.actor(role),
        )

    await runtime.store.run(command)
    runtime.recorded()
    return {"case_id": str(case_id), "status": CaseStatus.DELIVERED}


# In this order, so the OpenAPI document lists the paths as it always has.
ROUTERS = (submissions, associations, cases)


def include(api: FastAPI) -> None:
    for router in ROUTERS:
        api.include_router(router)
