"""The web application's settings: where the services are, and its session key."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import FormLinkSettings


class WebSettings(FormLinkSettings, BaseSettings):
    """`KHIDMA_*`: the web application's port, the services it calls, its secrets."""

    model_config = SettingsConfigDict(env_prefix="KHIDMA_", extra="ignore")

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8100, ge=0, le=65535)
    data_dir: Path = Path("data")
    log_level: str = "INFO"

    identity_url: str = Field(description="the identity service (its /oauth/token)")
    intake_url: str
    verification_url: str
    committee_url: str
    surveys_url: str
    privacy_url: str
    audit_url: str
    # The channel adapters: the branch offices' batches are uploaded through them.
    channels_url: str
    # The token endpoint staff sign in at (default: identity_url/oauth/token; under
    # Keycloak, the realm's).
    token_url: str | None = None
    # The OAuth client staff sign in through, where the provider asks for one (Keycloak's
    # public staff client); the embedded identity service needs none.
    staff_client_id: str | None = None
    # The website channel's machine client: the public pages submit as it.
    website_client_id: str | None = None
    website_client_secret: str | None = None
    website_client_file: Path | None = Field(
        default=None,
        description="a JSON file {client_id, client_secret} (make run's), instead of the two above",
    )

    session_key_file: Path | None = Field(
        default=None,
        description="the key that seals the session cookies (default data_dir/web-session.key, "
        "made on the first start; under compose a secret)",
    )
    # Secure cookies (HTTPS only): on under compose, off for make run on 127.0.0.1.
    cookie_secure: bool = False
    # How often a waiting screen asks for news (htmx polling), in seconds.
    refresh_seconds: float = Field(default=5.0, gt=0)
    # The services are asked with this timeout.
    backend_timeout_seconds: float = Field(default=15.0, gt=0)

    @property
    def token_endpoint(self) -> str:
        return self.token_url or f"{self.identity_url.rstrip('/')}/oauth/token"

    @property
    def session_key_path(self) -> Path:
        return self.session_key_file or self.data_dir / "web-session.key"
