"""The auditors' read-only HTTP API: `python -m audit.api` (GET only).

    GET /health
    GET /cases/{case_id_or_ref}/timeline[?source=stores|stream|both]
    GET /asof?at=2026-11-21T12:00:00Z  (or ?hijri=1448-06-11)
    GET /crosscheck
    GET /compliance[?source=...&check=...]

Listens on KHIDMA_HTTP_HOST:KHIDMA_HTTP_PORT (default 127.0.0.1:8105). Every
answer is computed from events only, by replaying the stores and/or the stream.
Every route but /health needs an auditor's token, of an issuer `KHIDMA_AUTH_*` names.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from audit.asof import hijri_moment, parse_moment, states_as_of
from audit.compliance import REGISTRY, CheckContext, checks_not_run, run_checks
from audit.crosscheck import CrossCheckTotals, crosscheck_system
from audit.replay import StreamUnavailable, available_services
from audit.settings import AuditSettings, load_audit_settings
from audit.timeline import case_timeline, case_timelines
from shared.auth import Verifier, install, require, verifier_from_environment
from shared.dates import both_calendars
from shared.http import answer_refusals
from shared.roles import AUDITOR

# The routes that replay the history: an auditor's, of any association (the audit
# reads every association's records, as the board's report does).
AUDITOR_ONLY = [Depends(require(AUDITOR))]


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


def create_app(settings: AuditSettings | None = None, verifier: Verifier | None = None) -> FastAPI:
    settings = settings or load_audit_settings()
    app = FastAPI(
        title="Khidma audit (read-only)",
        description="Replay, timelines, state as of a moment, cross-check, compliance.",
    )
    install(app, verifier or verifier_from_environment())
    answer_refusals(app)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "store": settings.store,
            "stores": available_services(settings),
            "stream": bool(settings.nats_url),
        }

    @app.get("/cases/{case}/timeline", dependencies=AUDITOR_ONLY)
    async def timeline(case: str, source: str = "both") -> dict[str, Any]:
        stores, stream = _sources(settings, source)
        found = await run_in_threadpool(case_timeline, settings, case, stores=stores, stream=stream)
        if found is None:
            raise HTTPException(404, {"ar": "لا توجد حالة بهذا الرقم", "en": "no such case"})
        return found.describe()

    @app.get("/asof", dependencies=AUDITOR_ONLY)
    async def asof(
        at: str | None = Query(default=None, description="ISO moment or day"),
        hijri: str | None = Query(default=None, description="Hijri day, e.g. 1448-06-11"),
        source: str = "stores",
    ) -> dict[str, Any]:
        try:
            moment = hijri_moment(hijri) if hijri else parse_moment(at) if at else datetime.now(UTC)
        except ValueError as error:
            raise HTTPException(422, str(error)) from None
        stores, stream = _sources(settings, source)

        def compute() -> list[dict[str, Any]]:
            return [
                s.to_dict()
                for s in states_as_of(
                    case_timelines(settings, stores=stores, stream=stream), moment
                )
            ]

        cases = await run_in_threadpool(compute)
        return {"as_of": both_calendars(moment), "cases": cases}

    @app.get("/crosscheck", dependencies=AUDITOR_ONLY)
    async def crosscheck() -> dict[str, Any]:
        if not settings.nats_url:
            raise HTTPException(
                503, {"ar": "لم يُضبط KHIDMA_NATS_URL", "en": "KHIDMA_NATS_URL is not set"}
            )
        totals = CrossCheckTotals()

        def compute() -> list[dict[str, Any]]:
            return [d.to_dict() for d in crosscheck_system(settings, totals=totals)]

        differences = await run_in_threadpool(compute)
        return {"totals": totals.__dict__, "agree": not differences, "differences": differences}

    @app.get("/compliance", dependencies=AUDITOR_ONLY)
    async def compliance(
        source: str = "both", check: list[str] | None = Query(default=None)
    ) -> dict[str, Any]:
        unknown = [c for c in check or [] if c not in REGISTRY]
        if unknown:
            raise HTTPException(422, f"unknown checks: {unknown}; known: {sorted(REGISTRY)}")
        stores, stream = _sources(settings, source)

        from shared.policy_loader import load_packs

        # The window and the quorum are the policy's, not what the committee recorded.
        context = CheckContext(packs=load_packs(settings.policies_dir))

        def compute() -> list[dict[str, Any]]:
            timelines = case_timelines(settings, stores=stores, stream=stream)
            return [e.to_dict() for e in run_checks(timelines, check, context=context)]

        exceptions = await run_in_threadpool(compute)
        return {
            "checks": {code: c.title for code, c in REGISTRY.items()},
            "checks_not_run": checks_not_run(
                available_services(settings) if stores else (), packs=context.packs, checks=check
            ),
            "exceptions": exceptions,
        }

    @app.exception_handler(StreamUnavailable)
    async def stream_unavailable(_: Any, error: StreamUnavailable) -> JSONResponse:
        return JSONResponse({"detail": error.message}, status_code=503)

    @app.exception_handler(ValueError)
    async def bad_value(_: Any, error: ValueError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=422)

    return app


def main() -> None:
    import uvicorn

    settings = load_audit_settings()
    uvicorn.run(
        create_app(settings), host=settings.http_host, port=settings.http_port, log_level="info"
    )


if __name__ == "__main__":
    main()
