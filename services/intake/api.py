"""Intake's HTTP API: submissions, the front desk, and "where is my request?"."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.intake.application import IntakeApplication
from services.intake.views import CASES, REFS
from shared.errors import NotFound, Refused
from shared.runtime import ServiceRuntime
from shared.submissions import Submission

STATUS_LABELS = {
    "received": ("Received; being checked", "تم الاستلام؛ قيد التحقق"),
    "verified": ("Verified; waiting for the research committee", "تم التحقق؛ بانتظار لجنة البحث"),
    "discrepancies": ("Some data must be corrected", "بعض البيانات تحتاج إلى تصحيح"),
    "ineligible": ("Not eligible for this service", "غير مستحق لهذه الخدمة"),
    "approved": ("Approved by the committee", "تمت الموافقة من اللجنة"),
    "rejected": ("Rejected by the committee", "تم الرفض من اللجنة"),
    "delivered": ("Service delivered", "تم تقديم الخدمة"),
}


class Referral(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)
    questions: list[str] = Field(default_factory=list)
    referred_by: str = Field(min_length=1, max_length=200)


class Delivery(BaseModel):
    delivered: str = Field(min_length=1, max_length=2000)
    delivered_by: str = Field(min_length=1, max_length=200)


def runtime_of(request: Request) -> ServiceRuntime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def with_labels(doc: dict[str, Any]) -> dict[str, Any]:
    en, ar = STATUS_LABELS.get(doc["status"], (doc["status"], doc["status"]))
    return {**doc, "status_label": {"en": en, "ar": ar}}


def build_router() -> APIRouter:
    router = APIRouter()

    @router.post("/submissions", status_code=201)
    async def submit(
        submission: Submission, runtime: ServiceRuntime = Depends(runtime_of)
    ) -> JSONResponse:
        app: IntakeApplication = runtime.app  # type: ignore[assignment]
        actor = {"kind": "adapter", "id": f"http:{submission.channel}"}
        result = await runtime.store.run(app.submit, submission, actor)
        runtime.recorded()
        return JSONResponse(
            {
                "case_id": str(result.case_id),
                "case_ref": result.case_ref,
                "duplicate": result.duplicate,
            },
            status_code=200 if result.duplicate else 201,
        )

    @router.get("/cases/{case_key}")
    async def where_is_my_request(
        case_key: str, runtime: ServiceRuntime = Depends(runtime_of)
    ) -> dict[str, Any]:
        """A case by its id or by its reference, as the read model holds it."""
        assert runtime.views is not None
        ref = runtime.views.get(REFS, case_key)
        doc = runtime.views.get(CASES, ref["case_id"] if ref else case_key)
        if doc is None:
            raise NotFound(
                "case_not_found",
                f"No request {case_key} (it may take a moment to appear).",
                f"لا يوجد طلب {case_key} (قد يستغرق ظهوره لحظات).",
            )
        return with_labels(doc)

    @router.get("/cases")
    async def list_cases(
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
        runtime: ServiceRuntime = Depends(runtime_of),
    ) -> list[dict[str, Any]]:
        assert runtime.views is not None
        filters = {"status": status} if status else {}
        docs = runtime.views.find(CASES, limit=min(limit, 1000), offset=offset, **filters)
        return [with_labels(doc) for doc in docs]

    @router.post("/cases/{case_id}/referral", status_code=202)
    async def refer(
        case_id: UUID, referral: Referral, runtime: ServiceRuntime = Depends(runtime_of)
    ) -> dict[str, str]:
        app: IntakeApplication = runtime.app  # type: ignore[assignment]
        await runtime.store.run(
            lambda: app.refer_to_researcher(case_id, **referral.model_dump())
        )
        runtime.recorded()
        return {"case_id": str(case_id), "status": "referred"}

    @router.post("/cases/{case_id}/delivery", status_code=202)
    async def deliver(
        case_id: UUID, delivery: Delivery, runtime: ServiceRuntime = Depends(runtime_of)
    ) -> dict[str, str]:
        app: IntakeApplication = runtime.app  # type: ignore[assignment]
        await runtime.store.run(lambda: app.deliver(case_id, **delivery.model_dump()))
        runtime.recorded()
        return {"case_id": str(case_id), "status": "delivered"}

    return router


def include(api: FastAPI) -> None:
    api.include_router(build_router())
