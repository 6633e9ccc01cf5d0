"""The three-node NATS cluster example of deploy/cluster, on real servers.

The override validates with docker-compose.yml against the compose
specification; three local nodes run deploy/cluster/nats-node.conf (ports,
routes and store directories moved to local ones); the init step, as admin,
declares the KHIDMA stream with 3 replicas, and a service, with its own
credentials and every node's URL, keeps publishing after a node is killed; the node
comes back and catches up, and after a second node is lost every acknowledged
message is still in the stream.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from pathlib import Path
from typing import Any, Iterator
from uuid import uuid4

import jsonschema
import nats
import pytest

from khidma.compose import COMPOSE_FILE, COMPOSE_SCHEMA, PROJECT_ROOT, environment_of, load_merged
from khidma.nats_server import SERVICE_USERS, NatsServer, free_port
from shared.stream import declare_everything, inbox_prefix
from shared.subjects import event_subject
from tests.helpers import async_wait_for, compose_key_files

pytestmark = pytest.mark.integration

CLUSTER = PROJECT_ROOT / "deploy" / "cluster"
OVERRIDE = CLUSTER / "docker-compose.cluster.yml"
NODE_CONFIG = CLUSTER / "nats-node.conf"
SECRETS = ("POSTGRES_PASSWORD", *(f"{u.upper()}_NATS_PASSWORD" for u in (*SERVICE_USERS, "admin")))


def test_the_cluster_override_validates_and_points_every_service_at_three_nodes() -> None:
    env = {name: "k" + secrets.token_urlsafe(12) for name in SECRETS}
    env["SURVEYS_PUBLIC_BASE_URL"] = "https://surveys.example.org"
    env |= compose_key_files()
    env["WEBSITE_CLIENT_SECRET"] = "k" + secrets.token_urlsafe(12)
    merged = load_merged(env, COMPOSE_FILE, OVERRIDE)
    jsonschema.Draft201909Validator(json.loads(COMPOSE_SCHEMA.read_text())).validate(merged)
    services = merged["services"]
    assert {"nats", "nats-2", "nats-3"} <= set(services)
    for node in ("nats", "nats-2", "nats-3"):
        mounts = {v.split(":")[1]: v.split(":")[0] for v in services[node]["volumes"] if v.startswith("./")}
        assert mounts["/etc/nats/nats-server.conf"] == "./deploy/cluster/nats-node.conf", node
        assert mounts["/etc/nats/auth.conf"] == "./deploy/nats/auth.conf", node
        for source in mounts.values():
            assert (PROJECT_ROOT / source).is_file(), source
        assert environment_of(services[node])["NATS_SERVER_NAME"]
    for name in SERVICE_USERS:
        service_env = environment_of(services[name])
        assert service_env["KHIDMA_STREAM_REPLICAS"] == "3"
        assert len(service_env["KHIDMA_NATS_URL"].split(",")) == 3
        assert service_env["KHIDMA_NATS_USER"] == name  # the base file's credentials stay
        assert set(services[name]["depends_on"]) == {
            "nats", "nats-2", "nats-3", "postgres", "nats-init", "identity"
        }
    audit = environment_of(services["audit"])
    assert len(audit["KHIDMA_NATS_URL"].split(",")) == 3 and audit["KHIDMA_NATS_USER"] == "admin"
    # The init step declares the stream with 3 replicas, on all three nodes.
    init_env = environment_of(services["nats-init"])
    assert init_env["KHIDMA_STREAM_REPLICAS"] == "3"
    assert len(init_env["KHIDMA_NATS_URL"].split(",")) == 3
    assert init_env["KHIDMA_NATS_USER"] == "admin"
    assert set(services["nats-init"]["depends_on"]) == {"nats", "nats-2", "nats-3"}


class Node:
    def __init__(self, root: Path, name: str, client: int, route: int, routes: list[int], env: dict[str, str]):
        text = NODE_CONFIG.read_text()
        text = re.sub(r"(?m)^port:\s*\d+", f"port: {client}", text)
        text = re.sub(r"(?m)^http_port:\s*\d+", f"http_port: {free_port()}", text)
        text = re.sub(r"(?m)^(\s*)store_dir:\s*\S+", rf"\g<1>store_dir: {root / name / 'js'}", text)
        text = re.sub(r"(?m)^(\s*)port: 6222", rf"\g<1>port: {route}", text)
        text = re.sub(r"nats-route://nats(-\d)?:6222\n", "", text)
        text = text.replace(
            "routes: [\n", "routes: [\n" + "".join(f"    nats-route://127.0.0.1:{p}\n" for p in routes)
        )
        directory = root / name
        directory.mkdir(parents=True)
        (directory / "auth.conf").write_text((PROJECT_ROOT / "deploy" / "nats" / "auth.conf").read_text())
        (directory / "nats-server.conf").write_text(text)
        self.server = NatsServer(
            directory / "js", port=client, config_file=directory / "nats-server.conf",
            log_file=directory / "nats.log", env={**env, "NATS_SERVER_NAME": name},
        )


@pytest.fixture
def passwords() -> dict[str, str]:
    return {user: "k" + secrets.token_urlsafe(12) for user in (*SERVICE_USERS, "admin")}


@pytest.fixture
def cluster(tmp_path: Path, passwords: dict[str, str]) -> Iterator[list[NatsServer]]:
    env = {f"{user.upper()}_NATS_PASSWORD": pw for user, pw in passwords.items()}
    clients = [free_port() for _ in range(3)]
    routes = [free_port() for _ in range(3)]
    nodes = [
        Node(tmp_path, f"khidma-nats-{n + 1}", clients[n], routes[n], routes, env).server
        for n in range(3)
    ]
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.stop()


async def test_the_stream_has_three_replicas_and_survives_losing_a_node(
    cluster: list[NatsServer], passwords: dict[str, str]
) -> None:
    urls = [node.url for node in cluster]
    admin = await nats.connect(urls, user="admin", password=passwords["admin"])
    try:
        admin_js = admin.jetstream(timeout=3)

        async def declared() -> bool:
            await declare_everything(admin_js, replicas=3)
            return True

        # The cluster elects its JetStream meta leader first.
        await async_wait_for(declared, timeout=30, interval=0.5, what="the stream on the cluster")
    finally:
        await admin.close()
    connection = await nats.connect(
        urls, user="intake", password=passwords["intake"], reconnect_time_wait=0.2,
        max_reconnect_attempts=-1, inbox_prefix=inbox_prefix("intake"),
    )
    try:
        js = connection.jetstream(timeout=3)
        info = await js.stream_info("KHIDMA")
        assert info.config.num_replicas == 3
        assert info.cluster and info.cluster.leader and len(info.cluster.replicas or []) == 2

        async def publish() -> bool:
            case = uuid4()
            ack = await js.publish(
                event_subject("sidr", case, "RequestReceived"), b"{}", headers={"Nats-Msg-Id": str(case)}
            )
            return ack.stream == "KHIDMA"

        acknowledged = 0
        for _ in range(20):
            assert await publish()
            acknowledged += 1
        # Lose the stream's leader (kill -9): the other two still make a quorum.
        leader = info.cluster.leader
        victim = node_named(cluster, leader)
        victim.kill()
        await async_wait_for(publish, timeout=30, interval=0.5, what="publishing after losing a node")
        acknowledged += 1
        for _ in range(19):
            assert await publish()
            acknowledged += 1
        info = await js.stream_info("KHIDMA")
        assert info.state.messages == acknowledged
        assert info.cluster.leader != leader
        # The node comes back and catches up from the others.
        victim.start()

        async def caught_up() -> bool:
            found = await js.stream_info("KHIDMA")
            replica = next((r for r in found.cluster.replicas or [] if r.name == leader), None)
            return bool(replica and replica.current and not replica.lag)

        await async_wait_for(caught_up, timeout=60, interval=0.5, what="the node to catch up")
        # Then lose the new leader: what was acknowledged is on the two left,
        # the node that came back among them.
        second = node_named(cluster, (await js.stream_info("KHIDMA")).cluster.leader)
        second.kill()
        await async_wait_for(publish, timeout=30, interval=0.5, what="publishing after a second loss")
        acknowledged += 1
        info = await js.stream_info("KHIDMA")
        assert info.state.messages == acknowledged
        assert info.cluster.leader not in (second_name(cluster, second), None)
    finally:
        await connection.close()


def node_named(cluster: list[NatsServer], name: str | None) -> NatsServer:
    return next(node for node in cluster if f"khidma-nats-{cluster.index(node) + 1}" == name)


def second_name(cluster: list[NatsServer], node: NatsServer) -> str:
    return f"khidma-nats-{cluster.index(node) + 1}"
