"""Assembles verification: the one place its dependencies are built."""

from __future__ import annotations

from fastapi import FastAPI

from services.verification import api
from services.verification.application import VerificationApplication
from services.verification.handlers import consumer_handlers
from services.verification.integration import translators
from services.verification.views import project
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


class VerificationSettings(ServiceSettings):
    service_name: str = "verification"
    http_port: int = 8102


def build(
    settings: VerificationSettings, clock: Clock | None = None, verifier: Verifier | None = None
) -> FastAPI:
    packs = load_packs_or_exit(settings.policies_dir, settings.service_name)
    app = open_application(
        VerificationApplication,
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
    )
    return create_http_app(
        runtime,
        title="Khidma verification",
        include=api.include,
        verifier=verifier or verifier_from_environment(),
    )


def main() -> None:
    settings = load_settings(VerificationSettings)
    keep_private(settings.data_dir)
    configure_logging(settings.service_name, settings.log_level)
    serve(build(settings), settings)


if __name__ == "__main__":
    main()
