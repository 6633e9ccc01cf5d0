"""What runs beside a service's application: broker, relay, consumer, views, HTTP.

Each service's `main` builds its application and hands it here with its
translators (outbox), handlers (consumer) and projector (views).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping
from uuid import uuid4

import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from faststream.nats import NatsBroker
from faststream.security import SASLPlaintext
from faststream.specification import get_asyncapi_html

from shared import metrics
from shared.asyncapi import service_specification
from shared.consumer import Handler, TrackingConsumer
from shared.errors import Refused
from shared.logging import correlation_id_var, log_context, set_log_context
from shared.outbox import OutboxRelay, Translator
from shared.settings import ServiceSettings
from shared.store import ServiceApplication, StoreRunner
from shared.stream import DeclaredTrackingConsumer, ensure_stream, inbox_prefix
from shared.views import ProjectionRunner, Projector, ViewStore

log = logging.getLogger(__name__)

# How long /ready and /metrics wait for the store to answer before saying it is down.
STORE_PROBE_SECONDS = 2.0


class ServiceRuntime:
    # The store probe in flight, shared by concurrent and later probes (see probe_store).
    _store_probe: "asyncio.Future[int] | None" = None

    def __init__(
        self,
        settings: ServiceSettings,
        app: ServiceApplication,
        *,
        translators: Mapping[str, Translator] | None = None,
        handlers: Mapping[str, Handler] | None = None,
        projector: Projector | None = None,
    ):
        self.settings = settings
        self.app = app
        self.store = StoreRunner()
        self.translators = dict(translators or {})
        self.handlers = dict(handlers or {})
        self.views = ViewStore(settings.views_path) if projector else None  # type: ignore[arg-type]
        self.projections = (
            ProjectionRunner(
                app,
                self.store,
                self.views,  # type: ignore[arg-type]
                projector,
                batch_size=500,
                poll_interval=settings.poll_interval_seconds,
            )
            if projector
            else None
        )
        security = (
            SASLPlaintext(settings.nats_user, settings.nats_password or "")
            if settings.nats_user
            else None
        )
        self.broker = NatsBroker(
            settings.nats_servers,
            name=f"khidma-{settings.service_name}",
            security=security,
            # Its user may subscribe only to this prefix (deploy/nats/auth.conf);
            # the relay's and the consumer's requests use this connection.
            inbox_prefix=inbox_prefix(settings.service_name),
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            logger=logging.getLogger(f"khidma.broker.{settings.service_name}"),
        )
        self.relay: OutboxRelay | None = None
        self.consumer: TrackingConsumer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.started = False

    def recorded(self) -> None:
        """Called after anything was written to the store: wakes the tailers."""
        if self.relay:
            self.relay.wake()
        if self.projections:
            self.projections.wake()

    async def start(self) -> None:
        await self.broker.start()
        js = self.broker.connection.jetstream()
        await ensure_stream(
            js, self.settings.stream_replicas, self.settings.duplicate_window_seconds
        )
        if self.projections:
            await self.store.run(self.projections.catch_up)
            self.spawn(self.projections.run(), "projections")
        if self.translators:
            self.relay = OutboxRelay(
                self.app,
                self.store,
                js,
                self.translators,
                batch_size=self.settings.relay_batch,
                poll_interval=self.settings.poll_interval_seconds,
                service=self.settings.service_name,
            )
            self.spawn(self.relay.run(), "outbox relay")
        if self.handlers:
            self.consumer = DeclaredTrackingConsumer(
                self.app,
                self.store,
                js,
                service=self.settings.service_name,
                handlers=self.handlers,
                max_deliveries=self.settings.max_deliveries,
                retry_later_seconds=self.settings.retry_later_seconds,
                ack_wait=self.settings.ack_wait_seconds,
                batch_size=self.settings.consumer_batch,
                on_recorded=self.recorded,
                exit_after_commit=self.settings.fault_exit_after_commit,
            )
            await self.consumer.ensure_consumer()
            self.spawn(self.consumer.run(), "consumer")
        self.started = True

    def spawn(self, coroutine: Awaitable[None], name: str) -> None:
        async def guarded() -> None:
            try:
                await coroutine
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s stopped on an error", name)
                raise

        self._tasks.append(asyncio.create_task(guarded(), name=name))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.broker.stop()
        self.store.close()
        self.app.close()

    def asyncapi_specification(self) -> Any:
        return service_specification(
            self.settings.service_name,
            self.settings.nats_url,
            self.handlers,
            extra_brokers=[self.broker] if self.broker.subscribers else [],
        )

    def asyncapi(self) -> dict[str, Any]:
        """This service's AsyncAPI document, generated by FastStream."""
        return self.asyncapi_specification().to_jsonable()  # type: ignore[no-any-return]

    async def health(self) -> dict[str, Any]:
        alive = all(not task.done() for task in self._tasks)
        return {"service": self.settings.service_name, "alive": self.started and alive}

    async def readiness(self) -> dict[str, Any]:
        connected = bool(
            self.started and self.broker.connection and self.broker.connection.is_connected
        )
        report: dict[str, Any] = {"nats": connected}
        report.update(await self.probe_store())
        if self.relay:
            report["outbox_lag"] = await self.relay.lag() if report["store"] else None
            report["published"] = self.relay.stats.published
            report["set_aside"] = self.relay.stats.set_aside
            report["outbox_stalled"] = self._outbox_stalled(report["outbox_lag"])
        if self.consumer:
            stats = self.consumer.stats
            report["consumed"] = stats.handled
            report["duplicates_skipped"] = stats.duplicates
            report["dead_letters"] = stats.dead_letters
            report["consumer_pending"] = None
            if connected:  # asking a server that is away would stall the probe
                try:
                    report["consumer_pending"] = await asyncio.wait_for(
                        self.consumer.pending(), timeout=2.0
                    )
                except Exception:
                    pass
        if self.projections:
            report["views_lag"] = await self.projections.lag() if report["store"] else None
        report["caught_up"] = self._caught_up(report)
        report["ready"] = bool(
            connected
            and report["store"]
            and report["caught_up"]
            and not report.get("outbox_stalled")
        )
        return report

    def _outbox_stalled(self, lag: int | None) -> dict[str, Any] | None:
        """Why publishing is stuck, when the relay has a backlog and has not moved for a while.

        A relay that keeps failing on the same event would otherwise leave every
        event behind it unpublished while the service still looked ready.
        """
        assert self.relay is not None
        seconds = self.relay.stalled_for()
        if not lag or seconds < self.settings.relay_stall_seconds:
            return None
        error = self.relay.stats.last_error or "no error reported"
        return {
            "seconds": round(seconds, 1),
            "last_error": error,
            "message": {
                "en": f"The outbox relay has {lag} events waiting and has not published "
                f"for {seconds:.0f} s: {error}",
                "ar": f"لدى ناقل الأحداث الصادرة {lag} حدثًا بانتظار النشر ولم ينشر شيئًا "
                f"منذ {seconds:.0f} ثانية: {error}",
            },
        }

    async def probe_store(self) -> dict[str, Any]:
        """Whether the store answers (and its position), within STORE_PROBE_SECONDS.

        The probe runs on the store thread. When the store does not answer
        (PostgreSQL unreachable: the pool waits for a connection), the probe
        is left to finish there, and the probes after it wait on that same one
        instead of queueing more calls behind it.
        """
        probe = self._store_probe
        if probe is None or probe.done():
            probe = asyncio.ensure_future(self.store.run(self.app.max_notification_id))
            # Retrieved even when every waiter gave up on it (no "never retrieved").
            probe.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._store_probe = probe
        try:
            position = await asyncio.wait_for(asyncio.shield(probe), STORE_PROBE_SECONDS)
        except asyncio.TimeoutError:
            return {
                "store": False,
                "store_error": f"the store did not answer within {STORE_PROBE_SECONDS:g} s",
            }
        except Exception as error:  # the store is down: report it, do not crash
            return {"store": False, "store_error": repr(error)}
        return {"store_position": position, "store": True}

    def _caught_up(self, report: dict[str, Any]) -> bool:
        """Caught up with what was there when it started.

        The read models were rebuilt before `started`; the relay has published
        the whole outbox at least once since; the durable consumer's backlog is
        below `ready_max_pending` (a threshold, not zero: under steady load the
        backlog is never zero, and a busy instance is still useful).
        """
        if not self.started:
            return False
        if self.relay and not self.relay.caught_up_once:
            return False
        if self.consumer:
            pending = report.get("consumer_pending")
            if pending is None or pending > self.settings.ready_max_pending:
                return False
        return True

    async def update_metrics(self) -> None:
        """Measures the gauges that need a round trip, just before a scrape."""
        name = self.settings.service_name
        report = await self.readiness()
        metrics.READY.labels(name).set(1 if report["ready"] else 0)
        if self.relay and report.get("outbox_lag") is not None:
            metrics.OUTBOX_LAG.labels(name).set(report["outbox_lag"])
        if self.relay:
            metrics.OUTBOX_STALLED_SECONDS.labels(name).set(
                self.relay.stalled_for() if report.get("outbox_lag") else 0
            )
        if self.consumer:
            pending = report.get("consumer_pending")
            metrics.CONSUMER_PENDING.labels(name, self.consumer.durable).set(
                -1 if pending is None else pending
            )
        if self.projections and report.get("views_lag") is not None:
            metrics.VIEWS_LAG.labels(name).set(report["views_lag"])


