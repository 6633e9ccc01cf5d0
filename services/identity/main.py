"""Assembles identity: the one place its dependencies are built.

The identity service is not on the bus: it publishes nothing and consumes
nothing, so its runtime starts no broker (no NATS is needed to sign in).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI
from faststream.nats import NatsBroker
from faststream.specification import AsyncAPI
from pydantic import Field, field_validator, model_validator

from services.identity import api
from services.identity.application import IdentityApplication
from services.identity.domain import SecretHasher
from services.identity.keys import KeyFile
from services.identity.tokens import TokenPolicy
from shared.auth import FunctionJwks, IssuerSettings, Verifier
from shared.clock import Clock, clock_from
from shared.files import keep_private
from shared.http import create_http_app, serve
from shared.logging import configure_logging
from shared.policy_loader import load_packs_or_exit
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings, load_settings
from shared.store import open_application

SERVICE_ACTOR = "identity-service"


class IdentitySettings(ServiceSettings):
    service_name: str = "identity"
    http_port: int = 8106
    nats_url: str = Field(default="", description="unused: the identity service is not on the bus")
    issuer: str | None = Field(
        default=None,
        description="this issuer's URL, the `iss` of its tokens and the base of its endpoints "
        "(default http://<http_host>:<http_port>)",
    )
    audience: str = Field(default="khidma", min_length=1, description="the `aud` of its tokens")
    token_lifetime_seconds: int = Field(default=900, ge=60, le=86_400)
    signing_algorithm: Literal["ES256", "RS256"] = "ES256"
    key_file: Path | None = Field(
        default=None,
        description="the private signing keys, mode 0600 (default <data_dir>/identity-keys.json)",
    )
    roles_claim: str = Field(default="khidma_roles", min_length=1)

    @field_validator("issuer")
    @classmethod
    def _issuer_is_a_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("the issuer must be an http(s) URL, e.g. https://id.example.org")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _fill_identity_paths(self) -> IdentitySettings:
        if self.issuer is None:
            self.issuer = f"http://{self.http_host}:{self.http_port}"
        if self.key_file is None:
            self.key_file = self.data_dir / "identity-keys.json"
        return self

    def token_policy(self) -> TokenPolicy:
        assert self.issuer is not None
        return TokenPolicy(
            issuer=self.issuer,
            audience=self.audience,
            lifetime_seconds=self.token_lifetime_seconds,
            roles_claim=self.roles_claim,
        )


def open_identity(
    settings: IdentitySettings, clock: Clock | None = None, hasher: SecretHasher | None = None
) -> IdentityApplication:
    """The application on its store, for the service and for the command line."""
    assert settings.key_file is not None
    return open_application(
        IdentityApplication,
        settings.eventsourcing_env(),
        clock=clock or clock_from(settings.clock_file),
        packs=load_packs_or_exit(settings.policies_dir, settings.service_name),
        key_file=KeyFile(settings.key_file),
        tokens=settings.token_policy(),
        hasher=hasher,
    )


class IdentityRuntime(ServiceRuntime[IdentityApplication]):
    """The runtime without a broker: it makes sure a signing key is at hand, and serves."""

    settings: IdentitySettings

    async def start(self) -> None:
        # Fails the start when the active key's private half is missing, or
        # the key file is readable by others.
        await self.store.run(
            self.app.ensure_signing_key,
            algorithm=self.settings.signing_algorithm,
            by=SERVICE_ACTOR,
        )
        self.started = True

    async def stop(self) -> None:
        self.store.close()
        self.app.close()

    async def readiness(self) -> dict[str, Any]:
        report: dict[str, Any] = await self.probe_store()
        report["caught_up"] = self.started
        report["ready"] = bool(self.started and report["store"])
        return report

    async def update_metrics(self) -> None:
        from shared import metrics

        report = await self.readiness()
        metrics.READY.labels(self.settings.service_name).set(1 if report["ready"] else 0)

    def asyncapi_specification(self) -> Any:
        return AsyncAPI(
            NatsBroker(),
            title="Khidma identity events",
            version="1.0.0",
            description="The identity service publishes and consumes nothing: its history "
            "(users, roles, clients, keys) stays in its own store.",
        ).to_specification()


def build(
    settings: IdentitySettings, clock: Clock | None = None, hasher: SecretHasher | None = None
) -> FastAPI:
    app = open_identity(settings, clock, hasher)
    runtime = IdentityRuntime(settings, app)
    assert settings.issuer is not None

    async def own_keys() -> dict[str, Any]:
        return await runtime.store.run(app.jwks)

    # The admin routes accept this issuer's own tokens, its keys read from its store.
    verifier = Verifier(
        [
            IssuerSettings(
                issuer=settings.issuer,
                audience=settings.audience,
                jwks={"keys": []},
                roles_claim=settings.roles_claim,
            )
        ],
        jwks_min_refetch_seconds=1.0,
        sources={settings.issuer: FunctionJwks(own_keys)},
    )

    return create_http_app(runtime, title="Khidma identity", include=api.include, verifier=verifier)


def main() -> None:
    settings = load_settings(IdentitySettings)
    keep_private(settings.data_dir)
    configure_logging(settings.service_name, settings.log_level)
    serve(build(settings), settings)


if __name__ == "__main__":
    main()
