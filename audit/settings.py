"""Audit settings: read from the same KHIDMA_* variables as the services.

The audit reads every service's store (read-only) and, optionally, the KHIDMA
stream. `nats_url` is optional: the store-only commands do not need a broker.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import PersonalDataSettings


class AuditSettings(PersonalDataSettings, BaseSettings):
    """Where the audit finds the stores, the stream and the policy packs."""

    model_config = SettingsConfigDict(env_prefix="KHIDMA_", extra="ignore")

    nats_url: str | None = Field(default=None, description="NATS URL; only for the stream")
    nats_user: str | None = None
    nats_password: str | None = None

    store: Literal["sqlite", "postgres"] = "sqlite"
    data_dir: Path = Path("data")
    postgres_host: str = "127.0.0.1"
    postgres_port: int = 5432
    postgres_dbname: str = "khidma"
    postgres_user: str = "postgres"
    postgres_password: str = ""
    #: a prefix for the per-service schemas (tests); the schema is the service name
    #: when empty, as in shared.settings.ServiceSettings.
    postgres_schema_prefix: str = ""

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8107, ge=0, le=65535)
    policies_dir: Path = Field(
        default_factory=lambda: Path(__file__).resolve().parent.parent / "policies"
    )
    log_level: str = "INFO"

    # Personal data: the services' key file and keyring (PersonalDataSettings), read
    # only. Without the key file the audit still runs and shows sealed values as
    # "sealed"; a wrong key file stops it.

    def sqlite_path(self, service: str) -> Path:
        """The SQLite file of one service's store (data/<service>.sqlite)."""
        return self.data_dir / f"{service}.sqlite"

    def postgres_schema(self, service: str) -> str:
        return f"{self.postgres_schema_prefix}{service}"


def load_audit_settings(**overrides: object) -> AuditSettings:
    """Builds the settings or exits at once with a message an operator can act on."""
    try:
        return AuditSettings(**overrides)  # type: ignore[arg-type]  # pydantic-settings takes any field as a keyword; mypy sees only the declared types
    except ValidationError as error:
        lines = ["AuditSettings: invalid configuration / إعدادات غير صالحة:"]
        for problem in error.errors():
            name = "KHIDMA_" + "_".join(str(p) for p in problem["loc"]).upper()
            lines.append(f"  {name}: {problem['msg']}")
        print("\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None
