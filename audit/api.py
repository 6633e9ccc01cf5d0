"""The auditors' read-only HTTP API: `python -m audit.api` (GET only).

    GET /health
    GET /cases/{case_id_or_ref}/timeline[?source=stores|stream|both]
    GET /asof?at=2026-11-21T12:00:00Z  (or ?hijri=1448-06-11)
    GET /crosscheck
    GET /compliance[?source=...&check=...]
    GET /access[?case=...&who=...&from=...&to=...]
    GET /report?association_id=...&from=...&to=...[&lang=ar|en]  (the board report, HTML)
    POST /subjects/export  {"association_id", "national_id", "username", "format", "lang"}

Listens on KHIDMA_HTTP_HOST:KHIDMA_HTTP_PORT (default 127.0.0.1:8107). Every
answer is computed from events only, by replaying the stores and/or the stream.

Every route but `/health` needs a bearer token of the `auditor` role, verified as
the services verify theirs (`KHIDMA_AUTH_*`, shared.auth): 401 without a valid
token, 403 without the role, in the bilingual error shape. A case, the states
as of a moment, the exceptions and the access log are those of the
associations where the caller is an auditor; the cross-check (stores against
the stream, event ids only) is the whole system's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from audit.asof import hijri_moment, parse_moment, states_as_of
from audit.compliance import REGISTRY, CheckContext, checks_not_run, run_checks
from audit.crosscheck import CrossCheckTotals, crosscheck_system
from audit.replay import StreamUnavailable, available_services
from audit.roles import load_role_history, stores_read
from audit.settings import AuditSettings, load_audit_settings
from audit.timeline import case_timeline, case_timelines
from shared.apidocs_ui import install_api_docs
from shared.auth import Principal, Verifier, install, require, verifier_from_environment
from shared.dates import both_calendars
from shared.errors import NotFound
from shared.http import AllowedMethods, TracedRequests, answer_refusals, run_server
from shared.logging import configure_logging
from shared.openapi import install_refusals
from shared.personal.master import MasterKeyProblem
from shared.roles import AUDITOR, PRIVACY_OFFICER
from shared.submissions import FromOutside

Auditor = Annotated[Principal, Depends(require(AUDITOR, association=None))]
PrivacyOfficer = Annotated[Principal, Depends(require(PRIVACY_OFFICER, association=None))]


class ExportAsked(FromOutside):
    association_id: str = Field(min_length=1, max_length=64)
    national_id: str = Field(min_length=1, max_length=20)
    # The person's staff account, if they have one: its identity records are exported.
    username: str | None = Field(default=None, min_length=1, max_length=64)
    format: str = Field(default="json", pattern="^(json|html)$")
    # The HTML's language: Arabic (right to left) or English, the other beside it.
    lang: str = Field(default="ar", pattern="^(ar|en)$")


def _sources(settings: AuditSettings, source: str) -> tuple[bool, bool]:
    if source not in ("stores", "stream", "both"):
        raise HTTPException(422, "source: stores, stream or both")
    if source == "both" and not settings.nats_url:
        source = "stores"
    if source == "stream" and not settings.nats_url:
        raise HTTPException(
            503, {"ar": "لم يُضبط KHIDMA_NATS_URL", "en": "KHIDMA_NATS_URL is not set"}
        )
    return source in ("stores", "both"), source in ("stream", "both")


def no_such_case() -> NotFound:
    return NotFound("no_such_case", "No case has this id or reference.", "لا توجد حالة بهذا الرقم.")


def create_app(settings: AuditSettings | None = None, verifier: Verifier | None = None) -> FastAPI:
    """The audit API; `verifier` defaults to the issuers `KHIDMA_AUTH_*` names."""
    settings = settings or load_audit_settings()
    app = FastAPI(
        title="Khidma audit (read-only)",
        description="Replay, timelines, state as of a moment, cross-check, compliance, "
        "the access log, the data subject export. Every route but /health needs the "
        "auditor role (the export: privacy_officer).",
        docs_url=None,
        redoc_url=None,
    )
    install_api_docs(app)  # /docs served by the app itself, without a CDN
    install(app, verifier or verifier_from_environment())
    answer_refusals(app)
    guarded = APIRouter()

    @app.get("/health", tags=["operations"])
    @app.get("/ready", tags=["operations"])
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "store": settings.store,
            "stores": available_services(settings),
            "stream": bool(settings.nats_url),
        }

    @guarded.get("/cases/{case}/timeline")
    async def timeline(principal: Auditor, case: str, source: str = "both") -> dict[str, Any]:
        stores, stream = _sources(settings, source)
        found = await run_in_threadpool(case_timeline, settings, case, stores=stores, stream=stream)
        if found is None:
            raise no_such_case()
        principal.require(AUDITOR, association_id=found.association_id)
        return found.describe()

    @guarded.get("/asof")
    async def asof(
        principal: Auditor,
        at: str | None = Query(default=None, description="ISO moment or day"),
        hijri: str | None = Query(default=None, description="Hijri day, e.g. 1448-06-11"),
        source: str = "stores",
    ) -> dict[str, Any]:
        try:
            moment = hijri_moment(hijri) if hijri else parse_moment(at) if at else datetime.now(UTC)
        except ValueError as error:
            raise HTTPException(422, str(error)) from None
        stores, stream = _sources(settings, source)

        audited = set(principal.associations_with(AUDITOR))

        def compute() -> list[dict[str, Any]]:
            return [
                s.to_dict()
                for s in states_as_of(
                    case_timelines(settings, stores=stores, stream=stream), moment
                )
                if s.association_id in audited
            ]

        cases = await run_in_threadpool(compute)
        return {"as_of": both_calendars(moment), "cases": cases}

    @guarded.get("/crosscheck")
    async def crosscheck(_: Auditor) -> dict[str, Any]:
        if not settings.nats_url:
            raise HTTPException(
                503, {"ar": "لم يُضبط KHIDMA_NATS_URL", "en": "KHIDMA_NATS_URL is not set"}
            )
        totals = CrossCheckTotals()

        def compute() -> list[dict[str, Any]]:
            return [d.to_dict() for d in crosscheck_system(settings, totals=totals)]

        differences = await run_in_threadpool(compute)
        return {"totals": totals.__dict__, "agree": not differences, "differences": differences}

    @guarded.get("/compliance")
    async def compliance(
        principal: Auditor, source: str = "both", check: list[str] | None = Query(default=None)
    ) -> dict[str, Any]:
        unknown = [c for c in check or [] if c not in REGISTRY]
        if unknown:
            raise HTTPException(422, f"unknown checks: {unknown}; known: {sorted(REGISTRY)}")
        stores, stream = _sources(settings, source)

        from shared.policy_loader import load_packs

        audited = set(principal.associations_with(AUDITOR))
        roles = await run_in_threadpool(load_role_history, settings)
        # The window and the quorum are the policy's, not what the committee recorded;
        # who held which role when is the identity store's history.
        context = CheckContext(packs=load_packs(settings.policies_dir), roles=roles)

        def compute() -> list[dict[str, Any]]:
            timelines = (
                t
                for t in case_timelines(settings, stores=stores, stream=stream)
                if t.association_id in audited
            )
            return [e.to_dict() for e in run_checks(timelines, check, context=context)]

        exceptions = await run_in_threadpool(compute)
        return {
            "checks": {code: c.title for code, c in REGISTRY.items()},
            "checks_not_run": checks_not_run(
                stores_read(available_services(settings) if stores else (), roles),
                packs=context.packs,
                checks=check,
            ),
            "exceptions": exceptions,
        }

    @guarded.get("/access")
    async def access(
        principal: Auditor,
        case: str | None = Query(default=None, description="a case id or reference"),
        who: str | None = Query(default=None, description="the reader's subject or name"),
        start: str | None = Query(default=None, alias="from", description="ISO moment or day"),
        end: str | None = Query(default=None, alias="to", description="ISO moment or day"),
    ) -> dict[str, Any]:
        """Who read which case file or member record, and when (the access logs)."""
        from audit.access import access_reads
        from audit.cli import start_moment
        from audit.timeline import resolve_case_id

        try:
            since = start_moment(start) if start else None
            until = parse_moment(end) if end else None
        except ValueError as error:
            raise HTTPException(422, str(error)) from None
        audited = set(principal.associations_with(AUDITOR))

        def compute() -> list[dict[str, Any]]:
            record_id = (resolve_case_id(settings, case) or case) if case else None
            return [
                read.to_dict()
                for read in access_reads(
                    settings, record_id=record_id, who=who, start=since, end=until
                )
                if read.association_id in audited
            ]

        return {"reads": await run_in_threadpool(compute)}

    @guarded.get("/report", response_class=HTMLResponse)
    async def report(
        principal: Auditor,
        association_id: str = Query(min_length=1, max_length=64),
        start: str = Query(alias="from", description="first day, Gregorian or Hijri"),
        end: str = Query(alias="to", description="last day, included"),
        lang: str = Query(default="ar", pattern="^(ar|en)$"),
    ) -> HTMLResponse:
        """The board report of the association for the period, as one HTML page (as
        `python -m audit report` writes it, the association's figures only)."""
        from argparse import ArgumentTypeError

        from audit.report.cli import parse_day
        from audit.report.one import association_report

        principal.require(AUDITOR, association_id=association_id)
        if not settings.nats_url:
            raise HTTPException(
                503, {"ar": "لم يُضبط KHIDMA_NATS_URL", "en": "KHIDMA_NATS_URL is not set"}
            )
        try:
            first, last = parse_day(start), parse_day(end)
        except ArgumentTypeError as error:  # the day is not a date
            raise HTTPException(422, str(error)) from None
        if last < first or first > datetime.now(UTC).date():
            raise HTTPException(
                422,
                {
                    "en": "The period ends before it starts, or starts after today.",
                    "ar": "تنتهي الفترة قبل بدايتها، أو تبدأ بعد اليوم.",
                },
            )
        html = await run_in_threadpool(
            association_report, settings, association_id, first, last, lang
        )
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    @guarded.post("/subjects/export")
    async def subject_export(principal: PrivacyOfficer, asked: ExportAsked) -> Response:
        """Everything Khidma holds on one person (PDPL access), opened; logged as a read."""
        from audit.export import log_export, render_export_html
        from audit.export import subject_export as gather

        role = principal.require(PRIVACY_OFFICER, association_id=asked.association_id)

        def compute() -> Any:
            export = gather(
                settings, asked.association_id, asked.national_id, username=asked.username
            )
            log_export(settings, principal.actor(role), export)
            return export

        export = await run_in_threadpool(compute)
        if asked.format == "html":
            return HTMLResponse(
                render_export_html(export, lang=asked.lang), headers={"Cache-Control": "no-store"}
            )
        return JSONResponse(export.to_dict(), headers={"Cache-Control": "no-store"})

    app.include_router(guarded)

    # Each in the bilingual refusal shape of every service (`detail` kept for the
    # clients that read it).
    @app.exception_handler(StreamUnavailable)
    async def stream_unavailable(_: Any, error: StreamUnavailable) -> JSONResponse:
        message = dict(error.message)
        return JSONResponse(
            {"error": "stream_unavailable", "message": message, "detail": error.message},
            status_code=503,
        )

    @app.exception_handler(MasterKeyProblem)
    async def wrong_master_key(_: Any, problem: MasterKeyProblem) -> JSONResponse:
        # Another deployment's key file: nothing would open; never shown as "erased".
        message = {"en": problem.en, "ar": problem.ar}
        return JSONResponse(
            {"error": "master_key_problem", "message": message, "detail": message},
            status_code=503,
        )

    @app.exception_handler(ValueError)
    async def bad_value(_: Any, error: ValueError) -> JSONResponse:
        message = {"en": str(error), "ar": f"قيمة غير صالحة: {error}"}
        return JSONResponse(
            {"error": "invalid_request", "message": message, "detail": str(error)},
            status_code=422,
        )

    install_refusals(app)
    app.add_middleware(AllowedMethods, document=lambda: app.openapi())
    app.add_middleware(TracedRequests)
    return app


def main() -> None:
    settings = load_audit_settings()
    # One JSON line per record, as every service logs (run_server leaves uvicorn's to it).
    configure_logging("audit", settings.log_level)
    run_server(
        create_app(settings),
        "audit",
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level,
    )


if __name__ == "__main__":
    main()
