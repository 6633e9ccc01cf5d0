"""The event-store backends the store, consumer and relay tests run on.

`backend` is parametrized: every test that uses it runs on a SQLite file and on
the machine's PostgreSQL (a fresh schema per test, dropped afterwards), with
the same application code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, TypeVar
from uuid import uuid4

import psycopg
import pytest

from shared.personal.master import MasterKeys
from shared.settings import ServiceSettings
from shared.store import ServiceApplication, open_application

AppT = TypeVar("AppT", bound=ServiceApplication)


class Backend:
    def __init__(self, kind: str, tmp_path: Path, dsn: dict[str, str] | None = None):
        self.kind = kind
        self.tmp_path = tmp_path
        self.dsn = dsn
        self.prefix = f"t_{uuid4().hex[:8]}"
        self.apps: list[ServiceApplication] = []

    def __repr__(self) -> str:
        return f"Backend({self.kind})"

    def settings(self, service_name: str) -> ServiceSettings:
        if self.kind == "sqlite":
            return ServiceSettings(
                service_name=service_name, nats_url="nats://unused", data_dir=self.tmp_path / "data"
            )
        assert self.dsn is not None
        return ServiceSettings(
            service_name=service_name,
            nats_url="nats://unused",
            data_dir=self.tmp_path / "data",
            store="postgres",
            postgres_host=self.dsn["host"],
            postgres_port=int(self.dsn["port"]),
            postgres_dbname=self.dsn["dbname"],
            postgres_user=self.dsn["user"],
            postgres_schema=f"{self.prefix}_{service_name}",
            # The keyring the services share, this test's own (dropped with the rest).
            keyring_schema=f"{self.prefix}_keys",
        )

    def keys_env(self) -> dict[str, str]:
        """One master key file and keyring for every process of the test, as a
        deployment's services share them (each instance its own data folder)."""
        key_file = MasterKeys.ensure(self.tmp_path / "master-key.json").path
        return {
            "KHIDMA_MASTER_KEY_FILE": str(key_file),
            "KHIDMA_KEYRING_FILE": str(self.tmp_path / "subject-keys.sqlite"),
            **({"KHIDMA_KEYRING_SCHEMA": f"{self.prefix}_keys"} if self.kind == "postgres" else {}),
        }

    def process_env(self, service_name: str) -> dict[str, str]:
        """The environment that points a service process (khidma.processes) at this store."""
        settings = self.settings(service_name)
        if self.kind == "sqlite":
            return {
                "KHIDMA_STORE": "sqlite",
                "KHIDMA_SQLITE_PATH": str(settings.sqlite_path),
                **self.keys_env(),
            }
        return {
            **self.keys_env(),
            "KHIDMA_STORE": "postgres",
            "KHIDMA_POSTGRES_HOST": settings.postgres_host,
            "KHIDMA_POSTGRES_PORT": str(settings.postgres_port),
            "KHIDMA_POSTGRES_DBNAME": settings.postgres_dbname,
            "KHIDMA_POSTGRES_USER": settings.postgres_user,
            "KHIDMA_POSTGRES_SCHEMA": str(settings.postgres_schema),
            "KHIDMA_KEYRING_SCHEMA": settings.keyring_schema,
        }

    def open(self, cls: type[AppT], service_name: str, **kwargs: Any) -> AppT:
        """The service's application on this backend; the same store when opened again."""
        app = open_application(cls, self.settings(service_name).eventsourcing_env(), **kwargs)
        self.apps.append(app)
        return app

    def cleanup(self) -> None:
        for app in self.apps:
            try:
                app.close()
            except Exception:
                pass
        if self.kind == "postgres" and self.dsn:
            with psycopg.connect(autocommit=True, **self.dsn) as connection:  # type: ignore[arg-type]
                schemas = [
                    row[0]
                    for row in connection.execute(
                        "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s",
                        (f"{self.prefix}_%",),
                    )
                ]
                for schema in schemas:
                    connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    dsn = request.getfixturevalue("postgres_available") if request.param == "postgres" else None
    chosen = Backend(request.param, tmp_path, dsn)
    try:
        yield chosen
    finally:
        chosen.cleanup()
