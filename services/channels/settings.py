"""The channel adapters' settings: intake, the issuer, each channel's client."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.form_link import DEFAULT_DAYS
from shared.settings import FormLinkSettings, PersonalDataSettings


class ChannelClient(BaseModel):
    """A channel's machine client at the issuer (its `channel:<name>` roles)."""

    client_id: str = Field(min_length=1)
    client_secret: str = Field(min_length=1)


class ChannelsSettings(PersonalDataSettings, FormLinkSettings, BaseSettings):
    """`KHIDMA_*`: where intake and the token endpoint are, and the adapters' clients.

    `KHIDMA_CHANNEL_CLIENTS` is JSON: {"social_media": {"client_id": …,
    "client_secret": …}, "letter": {…}, …}; or `KHIDMA_CHANNEL_CLIENTS_FILE`, a JSON
    file of the same (make run's). A channel without a client is switched off.
    """

    model_config = SettingsConfigDict(env_prefix="KHIDMA_", extra="ignore")

    service_name: str = "channels"
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8108, ge=0, le=65535)
    data_dir: Path = Path("data")
    log_level: str = "INFO"
    policies_dir: Path = Field(
        default_factory=lambda: Path(__file__).resolve().parent.parent.parent / "policies"
    )

    # Where the keyring is (the blind index of the addresses in the logged outbox).
    store: Literal["sqlite", "postgres"] = "sqlite"
    postgres_host: str = "127.0.0.1"
    postgres_port: int = 5432
    postgres_dbname: str = "khidma"
    postgres_user: str = "postgres"
    postgres_password: str = ""

    intake_url: str
    token_url: str = Field(description="the issuer's token endpoint (client credentials)")
    channel_clients: dict[str, ChannelClient] = Field(default_factory=dict)
    channel_clients_file: Path | None = None
    # Where applicants reach the web application: links sent on a channel (the form
    # with the known fields filled in, "where is my request?").
    public_base_url: str = "http://127.0.0.1:8100"
    # How long a form link with the known fields filled in opens (then the form is
    # empty, with a notice): the fields are personal data, so not for ever.
    form_link_days: int = Field(default=DEFAULT_DAYS, ge=1, le=90)
    # The logged outbox of replies (the default sender of every channel), 0600.
    outbox_path: Path | None = None
    request_timeout_seconds: float = Field(default=15.0, gt=0)

    def clients(self) -> dict[str, ChannelClient]:
        import json

        found = dict(self.channel_clients)
        if self.channel_clients_file and self.channel_clients_file.exists():
            data = json.loads(self.channel_clients_file.read_text())
            found.update({name: ChannelClient(**value) for name, value in data.items()})
        return found

    @property
    def outbox_file(self) -> Path:
        return self.outbox_path or self.data_dir / "channels-outbox.jsonl"
