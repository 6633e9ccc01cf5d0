"""Assembles the channel adapters: the one place their dependencies are built.

Adapters are the modules of `services.channels.adapters`; each may have a
`router` (its HTTP endpoints: a webhook, an upload) and `async def run(app)` (a
listener kept running beside the HTTP server: the SMTP endpoint). They find what
they share on `app.state`: `settings`, `packs`, `intake` (IntakeGateway), `senders`
(channel -> Sender; the logged outbox unless an adapter configures its real one),
`keyring`, `form_links` (the web form's links, the known fields sealed in), and
`client` (an httpx.AsyncClient).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import pkgutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import ModuleType

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse

from services.channels import adapters
from services.channels.form_links import WebFormLinks
from services.channels.intake import IntakeGateway
from services.channels.outbound import LoggedOutbox, Sender
from services.channels.settings import ChannelsSettings
from shared.apidocs_ui import install_api_docs
from shared.files import keep_private
from shared.form_link import load_key_or_exit
from shared.http import AllowedMethods, TracedRequests, answer_refusals, run_server, traced_client
from shared.logging import configure_logging
from shared.machine_token import MachineToken
from shared.openapi import install_refusals
from shared.personal.keyring import open_keyring_or_exit
from shared.policy_loader import load_packs_or_exit
from shared.settings import load_settings

log = logging.getLogger(__name__)


def adapter_modules() -> list[ModuleType]:
    return [
        importlib.import_module(f"{adapters.__name__}.{info.name}")
        for info in sorted(pkgutil.iter_modules(adapters.__path__), key=lambda m: m.name)
    ]


def enabled(app: FastAPI, association_id: str, channel: str, *, own_client: bool = True) -> bool:
    """Whether the association's pack enables the channel and, for a channel that
    submits as its own machine client (`own_client`), the channel has one here."""
    pack = app.state.packs.get(association_id)
    if pack is None or channel not in pack.channels:
        return False
    return not own_client or bool(app.state.intake.serves(channel))


def build(settings: ChannelsSettings) -> FastAPI:
    # Calls to intake and to the token endpoint carry the request's trace; Meta's do not.
    client = traced_client(
        [settings.intake_url, settings.token_url], timeout=settings.request_timeout_seconds
    )
    modules = adapter_modules()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        listeners = [
            asyncio.create_task(module.run(app), name=f"channels {module.__name__}")
            for module in modules
            if hasattr(module, "run")
        ]
        yield
        for task in listeners:
            task.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
        await client.aclose()

    app = FastAPI(title="Khidma channels", lifespan=lifespan, docs_url=None, redoc_url=None)
    keyring = open_keyring_or_exit(settings)
    outbox = LoggedOutbox(settings.outbox_file, keyring)
    app.state.settings = settings
    app.state.packs = load_packs_or_exit(settings.policies_dir, settings.service_name)
    app.state.keyring = keyring
    app.state.client = client
    # The links to the web form carry the known fields sealed (plain without a key).
    app.state.form_links = WebFormLinks(
        settings.public_base_url,
        load_key_or_exit(
            settings.form_link_key_path,
            configured=settings.form_link_key_configured,
            service_name=settings.service_name,
        ),
        settings.form_link_days,
    )
    app.state.intake = IntakeGateway(
        settings.intake_url,
        {
            channel: MachineToken(settings.token_url, c.client_id, c.client_secret, client)
            for channel, c in settings.clients().items()
        },
        client,
    )
    senders: dict[str, Sender] = {}
    app.state.senders = senders
    app.state.outbox = outbox
    answer_refusals(app)
    install_api_docs(app)

    @app.get("/health", tags=["operations"])
    async def health() -> JSONResponse:
        return JSONResponse({"alive": True})

    @app.get("/ready", tags=["operations"])
    async def ready() -> JSONResponse:
        return JSONResponse({"ready": True, "channels": sorted(settings.clients())})

    for module in modules:
        router = getattr(module, "router", None)
        if isinstance(router, APIRouter):
            app.include_router(router)
    install_refusals(app)
    app.add_middleware(AllowedMethods, document=lambda: app.openapi())
    app.add_middleware(TracedRequests)
    return app


def sender_of(app: FastAPI, channel: str) -> Sender:
    """The channel's real sender when one is configured, else the logged outbox."""
    found: Sender = app.state.senders.get(channel) or app.state.outbox
    return found


def main() -> None:
    settings = load_settings(ChannelsSettings)
    keep_private(settings.data_dir)
    configure_logging(settings.service_name, settings.log_level)
    run_server(
        build(settings),
        settings.service_name,
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level,
    )


if __name__ == "__main__":
    main()
