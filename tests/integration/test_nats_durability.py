"""Every NATS configuration fsyncs each write before its ack (docs/decisions.md, 31):
the compose server, the cluster's nodes and the embedded server of `make run`."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from khidma.nats_server import (
    DEPLOY_NATS_CONFIG,
    NatsServer,
    embedded_credentials,
    free_port,
    local_copy_of_config,
    nats_server_binary,
)
from khidma.processes import PROJECT_ROOT

pytestmark = pytest.mark.integration
CONFIGS = [DEPLOY_NATS_CONFIG, PROJECT_ROOT / "deploy" / "cluster" / "nats-node.conf"]


def jetstream_block(text: str) -> str:
    found = re.search(r"(?ms)^jetstream\s*\{(.*?)^\}", text)
    assert found, "no jetstream block"
    return found.group(1)


def password_env(folder: Path) -> dict[str, str]:
    """The users' passwords as the configuration reads them (its `$VAR`s)."""
    passwords = embedded_credentials(folder / "credentials" / "credentials.json")
    return {f"{user.upper()}_NATS_PASSWORD": password for user, password in passwords.items()}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda path: path.name)
def test_the_configuration_syncs_always_and_the_bundled_server_accepts_it(
    config: Path, tmp_path: Path
) -> None:
    lines = [line.split("#")[0].strip() for line in jetstream_block(config.read_text()).splitlines()]
    assert "sync_interval: always" in lines
    # Beside the users' file, as compose mounts both (the cluster's nodes share it).
    source = tmp_path / "source"
    source.mkdir()
    (source / config.name).write_text(config.read_text())
    (source / "auth.conf").write_text((DEPLOY_NATS_CONFIG.parent / "auth.conf").read_text())
    copy = local_copy_of_config(
        source / config.name, tmp_path / "copy", port=free_port(), store_dir=tmp_path / "js"
    )
    checked = subprocess.run(
        [nats_server_binary(), "-c", str(copy), "-t"],
        env={**os.environ, **password_env(tmp_path), "NATS_SERVER_NAME": "khidma-nats-1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_embedded_server_runs_with_every_write_synced(tmp_path: Path) -> None:
    monitoring = free_port()
    port = free_port()
    copy = local_copy_of_config(
        DEPLOY_NATS_CONFIG, tmp_path, port=port, store_dir=tmp_path / "js", http_port=monitoring
    )
    with NatsServer(tmp_path / "js", port=port, config_file=copy, env=password_env(tmp_path)):
        varz = httpx.get(f"http://127.0.0.1:{monitoring}/varz", timeout=5).json()
    assert varz["jetstream"]["config"]["sync_always"] is True


def test_a_plain_server_syncs_always_when_asked(tmp_path: Path) -> None:
    with NatsServer(tmp_path / "js", sync_interval="always") as server:
        assert server.process is not None
    assert "sync_interval: always" in (tmp_path / "js" / "plain-nats.conf").read_text()
