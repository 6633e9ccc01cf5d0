"""Assembles the committee: the one place its dependencies are built."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from fastapi import FastAPI
from pydantic import Field

from services.committee import api
from services.committee.application import (
    DEFAULT_WARNING_DAYS,
    DEFAULT_WINDOW_DAYS,
    CommitteeApplication,
)
from services.committee.handlers import consumer_handlers
from services.committee.integration import TRANSLATORS
from services.committee.views import CASES, project
from shared.auth import Verifier, verifier_from_environment
from shared.clock import Clock, clock_from
from shared.files import keep_private
from shared.http import create_http_app, serve
from shared.logging import configure_logging
from shared.personal import Sealer
from shared.personal.keyring import open_keyring_or_exit
from shared.policy_loader import load_packs_or_exit
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings, load_settings
from shared.store import open_application

log = logging.getLogger(__name__)


class CommitteeSettings(ServiceSettings):
    service_name: str = "committee"
    http_port: int = 8103
    # KHIDMA_DECISION_WINDOW_DAYS: only for an association whose pack is missing
    # (each pack states its own window; the seeds say two weeks).
    decision_window_days: int = Field(default=DEFAULT_WINDOW_DAYS, ge=1)
    # KHIDMA_DEADLINE_SCAN_SECONDS: how often the deadline scanner runs.
    deadline_scan_seconds: float = Field(default=60.0, gt=0)
    # KHIDMA_DEADLINE_WARNING_DAYS: a case is "approaching" this many days before its deadline.
    deadline_warning_days: int = Field(default=DEFAULT_WARNING_DAYS, ge=0)


async def scan_deadlines_forever(
    runtime: ServiceRuntime[CommitteeApplication], interval: float
) -> None:
    """The decision-window scheduler: flags undecided cases approaching or past their deadline."""
    app = runtime.app
    assert runtime.views is not None
    while True:
        try:
            # Only the cases whose warning period has begun are loaded and judged.
            horizon = app.clock.now() + timedelta(days=app.warning_days)
            candidates = [
                doc["case_id"]
                for doc in runtime.views.find(CASES, limit=100_000, deadline_watch=True)
                if doc["deadline"] and datetime.fromisoformat(doc["deadline"]) <= horizon
            ]
            if candidates and await runtime.store.run(app.scan_deadlines, candidates):
                runtime.recorded()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the deadline scan failed; retrying at the next interval")
        await asyncio.sleep(interval)


def build(
    settings: CommitteeSettings, clock: Clock | None = None, verifier: Verifier | None = None
) -> FastAPI:
    packs = load_packs_or_exit(settings.policies_dir, settings.service_name)
    app = open_application(
        CommitteeApplication,
        settings.eventsourcing_env(),
        clock=clock or clock_from(settings.clock_file),
        sealer=Sealer(open_keyring_or_exit(settings)),
        window_days=settings.decision_window_days,
        packs=packs,
        warning_days=settings.deadline_warning_days,
    )
    runtime = ServiceRuntime(
        settings,
        app,
        translators=TRANSLATORS,
        handlers=consumer_handlers(app),
        projector=project,
    )

    async def start_scheduler() -> None:
        runtime.spawn(
            scan_deadlines_forever(runtime, settings.deadline_scan_seconds), "deadline scanner"
        )

    return create_http_app(
        runtime,
        title="Khidma committee",
        include=api.include,
        verifier=verifier or verifier_from_environment(),
        extra_startup=start_scheduler,
    )


def main() -> None:
    settings = load_settings(CommitteeSettings)
    keep_private(settings.data_dir)
    configure_logging(settings.service_name, settings.log_level)
    serve(build(settings), settings)


if __name__ == "__main__":
    main()
