"""What runs beside a service's application: broker, relay, consumer, views.

Each service's `main` builds its application and hands it here with its
translators (outbox), handlers (consumer) and projector (views).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

from faststream.nats import NatsBroker
from faststream.security import SASLPlaintext

from shared import metrics
from shared.asyncapi import service_specification
from shared.consumer import DeadLetterHandler, Handler, TrackingConsumer
from shared.outbox import OutboxRelay, Translator
from shared.settings import ServiceSettings
from shared.store import ServiceApplication, StoreRunner
from shared.stream import DeclaredTrackingConsumer, ensure_stream, inbox_prefix
from shared.subjects import STREAM_NAME, dead_letter_subject
from shared.views import ProjectionRunner, Projector, ViewStore

log = logging.getLogger(__name__)

# How long /ready and /metrics wait for the store to answer before saying it is down.
STORE_PROBE_SECONDS = 2.0


AppT = TypeVar("AppT", bound=ServiceApplication)


class ServiceRuntime(Generic[AppT]):
    # The store probe in flight, shared by concurrent and later probes (see probe_store).
    _store_probe: asyncio.Future[int] | None = None

    def __init__(
        self,
        settings: ServiceSettings,
        app: AppT,
        *,
        translators: Mapping[str, Translator] | None = None,
        handlers: Mapping[str, Handler] | None = None,
        projector: Projector | None = None,
        on_dead_letter: DeadLetterHandler | None = None,
        held_cases: Callable[[ViewStore], int] | None = None,
    ):
        self.settings = settings
        self.app = app
        self.store = StoreRunner()
        self.translators = dict(translators or {})
        self.handlers = dict(handlers or {})
        self.on_dead_letter = on_dead_letter
        # How many cases a dead letter holds (intake's read model), for /ready and /metrics.
        self.held_cases = held_cases
        self.views: ViewStore | None = None
        self.projections: ProjectionRunner | None = None
        if projector:
            self.views = ViewStore(settings.views_file)
            self.projections = ProjectionRunner(
                app,
                self.store,
                self.views,
                projector,
                batch_size=500,
                poll_interval=settings.poll_interval_seconds,
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
                window=self.settings.relay_window,
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
                on_dead_letter=self.on_dead_letter,
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
        document: dict[str, Any] = self.asyncapi_specification().to_jsonable()
        return document

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
            # Counted on the stream, so a restart does not start it again at zero.
            report["dead_letters"] = await self._dead_letters_stored() if connected else None
            report["consumer_pending"] = None
            if connected:  # asking a server that is away would stall the probe
                try:
                    report["consumer_pending"] = await asyncio.wait_for(
                        self.consumer.pending(), timeout=2.0
                    )
                except Exception:  # noqa: BLE001, S110 — pending stays unknown (None) in the report
                    pass
        if self.projections:
            report["views_lag"] = await self.projections.lag() if report["store"] else None
        if self.held_cases and self.views:
            report["held_cases"] = self.held_cases(self.views)
        report["caught_up"] = self._caught_up(report)
        report["ready"] = bool(
            connected
            and report["store"]
            and report["caught_up"]
            and not report.get("outbox_stalled")
        )
        return report

    async def _dead_letters_stored(self) -> int | None:
        """This service's dead letters on the stream; None when the server does not say."""
        subject = dead_letter_subject(self.settings.service_name)
        try:
            info = await asyncio.wait_for(
                self.broker.connection.jetstream().stream_info(
                    STREAM_NAME, subjects_filter=subject
                ),
                timeout=2.0,
            )
        except Exception:  # noqa: BLE001 — unknown (None) in the report, not a crash
            return None
        return int((info.state.subjects or {}).get(subject, 0))

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
        except TimeoutError:
            return {
                "store": False,
                "store_error": f"the store did not answer within {STORE_PROBE_SECONDS:g} s",
            }
        except Exception as error:  # noqa: BLE001 — the store is down: report it, do not crash
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
        if report.get("dead_letters") is not None:
            metrics.DEAD_LETTERS_STORED.labels(name).set(report["dead_letters"])
        if report.get("held_cases") is not None:
            metrics.CASES_HELD.labels(name).set(report["held_cases"])
