from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js import JetStreamContext

from khidma.nats_server import NatsServer
from shared.clock import Clock
from shared.stream import ensure_stream
from tests.auth import ISSUER, auth_environment
from tests.in_process import InProcessService, start_in_process

# The `backend` fixture (each test on SQLite and on PostgreSQL), for every test that asks.
pytest_plugins = ["tests.backends", "tests.web"]


def pytest_configure(config: pytest.Config) -> None:
    """Every service the tests start, in process or as a process, trusts the tests'
    issuer (tests/auth.py), by the same settings an operator would give."""
    folder = Path(tempfile.mkdtemp(prefix="khidma-test-issuer-"))
    os.environ.update(auth_environment(ISSUER.write_jwks(folder / "jwks.json")))


POSTGRES_DSN: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 5432,
    "dbname": "test",
    "user": "postgres",
}


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A real JetStream server of our own, on a free port, with a fresh store."""
    server = NatsServer(tmp_path / "nats", log_file=tmp_path / "nats.log").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def js(nats_server: NatsServer) -> AsyncIterator[JetStreamContext]:
    """JetStream on the test's own server, with the KHIDMA stream declared."""
    connection = await nats.connect(nats_server.url)
    stream = connection.jetstream()
    await ensure_stream(stream)
    yield stream
    await connection.close()


@pytest.fixture
def postgres_available() -> dict[str, str]:
    """Connection settings of the machine's PostgreSQL; under CI, failing to connect fails."""
    import psycopg

    try:
        with psycopg.connect(connect_timeout=3, **POSTGRES_DSN):
            pass
    except psycopg.OperationalError as error:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required under CI and could not connect: {error}")
        pytest.skip(f"PostgreSQL not reachable: {error}")
    return {k: str(v) for k, v in POSTGRES_DSN.items()}


@pytest.fixture
async def in_process(
    tmp_path: Path,
) -> AsyncIterator[Callable[..., Awaitable[InProcessService]]]:
    """Starts a service's HTTP API in this process, on its real application and a
    SQLite store of its own, without NATS: `await in_process("intake", clock=...)`.

    Each service is stopped (its lifespan ended, its client closed) after the test.
    """
    async with AsyncExitStack() as stack:

        async def start(service: str, *, clock: Clock | None = None) -> InProcessService:
            return await start_in_process(service, tmp_path / service, stack, clock=clock)

        yield start
