"""Which store each service has, for reading (the audit never writes to them)."""

from __future__ import annotations

from audit.settings import AuditSettings

SERVICES: tuple[str, ...] = ("intake", "verification", "committee", "surveys")
# The identity service's store: who held which role where, and when (audit.roles).
# Read beside the four, never replayed into the cases' timelines.
IDENTITY = "identity"
# The privacy service's store: erasure requests, legal holds, each data subject's
# cases by blind index (the access export reads it, audit.export_sources).
PRIVACY = "privacy"
# The audit's own store: only the access log of its data subject exports
# (audit.export); the one store the audit writes to.
AUDIT = "audit"
READABLE: tuple[str, ...] = (*SERVICES, IDENTITY, PRIVACY, AUDIT)


def store_env(service: str, settings: AuditSettings) -> dict[str, str]:
    """The eventsourcing environment of `service`'s store.

    Built like shared.settings.ServiceSettings.eventsourcing_env for
    service_name=<service>, but for reading: no table is created, and a
    missing SQLite file is not created either (check `store_exists` first).
    """
    if service not in READABLE:
        raise ValueError(f"unknown service {service!r}; expected one of {READABLE}")
    env = {"SINGLE_ROW_TRACKING": "n", "CREATE_TABLE": "n"}
    if settings.store == "sqlite":
        env.update(
            PERSISTENCE_MODULE="eventsourcing.sqlite",
            SQLITE_DBNAME=str(settings.sqlite_path(service)),
            SQLITE_LOCK_TIMEOUT="10",
        )
    else:
        env.update(
            PERSISTENCE_MODULE="eventsourcing.postgres",
            POSTGRES_HOST=settings.postgres_host,
            POSTGRES_PORT=str(settings.postgres_port),
            POSTGRES_DBNAME=settings.postgres_dbname,
            POSTGRES_USER=settings.postgres_user,
            POSTGRES_PASSWORD=settings.postgres_password,
            POSTGRES_SCHEMA=settings.postgres_schema(service),
        )
    return env


def own_store_env(settings: AuditSettings) -> dict[str, str]:
    """The eventsourcing environment of the audit's own store, for writing (tables made)."""
    env = {**store_env(AUDIT, settings), "CREATE_TABLE": "y"}
    if settings.store == "sqlite":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        path = settings.sqlite_path(AUDIT)
        if not path.exists():
            path.touch(mode=0o600)
    return env


def store_exists(service: str, settings: AuditSettings) -> bool:
    """True when the service's store can be read (SQLite: the file exists)."""
    if settings.store == "sqlite":
        return settings.sqlite_path(service).exists()
    import psycopg

    try:
        with psycopg.connect(
            host=settings.postgres_host,
            port=settings.postgres_port,
            dbname=settings.postgres_dbname,
            user=settings.postgres_user,
            password=settings.postgres_password or None,
            connect_timeout=5,
        ) as connection:
            row = connection.execute(
                "SELECT to_regclass(%s)",
                (f'"{settings.postgres_schema(service)}"."{service}_events"',),
            ).fetchone()
    except psycopg.OperationalError:
        return False
    return bool(row and row[0])
