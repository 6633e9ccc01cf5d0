"""Assembles surveys: the one place its dependencies are built."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic import Field, model_validator

from services.surveys import api
from services.surveys.application import SurveysApplication
from services.surveys.dispatcher import InvitationDispatcher
from services.surveys.handlers import consumer_handlers
from services.surveys.integration import translators
from services.surveys.outbound import InvitationSender, LoggedOutbox
from services.surveys.views import project
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


class SurveysSettings(ServiceSettings):
    service_name: str = "surveys"
    http_port: int = 8104
    public_base_url: str = Field(
        default="http://127.0.0.1:8104",
        description="where applicants reach this service: the survey link's base",
    )
    outbox_path: Path | None = Field(
        default=None,
        description="the logged outbox of invitations (default data_dir/surveys-outbox.jsonl)",
    )
    dispatch_invitations: bool = Field(
        default=True,
        description="whether this instance sends invitations (one instance per deployment)",
    )

    @model_validator(mode="after")
    def _fill_outbox_path(self) -> SurveysSettings:
        if self.outbox_path is None:
            self.outbox_path = self.data_dir / f"{self.service_name}-outbox.jsonl"
        return self


class SurveysRuntime(ServiceRuntime):
    """The runtime plus the invitation dispatcher, woken with the other tailers."""

    dispatcher: InvitationDispatcher | None = None

    def recorded(self) -> None:
        super().recorded()
        if self.dispatcher:
            self.dispatcher.wake()

    async def readiness(self) -> dict[str, Any]:
        report = await super().readiness()
        if self.dispatcher:
            report["invitations_sent"] = self.dispatcher.sent
            report["invitations_lag"] = await self.dispatcher.lag() if report.get("store") else None
        return report


def build(
    settings: SurveysSettings,
    clock: Clock | None = None,
    sender: InvitationSender | None = None,
    verifier: Verifier | None = None,
) -> FastAPI:
    packs = load_packs_or_exit(settings.policies_dir, settings.service_name)
    app = open_application(
        SurveysApplication,
        settings.eventsourcing_env(),
        clock=clock or clock_from(settings.clock_file),
        sealer=Sealer(open_keyring_or_exit(settings)),
        packs=packs,
    )
    runtime = SurveysRuntime(
        settings,
        app,
        translators=translators(app.sealer),
        handlers=consumer_handlers(app),
        projector=project,
    )
    extra_startup = None
    if settings.dispatch_invitations:
        assert settings.outbox_path is not None
        dispatcher = InvitationDispatcher(
            app,
            runtime.store,
            sender or LoggedOutbox(settings.outbox_path, app.sealer),
            base_url=settings.public_base_url,
            poll_interval=settings.poll_interval_seconds,
        )
        runtime.dispatcher = dispatcher

        async def start_dispatcher() -> None:
            runtime.spawn(dispatcher.run(), "invitation dispatcher")

        extra_startup = start_dispatcher
    return create_http_app(
        runtime,
        title="Khidma surveys",
        include=api.include,
        verifier=verifier or verifier_from_environment(),
        extra_startup=extra_startup,
    )


def main() -> None:
    settings = load_settings(SurveysSettings)
    keep_private(settings.data_dir)
    configure_logging(settings.service_name, settings.log_level)
    serve(build(settings), settings)


if __name__ == "__main__":
    main()
