"""Starting the services as separate processes, for the runner, the tests and the benchmark."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from khidma.nats_server import free_port, port_is_free
from khidma.supervise import die_with_parent
from shared.files import PRIVATE_UMASK
from shared.form_link import KEY_FILE as FORM_LINK_KEY_FILE
from shared.form_link import ensure_key as ensure_form_link_key
from shared.personal.master import MasterKeys

SERVICES: tuple[str, ...] = ("intake", "verification", "committee", "surveys", "privacy")
DEFAULT_PORTS = {
    "intake": 8101,
    "verification": 8102,
    "committee": 8103,
    "surveys": 8104,
    "privacy": 8105,
    "identity": 8106,
    "audit": 8107,
    "web": 8100,
    "channels": 8108,
}
# The module each process runs, where it is not `services.<name>`.
MODULES = {"audit": "audit.api"}
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ServiceProcess:
    name: str
    nats_url: str
    data_dir: Path
    port: int = 0
    env: dict[str, str] = field(default_factory=dict)
    log_file: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, timeout: float = 30.0) -> ServiceProcess:
        self.launch()
        self.wait_ready(timeout)
        return self

    @property
    def log_path(self) -> Path:
        return self.log_file or self.data_dir / f"{self.name}.log"

    def launch(self) -> ServiceProcess:
        """The process started, not yet ready: several start side by side, then
        each is waited for (`wait_ready`)."""
        if not self.port:
            self.port = free_port()
        environment = {
            **os.environ,
            "KHIDMA_NATS_URL": self.nats_url,
            "KHIDMA_HTTP_PORT": str(self.port),
            "KHIDMA_DATA_DIR": str(self.data_dir),
            "PYTHONUNBUFFERED": "1",
            **self.env,
        }
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if "KHIDMA_MASTER_KEY_FILE" not in environment:
            # The embedded runner's master key, made on the first start (a service
            # itself never makes one: without it, it stops).
            MasterKeys.ensure(self.data_dir / "master-key.json")
        if "KHIDMA_FORM_LINK_KEY_FILE" not in environment:
            # Likewise the key of the form links' prefill (channels seal, web opens):
            # the services only read it, and without it send and take plain links.
            ensure_form_link_key(self.data_dir / FORM_LINK_KEY_FILE)
        # The log is the service's own (0600): a line may name a case.
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        output = os.fdopen(os.open(self.log_path, flags, 0o600), "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", MODULES.get(self.name, f"services.{self.name}")],
            cwd=PROJECT_ROOT,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            umask=PRIVATE_UMASK,
            # Safe beside threads here: the child only makes a prctl and a getppid call.
            preexec_fn=die_with_parent(),  # noqa: PLW1509
        )
        output.close()
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        log_path = self.log_path
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{self.name} exited during start-up:\n{tail}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"{self.name} was not ready within {timeout}s (log: {log_path})")

    def exit_code(self) -> int | None:
        """The code it exited with, or None while it runs or after a deliberate stop."""
        return self.process.poll() if self.process else None

    def stop(self, timeout: float = 15.0) -> None:
        # Forgotten first, so that a supervisor never takes a deliberate stop for a crash.
        process, self.process = self.process, None
        if process and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def kill(self) -> None:
        """Ends the process at once, as a crash would (but not restarted: deliberate)."""
        process, self.process = self.process, None
        if process and process.poll() is None:
            process.kill()
            process.wait()

    def peak_memory_kib(self) -> int | None:
        """The process's peak resident memory (VmHWM), while it runs."""
        if not self.process:
            return None
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None


def pick_port(name: str, preferred: dict[str, int] | None = None) -> int:
    """The service's usual port when it is free, else any free port."""
    port = (preferred or DEFAULT_PORTS).get(name, 0)
    return port if port and port_is_free(port) else free_port()
