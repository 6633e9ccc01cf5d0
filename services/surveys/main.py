"""Assembles surveys: the one place its dependencies are built."""

from __future__ import annotations

from fastapi import FastAPI

from services.surveys import api
from services.surveys.application import SurveysApplication
from services.surveys.handlers import consumer_handlers
from services.surveys.integration import TRANSLATORS
from services.surveys.views import project
from shared.clock import Clock
from shared.logging import configure_logging
from shared.runtime import ServiceRuntime, create_http_app, serve
from shared.settings import ServiceSettings, load_settings
from shared.store import open_application


class SurveysSettings(ServiceSettings):
    service_name: str = "surveys"
    http_port: int = 8104


def build(settings: SurveysSettings, clock: Clock | None = None) -> FastAPI:
    app = open_application(SurveysApplication, settings.eventsourcing_env(), clock=clock)
    runtime = ServiceRuntime(
        settings,
        app,
        translators=TRANSLATORS,
        handlers=consumer_handlers(app),
        projector=project,
    )
    return create_http_app(runtime, title="Khidma surveys", include=api.include)


def main() -> None:
    settings = load_settings(SurveysSettings)
    configure_logging(settings.service_name, settings.log_level)
    serve(build(settings), settings)


if __name__ == "__main__":
    main()
