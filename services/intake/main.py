"""Assembles intake: the one place its dependencies are built."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import Field

from services.intake import api
from services.intake.application import IntakeApplication
from services.intake.handlers import (
    consumer_handlers,
    dead_letter_handler,
    register_submission_subscriber,
)
from services.intake.integration import translators
from services.intake.submitting import submission_group
from services.intake.views import HELD, project
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


class IntakeSettings(ServiceSettings):
    service_name: str = "intake"
    http_port: int = 8101
    # Group commit of submissions (docs/decisions.md, 34): at most this many in one
    # transaction, gathered for at most this long when fewer are waiting.
    submission_batch: int = Field(default=64, ge=1, le=1000)
    submission_wait_ms: float = Field(default=2.0, ge=0, le=100)


def build(
    settings: IntakeSettings, clock: Clock | None = None, verifier: Verifier | None = None
) -> FastAPI:
    packs = load_packs_or_exit(settings.policies_dir, settings.service_name)
    # One verifier for the HTTP edge and the request/reply submissions.
    verifier = verifier or verifier_from_environment()
    app = open_application(
        IntakeApplication,
        settings.eventsourcing_env(),
        clock=clock or clock_from(settings.clock_file),
        sealer=Sealer(open_keyring_or_exit(settings)),
        packs=packs,
    )
    runtime = ServiceRuntime(
        settings,
        app,
        translators=translators(app.sealer),
        handlers=consumer_handlers(app),
        projector=project,
        on_dead_letter=dead_letter_handler(app),
        held_cases=lambda views: views.count(HELD),
    )
    submissions = submission_group(
        app,
        runtime.store,
        max_batch=settings.submission_batch,
        max_wait=settings.submission_wait_ms / 1000,
    )
    register_submission_subscriber(runtime.broker, app, submissions, runtime.recorded, verifier)
    http = create_http_app(runtime, title="Khidma intake", include=api.include, verifier=verifier)
    http.state.submissions = submissions
    return http


def main() -> None:
    settings = load_settings(IntakeSettings)
    keep_private(settings.data_dir)
    configure_logging(settings.service_name, settings.log_level)
    serve(build(settings), settings)


if __name__ == "__main__":
    main()
