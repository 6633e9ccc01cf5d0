"""A service's HTTP API in the test's own process: its real application, routes,
read models and refusals on a temporary SQLite store, without NATS.

The runtime starts what a service runs beside its application except what
talks to the broker (no stream, relay or consumer): the read models are built
from the store as in production. An integration event reaches the service
through `deliver`, which runs the service's own consumer handler with a stream
position, as the tracking consumer does.

Use the `in_process` fixture (tests/conftest.py):

    intake = await in_process("intake")
    response = await intake.client.post("/submissions", json=...)
    await intake.settle()                    # the read models have caught up
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from eventsourcing.persistence import Tracking
from fastapi import FastAPI

from shared.personal import MasterKeys, Sealer, open_keyring
from shared.auth import verifier_from_environment
from shared.clock import Clock
from shared.consumer import Handler
from shared.events import IntegrationEvent
from shared.http import create_http_app
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from shared.runtime import AppT, ServiceRuntime
from shared.settings import ServiceSettings
from shared.store import (
    ServiceApplication,
    consumer_tracking_name,
    open_application,
    process_tracked,
)
from shared.subjects import STREAM_NAME
from shared.views import Projector

# Never dialled: the in-process runtime does not connect (settings require a URL).
UNUSED_NATS_URL = "nats://in-process.invalid:4222"


class InProcessRuntime(ServiceRuntime[AppT]):
    """The service runtime without the broker: `start` builds the read models and
    tails the store, and connects to nothing (`stop` is the runtime's own: closing
    a broker that never connected is a no-op)."""

    # The stream positions of the events delivered, as the stream would number them.
    _positions = itertools.count(1)

    async def start(self) -> None:
        if self.projections:
            await self.store.run(self.projections.catch_up)
            self.spawn(self.projections.run(), "projections")
        self.started = True

    async def settle(self) -> None:
        """Returns once the read models hold everything the store has recorded."""
        if self.projections:
            await self.store.run(self.projections.catch_up)

    async def deliver(self, event: IntegrationEvent) -> None:
        """Runs the service's handler of the event, exactly as its consumer would."""
        handler = self.handlers[event.event_type]
        tracking = Tracking(consumer_tracking_name(STREAM_NAME), next(self._positions))
        await self.store.run(
            process_tracked, self.app, tracking, lambda processing: handler(event, processing)
        )
        self.recorded()


@dataclass(frozen=True)
class Assembly:
    """What a service's `main` puts together, minus the broker."""

    settings: type[ServiceSettings]
    application: type[ServiceApplication]
    handlers: Callable[[Any], Mapping[str, Handler]]
    projector: Projector
    include: Callable[[FastAPI], None]
    options: Callable[[Any], dict[str, Any]] = lambda settings: {}


def assembly(service: str) -> Assembly:
    """The parts of one service, imported only when a test asks for it."""
    assemblies = {
        "intake": _intake,
        "verification": _verification,
        "committee": _committee,
        "surveys": _surveys,
        "privacy": _privacy,
    }
    if service not in assemblies:
        raise ValueError(f"no service '{service}'; known: {sorted(assemblies)}")
    return assemblies[service]()


def _intake() -> Assembly:
    from services.intake import api, handlers, views
    from services.intake.application import IntakeApplication
    from services.intake.main import IntakeSettings

    return Assembly(
        IntakeSettings, IntakeApplication, handlers.consumer_handlers, views.project, api.include
    )


def _verification() -> Assembly:
    from services.verification import api, handlers, views
    from services.verification.application import VerificationApplication
    from services.verification.main import VerificationSettings

    return Assembly(
        VerificationSettings,
        VerificationApplication,
        handlers.consumer_handlers,
        views.project,
        api.include,
    )


def _committee() -> Assembly:
    from services.committee import api, handlers, views
    from services.committee.application import CommitteeApplication
    from services.committee.main import CommitteeSettings

    return Assembly(
        CommitteeSettings,
        CommitteeApplication,
        handlers.consumer_handlers,
        views.project,
        api.include,
        # As services/committee/main.py builds it.
        options=lambda settings: {
            "window_days": settings.decision_window_days,
            "warning_days": settings.deadline_warning_days,
        },
    )


def _surveys() -> Assembly:
    # Without the invitation dispatcher (it sends nothing here).
    from services.surveys import api, handlers, views
    from services.surveys.application import SurveysApplication
    from services.surveys.main import SurveysSettings

    return Assembly(
        SurveysSettings, SurveysApplication, handlers.consumer_handlers, views.project, api.include
    )


def _privacy() -> Assembly:
    # Without its scheduled sweep: a test runs services.privacy.retention.sweep itself.
    from services.privacy import api, handlers, views
    from services.privacy.application import PrivacyApplication
    from services.privacy.main import PrivacySettings

    return Assembly(
        PrivacySettings, PrivacyApplication, handlers.consumer_handlers, views.project, api.include
    )


@dataclass
class InProcessService:
    """One service's API and runtime, and the HTTP client that reaches it."""

    api: FastAPI
    runtime: InProcessRuntime[Any]
    client: httpx.AsyncClient

    @property
    def app(self) -> Any:
        return self.runtime.app

    async def settle(self) -> None:
        await self.runtime.settle()

    async def deliver(self, *events: IntegrationEvent) -> None:
        for event in events:
            await self.runtime.deliver(event)


async def start_in_process(
    service: str, data_dir: Path, stack: AsyncExitStack, clock: Clock | None = None
) -> InProcessService:
    """Builds the service on a SQLite store in `data_dir` and starts it through its
    FastAPI lifespan; `stack` stops it and closes its client."""
    parts = assembly(service)
    settings = parts.settings(nats_url=UNUSED_NATS_URL, data_dir=data_dir)
    # As the embedded runner does: the master key file made on the first start.
    MasterKeys.ensure(settings.master_key_path)
    keyring = open_keyring(settings)
    stack.callback(keyring.close)
    app = open_application(
        parts.application,
        settings.eventsourcing_env(),
        clock=clock,
        packs=load_packs(DEFAULT_POLICIES_DIR),
        sealer=Sealer(keyring),
        **parts.options(settings),
    )
    runtime = InProcessRuntime(
        settings, app, handlers=parts.handlers(app), projector=parts.projector
    )
    api = create_http_app(
        runtime,
        title=f"Khidma {service}",
        include=parts.include,
        verifier=verifier_from_environment(),
    )
    await stack.enter_async_context(api.router.lifespan_context(api))
    client = await stack.enter_async_context(
        httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url=f"http://{service}")
    )
    return InProcessService(api, runtime, client)
