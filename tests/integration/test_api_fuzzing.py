"""Schemathesis, with all its checks, against each service's OpenAPI document on a
running system (make run's EmbeddedSystem): no server error and no status the
document does not name. A bounded profile (few examples per operation, a fixed
seed, no stateful phase) keeps it within the suite's time; `KHIDMA_FUZZ_EXAMPLES`
raises it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from khidma.run import EmbeddedSystem
from tests.auth import as_staff

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).resolve().parent.parent / "fuzz" / "schemathesis.toml"
SERVICES = (
    "intake",
    "verification",
    "committee",
    "surveys",
    "privacy",
    "identity",
    "audit",
    "channels",
)
EXAMPLES = os.environ.get("KHIDMA_FUZZ_EXAMPLES", "5")


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedSystem]:
    with pytest.MonkeyPatch.context() as environment:
        # WhatsApp configured, as a deployment that serves it has it.
        environment.setenv("KHIDMA_WHATSAPP_APP_SECRET", "fuzzing-app-secret")
        environment.setenv("KHIDMA_WHATSAPP_VERIFY_TOKEN", "fuzzing-verify-token")
        with EmbeddedSystem(tmp_path_factory.mktemp("khidma"), fixed_ports=False) as running:
            yield running


@pytest.mark.parametrize("service", SERVICES)
def test_schemathesis_finds_no_server_error_and_no_undocumented_status(
    system: EmbeddedSystem, service: str, tmp_path: Path
) -> None:
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert cli, "schemathesis is a dev dependency (make install)"
    url = system.services[service].url
    done = subprocess.run(
        [
            cli, "--config-file", str(CONFIG), "run", f"{url}/openapi.json",
            "--checks", "all", "--max-examples", EXAMPLES, "--seed", "20261203",
            "--phases", "examples,coverage,fuzzing",
            "--header", f"Authorization: {as_staff()['Authorization']}",
            "--continue-on-failure", "--no-color",
        ],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    report = Path(os.environ.get("KHIDMA_FUZZ_REPORTS", tmp_path)) / f"{service}.txt"
    report.write_text(done.stdout)
    summary = done.stdout[-6000:]
    assert done.returncode == 0, f"{summary}\n(the whole run: {report})"
