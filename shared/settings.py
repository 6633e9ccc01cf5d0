"""Settings: one object per service, read from the environment, failing fast."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class PersonalDataSettings(BaseModel):
    """Where the personal data's keys are (shared/personal, decision 24): the services'
    settings and the audit's, which reads with the same key file and keyring."""

    data_dir: Path = Path("data")
    master_key_file: Path | None = Field(
        default=None,
        description="the master key file that wraps every subject key (default "
        "data_dir/master-key.json; under compose a secret); a service stops at start "
        "without it",
    )
    keyring_file: Path | None = Field(
        default=None,
        description="the subject keys' SQLite file, shared by the services (default "
        "data_dir/subject-keys.sqlite); with store=postgres, the schema keyring_schema",
    )
    keyring_schema: str = "subject_keys"

    @property
    def master_key_path(self) -> Path:
        return self.master_key_file or self.data_dir / "master-key.json"

    @property
    def keyring_path(self) -> Path:
        return self.keyring_file or self.data_dir / "subject-keys.sqlite"


class FormLinkSettings(BaseModel):
    """The key of the website form's prefilled links (shared/form_link): the channels
    service seals with it, the web app opens with it."""

    data_dir: Path = Path("data")
    form_link_key_file: Path | None = Field(
        default=None,
        description="the key that seals the known fields into a form link (default "
        "data_dir/form-link.key, made by the embedded runner; under compose a secret); "
        "without one, links are plain; configured but unreadable or damaged, the "
        "service stops at start",
    )

    @property
    def form_link_key_path(self) -> Path:
        return self.form_link_key_file or self.data_dir / "form-link.key"

    @property
    def form_link_key_configured(self) -> bool:
        return self.form_link_key_file is not None


class ServiceSettings(PersonalDataSettings, BaseSettings):
    """What every service needs. A service subclasses it and sets `service_name`."""

    model_config = SettingsConfigDict(env_prefix="KHIDMA_", extra="ignore")

    service_name: str = "service"
    nats_url: str = Field(
        description="NATS server URL, e.g. nats://127.0.0.1:4222; several servers of a "
        "cluster separated by commas"
    )
    nats_user: str | None = None
    nats_password: str | None = None

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)

    store: Literal["sqlite", "postgres"] = "sqlite"
    data_dir: Path = Path("data")
    sqlite_path: Path | None = None
    views_path: Path | None = None
    postgres_host: str = "127.0.0.1"
    postgres_port: int = 5432
    postgres_dbname: str = "khidma"
    postgres_user: str = "postgres"
    postgres_password: str = ""
    postgres_schema: str | None = None

    stream_replicas: int = Field(default=1, ge=1, le=5)
    duplicate_window_seconds: int = Field(default=600, ge=120)
    max_deliveries: int = Field(default=5, ge=1)
    ack_wait_seconds: float = Field(default=30.0, gt=0)
    consumer_batch: int = Field(default=64, ge=1, le=1000)
    relay_batch: int = Field(default=256, ge=1, le=5000)
    # How many publishes the outbox relay keeps in flight (1: one after the other).
    relay_window: int = Field(default=64, ge=1, le=1000)
    poll_interval_seconds: float = Field(default=0.25, gt=0)
    log_level: str = "INFO"
    # Where traces go over OTLP/HTTP (the collector's base URL; `/v1/traces` is added).
    # OpenTelemetry's own OTEL_EXPORTER_OTLP_ENDPOINT works too; unset: no traces.
    otlp_endpoint: str | None = None
    policies_dir: Path = Field(
        default_factory=lambda: Path(__file__).resolve().parent.parent / "policies"
    )
    clock_file: Path | None = Field(
        default=None, description="tests only: a file holding a clock offset in seconds"
    )
    # /ready answers 503 while the durable consumer has more messages than this
    # waiting or in flight (a restarted instance catching up on a backlog).
    ready_max_pending: int = Field(default=10_000, ge=0)
    # /ready answers 503 once the outbox relay has had events to publish and
    # made no progress for this long (publishing keeps failing).
    relay_stall_seconds: float = Field(default=30.0, gt=0)
    # How long a consumed event whose handler says "not yet" (an earlier event
    # it depends on has not arrived) keeps being redelivered before it is
    # dead-lettered; these waits do not count toward max_deliveries.
    retry_later_seconds: float = Field(default=600.0, gt=0)
    fault_exit_after_commit: str | None = Field(
        default=None,
        description="testing only: the process exits (code 75) after committing the first "
        "consumed event of this type (or of any type: `any`) and before acknowledging it, "
        "as a crash between commit and ack would",
    )

    @property
    def nats_servers(self) -> list[str]:
        """The servers of `nats_url` (a cluster's URLs are separated by commas)."""
        return [url.strip() for url in self.nats_url.split(",") if url.strip()]

    @model_validator(mode="after")
    def _fill_paths(self) -> ServiceSettings:
        if self.sqlite_path is None:
            self.sqlite_path = self.data_dir / f"{self.service_name}.sqlite"
        if self.views_path is None:
            self.views_path = self.data_dir / f"{self.service_name}-views.sqlite"
        if self.postgres_schema is None:
            self.postgres_schema = self.service_name
        return self

    @property
    def views_file(self) -> Path:
        """The read models' SQLite file (`views_path`, or its default in the data folder)."""
        return self.views_path or self.data_dir / f"{self.service_name}-views.sqlite"

    def eventsourcing_env(self) -> dict[str, str]:
        """The environment the eventsourcing library reads to build the store."""
        # Multi-row tracking: a redelivered older stream position must still be
        # accepted after a newer one was processed (see docs/decisions.md).
        env = {"SINGLE_ROW_TRACKING": "n", "CREATE_TABLE": "y"}
        if self.store == "sqlite":
            assert self.sqlite_path is not None
            self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            env.update(
                PERSISTENCE_MODULE="eventsourcing.sqlite",
                SQLITE_DBNAME=str(self.sqlite_path),
                SQLITE_LOCK_TIMEOUT="10",
            )
        else:
            env.update(
                PERSISTENCE_MODULE="eventsourcing.postgres",
                POSTGRES_HOST=self.postgres_host,
                POSTGRES_PORT=str(self.postgres_port),
                POSTGRES_DBNAME=self.postgres_dbname,
                POSTGRES_USER=self.postgres_user,
                POSTGRES_PASSWORD=self.postgres_password,
                POSTGRES_SCHEMA=str(self.postgres_schema),
            )
        return env


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_settings(cls: type[SettingsT], **overrides: Any) -> SettingsT:
    """Builds the settings or exits at once with a message an operator can act on."""
    try:
        return cls(**overrides)
    except ValidationError as error:
        lines = [
            f"{cls.__name__}: invalid configuration / إعدادات غير صالحة:",
        ]
        for problem in error.errors():
            prefix = str(cls.model_config.get("env_prefix") or "")
            name = prefix + ("_".join(str(p) for p in problem["loc"]).upper() or "*")
            lines.append(f"  {name}: {problem['msg']}")
        print("\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None
