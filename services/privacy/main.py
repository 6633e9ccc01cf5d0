"""Assembles the privacy service: the one place its dependencies are built."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import Field

from services.privacy import api
from services.privacy.application import PrivacyApplication
from services.privacy.handlers import consumer_handlers
from services.privacy.integration import TRANSLATORS
from services.privacy.retention import PrivacyRuntime
from services.privacy.views import project
from shared.auth import Verifier, verifier_from_environment
from shared.clock import Clock, clock_from
from shared.http import create_http_app, serve
from shared.logging import configure_logging
from shared.personal import Sealer
from shared.personal.keyring import open_keyring_or_exit
from shared.policy_loader import load_packs_or_exit
from shared.settings import ServiceSettings, load_settings
from shared.store import open_application


class PrivacySettings(ServiceSettings):
    service_name: str = "privacy"
    http_port: int = 8105
    # KHIDMA_RETENTION_SWEEP_SECONDS: how often pending erasures are completed and
    # the retention of every association's pack is applied.
    retention_sweep_seconds: float = Field(default=600.0, gt=0)


def build(
    settings: PrivacySettings, clock: Clock | None = None, verifier: Verifier | None = None
) -> FastAPI:
    packs = load_packs_or_exit(settings.policies_dir, settings.service_name)
    app = open_application(
        PrivacyApplication,
        settings.eventsourcing_env(),
        clock=clock or clock_from(settings.clock_file),
        sealer=Sealer(open_keyring_or_exit(settings)),
        packs=packs,
    )
    runtime = PrivacyRuntime(
        settings,
        app,
        translators=TRANSLATORS,
        handlers=consumer_handlers(app),
        projector=project,
    )

    async def start_sweeper() -> None:
        runtime.spawn(runtime.sweep_forever(settings.retention_sweep_seconds), "privacy sweep")

    return create_http_app(
        runtime,
        title="Khidma privacy",
        include=api.include,
        verifier=verifier or verifier_from_environment(),
        extra_startup=start_sweeper,
    )


def main() -> None:
    settings = load_settings(PrivacySettings)
    configure_logging(settings.service_name, settings.log_level)
    serve(build(settings), settings)


if __name__ == "__main__":
    main()
