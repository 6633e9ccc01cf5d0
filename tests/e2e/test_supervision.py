"""The runner keeps its services alive: a killed one comes back, a broken one is given
up while the others run on, and a killed runner leaves no child behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from khidma.processes import PROJECT_ROOT
from khidma.run import EmbeddedSystem
from khidma.supervise import RestartPolicy
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e


def quick_policy() -> RestartPolicy:
    return RestartPolicy(first_delay=0.1, max_delay=0.2, max_failures=3, window=60)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedSystem]:
    with EmbeddedSystem(
        tmp_path_factory.mktemp("supervised"), fixed_ports=False, restart_policy=quick_policy
    ) as running:
        yield running


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_service_killed_with_minus_nine_is_restarted_and_ready_again(
    system: EmbeddedSystem,
) -> None:
    verification = system.services["verification"]
    killed = verification.pid
    assert killed is not None
    os.kill(killed, signal.SIGKILL)
    supervisor = system.supervisor
    assert supervisor is not None
    wait_for(
        lambda: supervisor.restarts.get("verification") == 1,
        timeout=40,
        what="verification restarted",
    )
    assert verification.pid not in (None, killed) and ready(verification.url)
    assert system.failed_services() == []


def test_a_service_failing_at_every_start_is_given_up_and_the_others_stay_up(
    system: EmbeddedSystem,
) -> None:
    surveys = system.services["surveys"]
    # From now on it exits at once: its port is no port.
    surveys.env["KHIDMA_HTTP_PORT"] = "not-a-port"
    assert surveys.pid is not None
    os.kill(surveys.pid, signal.SIGKILL)
    wait_for(lambda: system.failed_services() == ["surveys"], timeout=60, what="surveys given up")
    assert system.supervisor is not None and "surveys" not in system.supervisor.restarts
    for name, process in system.services.items():
        if name != "surveys":
            assert ready(process.url), name


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_runner_killed_with_minus_nine_leaves_no_child_alive(tmp_path: Path) -> None:
    data = tmp_path / "data"
    children: list[int] = []
    environment = {key: value for key, value in os.environ.items() if key != "NATS_URL"}
    runner = subprocess.Popen(
        [sys.executable, "-m", "khidma.run", "--data-dir", str(data)],
        cwd=PROJECT_ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: runner.poll() is not None or (data / "endpoints.json").exists(),
            timeout=120,
            what="make run to start",
        )
        assert runner.poll() is None, "make run exited during start-up"
        children += children_of(runner.pid)
        # the embedded nats-server and the nine services
        assert len(children) >= 10, children
        runner.kill()
        runner.wait()
        wait_for(
            lambda: not any(alive(child) for child in children),
            timeout=20,
            what="every child of the killed runner gone",
        )
    finally:
        if runner.poll() is None:
            runner.kill()
        for child in children:
            if alive(child):
                os.kill(child, signal.SIGKILL)
