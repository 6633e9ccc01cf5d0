"""`make run`'s own NATS: the deployment's users and permissions, not anonymous access.

The permissions themselves are tested rule by rule in
tests/integration/test_nats_permissions.py (the same configuration file); here,
that the embedded system really runs it: anonymous clients are refused, each
service is connected as its own user, and the passwords are kept private.
"""

from __future__ import annotations

import asyncio
import json
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from khidma.nats_server import NATS_USERS
from khidma.run import EmbeddedSystem

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedSystem]:
    with EmbeddedSystem(tmp_path_factory.mktemp("embedded") / "data", fixed_ports=False) as running:
        yield running


async def connect_quietly(url: str, **credentials: str) -> Any:
    errors: list[str] = []

    async def note(error: Exception) -> None:
        errors.append(str(error))

    try:
        return await nats.connect(
            url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=3,
            error_cb=note, **credentials,
        )
    except Exception as error:  # noqa: BLE001 — the refusal is what is checked
        raise ConnectionRefusedError(str(error) or "; ".join(errors)) from error


def test_an_anonymous_client_is_refused(system: EmbeddedSystem) -> None:
    with pytest.raises(ConnectionRefusedError, match="(?i)authorization"):
        asyncio.run(connect_quietly(str(system.nats_url)))


def test_a_wrong_password_is_refused(system: EmbeddedSystem) -> None:
    with pytest.raises(ConnectionRefusedError, match="(?i)authorization"):
        asyncio.run(connect_quietly(str(system.nats_url), user="intake", password="not-it"))


def test_each_service_is_connected_as_its_own_user(system: EmbeddedSystem) -> None:
    config = (system.data_dir / "nats-config" / "nats-server.conf").read_text()
    monitoring = int(re.search(r"(?m)^http_port:\s*(\d+)", config).group(1))  # type: ignore[union-attr]
    connections = httpx.get(f"http://127.0.0.1:{monitoring}/connz?auth=true", timeout=5).json()
    users = {entry.get("name"): entry.get("authorized_user") for entry in connections["connections"]}
    for service in ("intake", "verification", "committee", "surveys", "privacy"):
        assert users.get(f"khidma-{service}") == service, users


def test_a_service_user_may_not_publish_another_services_event(system: EmbeddedSystem) -> None:
    passwords = json.loads(system.nats_credentials_file.read_text())

    async def attempt() -> list[str]:
        errors: list[str] = []

        async def note(error: Exception) -> None:
            errors.append(str(error))

        connection = await nats.connect(
            str(system.nats_url), user="surveys", password=passwords["surveys"], error_cb=note,
            allow_reconnect=False, inbox_prefix="_INBOX_surveys",
        )
        try:
            await connection.publish("khidma.sidr.case-x.CommitteeDecided", b"{}")
            await connection.flush()
            deadline = asyncio.get_running_loop().time() + 5
            while not errors and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
        finally:
            await connection.close()
        return errors

    assert any("permissions violation" in error.lower() for error in asyncio.run(attempt()))


def test_the_passwords_are_private_and_the_admin_reads_the_stream(system: EmbeddedSystem) -> None:
    credentials = system.nats_credentials_file
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(credentials.parent.stat().st_mode) == 0o700
    passwords = json.loads(credentials.read_text())
    assert set(passwords) == set(NATS_USERS)
    assert len(set(passwords.values())) == len(NATS_USERS)
    endpoints = json.loads((system.data_dir / "endpoints.json").read_text())
    assert Path(endpoints["nats_credentials"]) == credentials.resolve()
    assert passwords["admin"] not in json.dumps(endpoints)

    async def stream_info() -> Any:
        connection = await connect_quietly(system.admin_nats_url)
        try:
            return await connection.jetstream().stream_info("KHIDMA")
        finally:
            await connection.close()

    assert asyncio.run(stream_info()).config.name == "KHIDMA"


def test_a_restart_keeps_the_passwords(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with EmbeddedSystem(data, fixed_ports=False) as first:
        before = dict(first.nats_passwords)
    with EmbeddedSystem(data, fixed_ports=False) as second:
        assert second.nats_passwords == before
        assert all(
            httpx.get(f"{process.url}/ready", timeout=5).status_code == 200
            for process in second.services.values()
        )
