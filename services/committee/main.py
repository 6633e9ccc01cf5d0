"""Assembles the committee: the one place its dependencies are built."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import Field

from services.committee import api
from services.committee.application import DEFAULT_WINDOW_DAYS, CommitteeApplication
from services.committee.handlers import consumer_handlers
from services.committee.integration import TRANSLATORS
from services.committee.views import project
from shared.clock import Clock
from shared.logging import configure_logging
from shared.runtime import ServiceRuntime, create_http_app, serve
from shared.settings import ServiceSettings, load_settings
from shared.store import open_application


class CommitteeSettings(ServiceSettings):
    service_name: str = "committee"
    http_port: int = 8103
    # KHIDMA_DECISION_WINDOW_DAYS: days the committee has to answer (the seeds say two weeks).
    decision_window_days: int = Field(default=DEFAULT_WINDOW_DAYS, ge=1)


def build(settings: CommitteeSettings, clock: Clock | None = None) -> FastAPI:
    app = open_application(
        CommitteeApplication,
        settings.eventsourcing_env(),
        clock=clock,
        window_days=settings.decision_window_days,
    )
    runtime = ServiceRuntime(
        settings,
        app,
        translators=TRANSLATORS,
        handlers=consumer_handlers(app),
        projector=project,
    )
    return create_http_app(runtime, title="Khidma committee", include=api.include)


def main() -> None:
    settings = load_settings(CommitteeSettings)
    configure_logging(settings.service_name, settings.log_level)
    serve(build(settings), settings)


if __name__ == "__main__":
    main()