def create_http_app(
    runtime: ServiceRuntime,
    *,
    title: str,
    include: Callable[[FastAPI], None],
    extra_startup: Callable[[], Awaitable[None]] | None = None,
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        if extra_startup:
            await extra_startup()
        yield
        await runtime.stop()

    api = FastAPI(title=title, lifespan=lifespan, dependencies=[Depends(_route_log_context)])
    api.state.runtime = runtime
    api.add_middleware(RequestLogMiddleware)

    @api.exception_handler(Refused)
    async def refused(_: Request, error: Refused) -> JSONResponse:
        return JSONResponse(error.as_dict(), status_code=error.status)

    @api.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        # FastAPI's `detail` (each problem with its field's location) plus a
        # sentence a person can read in either language.
        return JSONResponse(
            {
                "error": "invalid_request",
                "message": {
                    "en": "The request is not valid; see the fields listed in detail.",
                    "ar": "الطلب غير صالح؛ راجع الحقول المذكورة في التفاصيل.",
                },
                "detail": jsonable_encoder([_without_large_input(e) for e in error.errors()]),
            },
            status_code=422,
        )

    @api.get("/health", tags=["operations"])
    async def health() -> JSONResponse:
        report = await runtime.health()
        return JSONResponse(report, status_code=200 if report["alive"] else 503)

    @api.get("/ready", tags=["operations"])
    async def ready() -> JSONResponse:
        report = await runtime.readiness()
        return JSONResponse(report, status_code=200 if report["ready"] else 503)

    @api.get("/metrics", tags=["operations"], response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus metrics, text exposition format."""
        await runtime.update_metrics()
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @api.get("/asyncapi.json", tags=["operations"])
    async def asyncapi() -> JSONResponse:
        """The AsyncAPI 3.0 document of the events this service publishes and consumes."""
        return JSONResponse(runtime.asyncapi())

    @api.get("/asyncapi", tags=["operations"], response_class=HTMLResponse)
    async def asyncapi_page() -> HTMLResponse:
        """The AsyncAPI document as a page (FastStream's; loads its viewer from a CDN)."""
        return HTMLResponse(
            get_asyncapi_html(runtime.asyncapi_specification(), try_it_out_path=None)
        )

    include(api)
    return api


def _without_large_input(problem: Any) -> Any:
    """A problem without its input when that is large: a refused oversized
    request must not come back whole in the refusal."""
    if len(repr(problem.get("input"))) > 1000:
        return {key: value for key, value in problem.items() if key != "input"}
    return problem


_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_QUIET_PATHS = {"/health", "/ready", "/metrics"}


async def _route_log_context(request: Request) -> None:
    """Puts the route's case id (or reference) in the log context of the request.

    By the path parameter's name, never by its shape: a sitting's id is a UUID
    too. Intake's `/cases/{case_key}` takes either the id or the reference.
    """
    params = request.path_params
    case_id, case_ref = params.get("case_id"), params.get("case_ref")
    case_key = params.get("case_key")
    if isinstance(case_key, str):
        if _UUID.match(case_key):
            case_id = case_key
        else:
            case_ref = case_key
    if isinstance(case_id, str):
        set_log_context(case_id=case_id[:100])
    if isinstance(case_ref, str):
        set_log_context(case_ref=case_ref[:100])


class RequestLogMiddleware:
    """Takes the correlation id from `X-Correlation-Id` and logs each API request.

    Without the header, the request gets a correlation id of its own. Either
    way the response carries it in `X-Correlation-Id`, so that a caller can
    quote it and an operator find every line the request wrote.
    """

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        correlation = headers.get(b"x-correlation-id", b"").decode("latin-1")[:100] or str(
            uuid4()
        )
        status = {"code": 500}

        async def send_status(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                if correlation_id_var.get():
                    message.setdefault("headers", [])
                    message["headers"] = list(message["headers"]) + [
                        (b"x-correlation-id", correlation_id_var.get().encode("latin-1"))
                    ]
            await send(message)

        started = time.perf_counter()
        with log_context(correlation_id=correlation, case_id=None, case_ref=None, event_id=None):
            try:
                await self.app(scope, receive, send_status)
            finally:
                if scope["path"] not in _QUIET_PATHS:
                    log.info(
                        "%s %s %d",
                        scope["method"],
                        scope["path"],
                        status["code"],
                        extra={
                            "http_status": status["code"],
                            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        },
                    )


def serve(api: FastAPI, settings: ServiceSettings) -> None:
    config = uvicorn.Config(
        api,
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        lifespan="on",
        log_config=None,  # our JSON handler (shared/logging.py) formats uvicorn's lines too
    )
    server = uvicorn.Server(config)
    asyncio.run(server.serve())


def runtime_of(request: Request) -> ServiceRuntime:
    """The FastAPI dependency every route uses to reach its service's runtime."""
    return request.app.state.runtime  # type: ignore[no-any-return]
