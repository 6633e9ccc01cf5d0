"""docker-compose.yml, proven without Docker.

1. It validates against the compose specification's JSON schema (vendored in
   deploy/), and its secrets and the surveys' public address are required.
2. The one-shot `nats-init` step's `command` runs first, then each compose
   service's own `command`, each with its own `environment` from the file
   (host names pointed at a local nats-server running the file's NATS
   configuration, and at the local PostgreSQL), and one case goes through the
   whole lifecycle; its correlation id is then followed through the four
   services' JSON logs, and their health, readiness, metrics, AsyncAPI and
   OpenAPI endpoints are checked.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator
from uuid import uuid4

import httpx
import jsonschema
import psycopg
import pytest

from khidma.compose import (
    COMPOSE_FILE,
    COMPOSE_SCHEMA,
    ENV_EXAMPLE,
    PROJECT_ROOT,
    LocalService,
    MissingVariable,
    environment_of,
    load_compose,
    variables_used,
)
from khidma.nats_server import SERVICE_USERS, free_port, secured_nats_server
from khidma.signin import StaticStaff
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from tests.auth import ISSUER, as_adapter, as_staff, auth_environment
from khidma.simulate import CaseDriver, Endpoints
from tests.conftest import POSTGRES_DSN
from tests.helpers import compose_key_files, stream_messages_sync, wait_for

pytestmark = pytest.mark.integration

SECRETS = (
    "POSTGRES_PASSWORD",
    "INTAKE_NATS_PASSWORD",
    "VERIFICATION_NATS_PASSWORD",
    "COMMITTEE_NATS_PASSWORD",
    "SURVEYS_NATS_PASSWORD",
    "PRIVACY_NATS_PASSWORD",
    "ADMIN_NATS_PASSWORD",
)
REQUIRED = (
    *SECRETS,
    "KHIDMA_MASTER_KEY_FILE",
    "SURVEYS_PUBLIC_BASE_URL",
    "KHIDMA_WEB_SESSION_KEY_FILE",
    "WEBSITE_CLIENT_SECRET",
    "KHIDMA_CHANNEL_CLIENTS_FILE",
    "KHIDMA_FORM_LINK_KEY_FILE",
)
MASTER_KEY_SECRET = "/run/secrets/master-key"
SESSION_KEY_SECRET = "/run/secrets/web-session-key"
CHANNEL_CLIENTS_SECRET = "/run/secrets/channel-clients"
FORM_LINK_KEY_SECRET = "/run/secrets/form-link-key"
# The compose services beside the five: the audit API, the web application and the
# channel adapters.
APPS = ("audit", "web", "channels")

SERVICES = SERVICE_USERS
PUBLIC_BASE_URL = "https://surveys.example.org"


def dot_env() -> dict[str, str]:
    """What an operator's .env would hold: fresh secrets and the surveys' address."""
    return {
        **{name: "k" + secrets.token_urlsafe(18) for name in SECRETS},
        "SURVEYS_PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "WEBSITE_CLIENT_SECRET": "k" + secrets.token_urlsafe(18),
        **compose_key_files(),
    }



def test_the_compose_file_validates_against_the_compose_specification() -> None:
    # The schema says draft 2019-09 (with a trailing "#" the library does not know).
    validator = jsonschema.Draft201909Validator(json.loads(COMPOSE_SCHEMA.read_text()))
    validator.check_schema(validator.schema)
    compose = load_compose(dot_env())
    validator.validate(compose)
    # The validator is not a rubber stamp: a misspelt key is refused.
    broken = copy.deepcopy(compose)
    broken["services"]["intake"]["depend_on"] = ["nats"]
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)
    broken = copy.deepcopy(compose)
    broken["services"]["intake"]["healthcheck"]["interval"] = 10
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)


@pytest.mark.parametrize("secret", REQUIRED)
def test_every_secret_and_the_surveys_address_is_required(secret: str) -> None:
    env = dot_env()
    del env[secret]
    with pytest.raises(MissingVariable) as missing:
        load_compose(env)
    assert missing.value.name == secret
    assert f"set {secret} in .env" in str(missing.value)
    env[secret] = ""  # `:?` refuses an empty value too
    with pytest.raises(MissingVariable):
        load_compose(env)


def test_env_example_lists_every_variable_of_the_compose_file() -> None:
    listed = set(re.findall(r"(?m)^([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text()))
    assert variables_used() <= listed, variables_used() - listed
    assert set(REQUIRED) <= listed


def test_the_deployment_shape() -> None:
    compose = load_compose(dot_env())
    services = compose["services"]
    assert set(services) == {"nats", "postgres", "nats-init", "identity", *SERVICES, *APPS}
    nats = services["nats"]
    config_mount = next(v for v in nats["volumes"] if v.endswith(":/etc/nats/nats-server.conf:ro"))
    assert (PROJECT_ROOT / config_mount.split(":")[0]).is_file()
    for name, service in services.items():
        for volume in service.get("volumes", []):
            if volume.startswith("./"):  # every file mounted from the repository exists
                assert (PROJECT_ROOT / volume.split(":")[0]).is_file(), (name, volume)
    assert any(v.endswith(":/etc/nats/auth.conf:ro") for v in nats["volumes"])
    assert any(v.startswith("nats-data:") for v in nats["volumes"])
    assert any(v.startswith("postgres-data:") for v in services["postgres"]["volumes"])
    assert {"nats-data", "postgres-data"} <= set(compose["volumes"])
    for name, service in services.items():
        if name == "nats-init":
            continue
        assert service.get("restart") in ("unless-stopped", "always"), name
        assert service.get("healthcheck", {}).get("test"), name
    # The init step: once, as admin, after NATS and before every service.
    init = services["nats-init"]
    assert init["restart"] == "no" and "healthcheck" not in init
    assert init["depends_on"] == {"nats": {"condition": "service_healthy"}}
    assert init["command"] == ["python", "-m", "shared.stream", "declare"]
    init_env = environment_of(init)
    assert init_env["KHIDMA_NATS_USER"] == "admin"
    assert init_env["KHIDMA_NATS_PASSWORD"] == environment_of(nats)["ADMIN_NATS_PASSWORD"]
    users = set()
    identity = environment_of(services["identity"])
    assert identity["KHIDMA_STORE"] == "postgres" and identity["KHIDMA_POSTGRES_SCHEMA"] == "identity"
    assert Path(identity["KHIDMA_KEY_FILE"]).parent.as_posix() in {
        v.split(":")[1] for v in services["identity"]["volumes"]
    }
    for name in SERVICES:
        service = services[name]
        assert service["depends_on"] == {
            "nats": {"condition": "service_healthy"},
            "postgres": {"condition": "service_healthy"},
            "nats-init": {"condition": "service_completed_successfully"},
            "identity": {"condition": "service_healthy"},
        }
        # Every service trusts the identity service's tokens, by configuration alone.
        assert environment_of(service)["KHIDMA_AUTH_ISSUER"] == identity["KHIDMA_ISSUER"]
        assert environment_of(service)["KHIDMA_AUTH_JWKS_URL"].startswith("http://identity:8000/")
        assert environment_of(service)["KHIDMA_STREAM_REPLICAS"] == init_env["KHIDMA_STREAM_REPLICAS"]
        assert any("/ready" in part for part in service["healthcheck"]["test"]), name
        env = environment_of(service)
        assert env["KHIDMA_STORE"] == "postgres" and env["KHIDMA_POSTGRES_SCHEMA"] == name
        users.add(env["KHIDMA_NATS_USER"])
        assert env["KHIDMA_NATS_PASSWORD"] == environment_of(nats)[f"{name.upper()}_NATS_PASSWORD"]
    assert users == set(SERVICES)  # each service its own credentials
    # Survey links point where applicants reach surveys; its outbox is on a volume.
    surveys = environment_of(services["surveys"])
    assert surveys["KHIDMA_PUBLIC_BASE_URL"] == PUBLIC_BASE_URL
    outbox_dir = str(Path(surveys["KHIDMA_OUTBOX_PATH"]).parent)
    mounted = {v.split(":")[1]: v.split(":")[0] for v in services["surveys"]["volumes"]}
    assert mounted[outbox_dir] in compose["volumes"]
    # The auditors' API reads the stream as admin; the web app waits for what it calls.
    audit = environment_of(services["audit"])
    assert audit["KHIDMA_NATS_USER"] == "admin" and audit["KHIDMA_STORE"] == "postgres"
    assert audit["KHIDMA_NATS_PASSWORD"] == environment_of(nats)["ADMIN_NATS_PASSWORD"]
    web = services["web"]
    assert set(web["depends_on"]) == {"identity", *SERVICES, "audit", "channels"}
    web_env = environment_of(web)
    assert web_env["KHIDMA_COOKIE_SECURE"] == "true"
    assert web_env["KHIDMA_SESSION_KEY_FILE"] == SESSION_KEY_SECRET
    assert web["secrets"] == ["web-session-key", "form-link-key"]
    assert web_env["KHIDMA_FORM_LINK_KEY_FILE"] == FORM_LINK_KEY_SECRET
    # Traces: every process that makes spans is told where they go (decisions 35, 40).
    for name in (*SERVICES, "identity", "audit", "channels", "web"):
        assert "OTEL_EXPORTER_OTLP_ENDPOINT" in environment_of(services[name]), name
    for name in (*SERVICES, "audit", "identity", "channels"):
        assert web_env[f"KHIDMA_{name.upper()}_URL"] == f"http://{name}:8000"
    # The channel adapters: after intake, their clients a secret, their outbox kept.
    channels = services["channels"]
    assert set(channels["depends_on"]) == {"identity", "intake"}
    assert set(channels["secrets"]) == {"master-key", "channel-clients", "form-link-key"}
    channels_env = environment_of(channels)
    assert channels_env["KHIDMA_FORM_LINK_KEY_FILE"] == FORM_LINK_KEY_SECRET  # the web's too
    assert channels_env["KHIDMA_CHANNEL_CLIENTS_FILE"] == CHANNEL_CLIENTS_SECRET
    assert channels_env["KHIDMA_INTAKE_URL"] == "http://intake:8000"
    assert channels_env["KHIDMA_PUBLIC_BASE_URL"] == PUBLIC_BASE_URL
    assert any(
        v == "channels-outbox:" + str(Path(channels_env["KHIDMA_OUTBOX_PATH"]).parent)
        for v in channels["volumes"]
    )


def test_the_dockerfile_is_slim_non_root_and_installs_the_pinned_project() -> None:
    lines = [
        line.strip()
        for line in (PROJECT_ROOT / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    froms = [line for line in lines if line.startswith("FROM ")]
    assert froms and all("-slim" in line for line in froms)
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert any(re.search(r"pip install .*--no-deps|pip install \.", line) for line in lines)
    assert any("requirements.lock" in line or "pyproject.toml" in line for line in lines if line.startswith("COPY"))
    pins = (PROJECT_ROOT / "pyproject.toml").read_text()
    deps = re.findall(r'^\s+"([^"]+)",?$', pins.split("[project.optional-dependencies]")[0], re.M)
    assert deps and all("==" in dep for dep in deps), deps


# --- the services from the compose file, run locally -------------------------


def _require_postgres() -> None:
    try:
        with psycopg.connect(connect_timeout=3, **POSTGRES_DSN):
            pass
    except psycopg.OperationalError as error:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required under CI and could not connect: {error}")
        pytest.skip(f"PostgreSQL not reachable: {error}")


class ComposeRun:
    def __init__(self, root: Path):
        self.root = root
        self.env = dot_env()
        self.compose = load_compose(self.env)
        self.run_id = uuid4().hex[:8]
        self.nats = None
        self.services: dict[str, LocalService] = {}
        # The audit API and the web application (no NATS consumer, no store of their own).
        self.apps: dict[str, LocalService] = {}
        self.schemas: list[str] = []

    @property
    def admin_url(self) -> str:
        return f"nats://admin:{self.env['ADMIN_NATS_PASSWORD']}@127.0.0.1:{self.nats.port}"  # type: ignore[union-attr]

    def start(self) -> "ComposeRun":
        nats_env = environment_of(self.compose["services"]["nats"])
        passwords = {
            key.removesuffix("_NATS_PASSWORD").lower(): value for key, value in nats_env.items()
        }
        self.nats = secured_nats_server(self.root / "nats", passwords).start()
        self.run_init()
        self.identity = self.start_identity()
        for name in SERVICES:
            spec = self.compose["services"][name]
            env = self.trusting_identity(self.localise(name, environment_of(spec)))
            service = LocalService(
                name, list(spec["command"]), env, int(env["KHIDMA_HTTP_PORT"]),
                self.root / f"{name}.log",
            )
            self.services[name] = service.start()
        for service in self.services.values():
            service.wait_ready()
        self.start_apps()
        return self

    def start_apps(self) -> None:
        """The audit API and then the web application, from their compose entries."""
        spec = self.compose["services"]["audit"]
        env = environment_of(spec)
        env["KHIDMA_POSTGRES_SCHEMA"] = "audit"  # for localise: the audit has no schema
        env = self.trusting_identity(self.localise("audit", env))
        self.schemas.remove(env.pop("KHIDMA_POSTGRES_SCHEMA"))
        # It reads the services' schemas, which this run prefixes.
        env["KHIDMA_POSTGRES_SCHEMA_PREFIX"] = f"compose_{self.run_id}_"
        self.apps["audit"] = LocalService(
            "audit", list(spec["command"]), env, int(env["KHIDMA_HTTP_PORT"]),
            self.root / "audit.log",
        ).start()
        self.apps["audit"].wait_ready()
        self.start_channels()  # the web app uploads the branch offices' batches to it
        spec = self.compose["services"]["web"]
        env = self.trusting_identity(environment_of(spec))
        urls = {
            "identity": self.identity.url,
            "audit": self.apps["audit"].url,
            "channels": self.apps["channels"].url,
            **{n: s.url for n, s in self.services.items()},
        }
        for name, url in urls.items():
            assert env[f"KHIDMA_{name.upper()}_URL"] == f"http://{name}:8000"
            env[f"KHIDMA_{name.upper()}_URL"] = url
        assert env["KHIDMA_SESSION_KEY_FILE"] == SESSION_KEY_SECRET  # compose's secret
        env.update(
            KHIDMA_SESSION_KEY_FILE=self.env["KHIDMA_WEB_SESSION_KEY_FILE"],
            KHIDMA_FORM_LINK_KEY_FILE=self.env["KHIDMA_FORM_LINK_KEY_FILE"],
            KHIDMA_DATA_DIR=str(self.root / "web"),
            KHIDMA_HTTP_HOST="127.0.0.1",
            KHIDMA_HTTP_PORT=str(free_port()),
        )
        self.apps["web"] = LocalService(
            "web", list(spec["command"]), env, int(env["KHIDMA_HTTP_PORT"]), self.root / "web.log"
        ).start()
        self.apps["web"].wait_ready()

    def start_channels(self) -> None:
        spec = self.compose["services"]["channels"]
        env = environment_of(spec)
        env["KHIDMA_POSTGRES_SCHEMA"] = "channels"  # for localise: the keyring's schema alone
        env = self.trusting_identity(self.localise("channels", env))
        self.schemas.remove(env.pop("KHIDMA_POSTGRES_SCHEMA"))
        assert env["KHIDMA_INTAKE_URL"] == "http://intake:8000"
        assert env["KHIDMA_TOKEN_URL"] == "http://identity:8000/oauth/token"
        assert env["KHIDMA_CHANNEL_CLIENTS_FILE"] == CHANNEL_CLIENTS_SECRET  # compose's secret
        env.update(
            KHIDMA_INTAKE_URL=self.services["intake"].url,
            KHIDMA_TOKEN_URL=f"{self.identity.url}/oauth/token",
            KHIDMA_CHANNEL_CLIENTS_FILE=self.env["KHIDMA_CHANNEL_CLIENTS_FILE"],
            KHIDMA_FORM_LINK_KEY_FILE=self.env["KHIDMA_FORM_LINK_KEY_FILE"],
            KHIDMA_LETTERS_SMTP_HOST="127.0.0.1",
            KHIDMA_LETTERS_SMTP_PORT=str(free_port()),
        )
        self.apps["channels"] = LocalService(
            "channels", list(spec["command"]), env, int(env["KHIDMA_HTTP_PORT"]),
            self.root / "channels.log",
        ).start()
        self.apps["channels"].wait_ready()

    def start_identity(self) -> LocalService:
        """The issuer, at a local address, with the `iss` the services will expect."""
        spec = self.compose["services"]["identity"]
        env = self.localise("identity", environment_of(spec))
        ISSUER.write_jwks(self.root / "tests-jwks.json")
        self.issuer = f"http://127.0.0.1:{env['KHIDMA_HTTP_PORT']}"
        env["KHIDMA_ISSUER"] = self.issuer
        identity = LocalService(
            "identity", list(spec["command"]), env, int(env["KHIDMA_HTTP_PORT"]),
            self.root / "identity.log",
        ).start()
        identity.wait_ready()
        return identity

    def trusting_identity(self, env: dict[str, str]) -> dict[str, str]:
        assert env["KHIDMA_AUTH_ISSUER"] == "http://identity:8000"
        return {
            **env,
            # The tests' own issuer too, by configuration alone (no code change).
            **auth_environment(self.root / "tests-jwks.json"),
            "KHIDMA_AUTH_ISSUER": self.issuer,
            "KHIDMA_AUTH_JWKS_URL": env["KHIDMA_AUTH_JWKS_URL"].replace(
                "http://identity:8000", self.issuer
            ),
        }

    def run_init(self) -> None:
        """The one-shot `nats-init` service, as compose runs it before the others."""
        spec = self.compose["services"]["nats-init"]
        env = environment_of(spec)
        assert env["KHIDMA_NATS_URL"] == "nats://nats:4222"
        env["KHIDMA_NATS_URL"] = f"nats://127.0.0.1:{self.nats.port}"  # type: ignore[union-attr]
        command = [sys.executable if a == "python" else a for a in spec["command"]]
        done = subprocess.run(
            command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        )
        assert done.returncode == 0, done.stderr

    def keyring_schema(self, name: str) -> str:
        """The one schema every service shares, unique to this run."""
        schema = f"compose_{self.run_id}_{name}"
        if schema not in self.schemas:
            self.schemas.append(schema)
        return schema

    def localise(self, name: str, env: dict[str, str]) -> dict[str, str]:
        """What a container's network would resolve, pointed at this machine."""
        schema = f"compose_{self.run_id}_{env['KHIDMA_POSTGRES_SCHEMA']}"
        self.schemas.append(schema)
        assert env.get("KHIDMA_NATS_URL", "nats://nats:4222") == "nats://nats:4222"
        assert env["KHIDMA_POSTGRES_HOST"] == "postgres"
        assert env["KHIDMA_DATA_DIR"] == "/data"
        local_data = self.root / name
        secret = {}
        if "KHIDMA_MASTER_KEY_FILE" in env:  # the services', not the identity service's
            assert env["KHIDMA_MASTER_KEY_FILE"] == MASTER_KEY_SECRET  # compose's secret
            secret = {
                "KHIDMA_MASTER_KEY_FILE": self.env["KHIDMA_MASTER_KEY_FILE"],
                "KHIDMA_KEYRING_SCHEMA": self.keyring_schema(env["KHIDMA_KEYRING_SCHEMA"]),
            }
        paths = {  # files under the container's /data (a volume there), under the local one
            key: str(local_data / Path(value).relative_to("/data"))
            for key, value in env.items()
            if key.endswith(("_PATH", "_FILE")) and value.startswith("/data/")
        }
        return {
            **env,
            **paths,
            "KHIDMA_NATS_URL": f"nats://127.0.0.1:{self.nats.port}",  # type: ignore[union-attr]
            "KHIDMA_POSTGRES_HOST": str(POSTGRES_DSN["host"]),
            "KHIDMA_POSTGRES_PORT": str(POSTGRES_DSN["port"]),
            "KHIDMA_POSTGRES_DBNAME": str(POSTGRES_DSN["dbname"]),
            "KHIDMA_POSTGRES_USER": str(POSTGRES_DSN["user"]),
            "KHIDMA_POSTGRES_SCHEMA": schema,
            **secret,
            "KHIDMA_HTTP_HOST": "127.0.0.1",
            "KHIDMA_HTTP_PORT": str(free_port()),
            "KHIDMA_DATA_DIR": str(local_data),
        }

    def stop(self) -> None:
        for service in [*self.apps.values(), *self.services.values()]:
            service.stop()
        if getattr(self, "identity", None):
            self.identity.stop()
        if self.nats:
            self.nats.stop()
        with psycopg.connect(autocommit=True, **POSTGRES_DSN) as connection:
            for schema in self.schemas:
                connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="module")
def compose_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeRun]:
    _require_postgres()
    run = ComposeRun(tmp_path_factory.mktemp("compose"))
    try:
        run.start()
        yield run
    finally:
        run.stop()


@pytest.fixture(scope="module")
def lifecycle(compose_run: ComposeRun) -> dict[str, Any]:
    endpoints = Endpoints.from_mapping(
        {
            **{n: s.url for n, s in compose_run.services.items()},
            "identity": compose_run.identity.url,
            "surveys_outbox": compose_run.services["surveys"].env["KHIDMA_OUTBOX_PATH"],
        }
    )

    async def drive() -> Any:
        async with httpx.AsyncClient(timeout=30) as client:
            # Tokens of a second issuer (the tests'), trusted by configuration alone.
            staff = StaticStaff(ISSUER.token, load_packs(DEFAULT_POLICIES_DIR))
            return await CaseDriver(client, endpoints, step_timeout=30, staff=staff).run("referred")

    run = asyncio.run(drive())
    assert run.error is None, run.error
    messages = wait_for(
        lambda: (
            found
            if len(found := stream_messages_sync(compose_run.admin_url, f"khidma.*.{run.case_id}.*")) >= 5
            else None
        ),
        timeout=30,
        # The applicant's anonymous answer is not on the case (docs/decisions.md, 16).
        what="the five events of the case",
    )
    return {"run": run, "events": [m["event"] for m in messages]}


@pytest.mark.postgres
def test_a_case_goes_through_the_whole_lifecycle_on_the_compose_services(
    compose_run: ComposeRun, lifecycle: dict[str, Any]
) -> None:
    types = [e["event_type"] for e in lifecycle["events"]]
    assert sorted(types) == sorted(
        ["RequestReceived", "ReferredToResearcher", "DataVerified", "CommitteeDecided",
         "ServiceDelivered"]
    )
    # The stores are the PostgreSQL schemas, one per service.
    with psycopg.connect(**POSTGRES_DSN) as connection:
        names = {
            row[0]
            for row in connection.execute(
                "SELECT DISTINCT table_schema FROM information_schema.tables WHERE table_schema LIKE %s",
                (f"compose_{compose_run.run_id}_%",),
            )
        }
    assert names == set(compose_run.schemas)
    # The survey invitation, in the outbox on the surveys' volume, links to the
    # address applicants use (SURVEYS_PUBLIC_BASE_URL), not to 127.0.0.1.
    outbox = Path(compose_run.services["surveys"].env["KHIDMA_OUTBOX_PATH"])
    invitations = wait_for(
        lambda: [
            line for line in outbox.read_text().splitlines()
            if json.loads(line)["case_id"] == lifecycle["run"].case_id
        ],
        timeout=15,
        what="the case's survey invitation in the outbox",
    )
    assert f"{PUBLIC_BASE_URL}/surveys/" in invitations[0]


@pytest.mark.postgres
def test_the_audit_api_and_the_web_application_run_from_the_compose_file(
    compose_run: ComposeRun, lifecycle: dict[str, Any]
) -> None:
    audit = compose_run.apps["audit"]
    staff = {"Authorization": f"Bearer {ISSUER.token('compose-auditor', {'sidr': ['auditor']})}"}
    timeline = httpx.get(
        f"{audit.url}/cases/{lifecycle['run'].case_id}/timeline", headers=staff, timeout=30
    )
    assert timeline.status_code == 200, timeline.text
    assert len(timeline.json()["events"]) >= 5
    web = compose_run.apps["web"]
    page = httpx.get(f"{web.url}/signin", timeout=10)
    assert page.status_code == 200 and 'lang="ar" dir="rtl"' in page.text
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Lax" in cookie
    assert httpx.get(f"{web.url}/ready", timeout=5).json()["website_client"] is True


@pytest.mark.postgres
def test_the_channel_adapters_run_from_the_compose_file_and_feed_intake(
    compose_run: ComposeRun,
) -> None:
    channels = compose_run.apps["channels"]
    assert httpx.get(f"{channels.url}/ready", timeout=5).json()["ready"] is True
    crm = as_adapter(["help_request"], ["sidr"], subject="sidr-crm")
    request = {
        "association_id": "sidr",
        "channel": "help_request",
        "channel_ref": f"crm-{compose_run.run_id}",
        "service_code": "volunteering",
        "applicant": {"national_id": "1013962459", "name": "سارة", "phone": "0551234567"},
        "fields": {},
    }
    sent = httpx.post(f"{channels.url}/requests", json=request, headers=crm, timeout=30)
    assert sent.status_code == 201, sent.text
    case = httpx.get(
        f"{compose_run.services['intake'].url}/cases/{sent.json()['case_ref']}",
        headers=as_staff(), timeout=30,
    )  # fmt: skip
    assert case.status_code == 200 and case.json()["channel"] == "help_request"


@pytest.mark.postgres
def test_one_request_can_be_followed_through_the_four_services_logs(
    compose_run: ComposeRun, lifecycle: dict[str, Any]
) -> None:
    run = lifecycle["run"]
    correlation_id = lifecycle["events"][0]["event_id"]

    def lines_of(name: str) -> list[dict[str, Any]]:
        text = compose_run.services[name].log_file.read_text()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def followed() -> dict[str, list[dict[str, Any]]]:
        found = {
            name: [line for line in lines_of(name) if line.get("correlation_id") == correlation_id]
            for name in SERVICES
        }
        return found if all(found.values()) and len(found["surveys"]) >= 2 else {}

    found = wait_for(followed, timeout=10, what="the correlation id in every service's log")
    for name, lines in found.items():
        for line in lines:
            assert line["case_id"] == run.case_id, line
            assert line["service"] == name
    assert any(l["msg"] == "published RequestReceived" for l in found["intake"])
    assert any(l["msg"] == "handled RequestReceived" for l in found["verification"])
    assert any(l["msg"] == "published CommitteeDecided" for l in found["committee"])
    # The answer itself is anonymous: published under its own id, never this case's (decision 16).
    assert any(l["msg"].startswith("handled ") for l in found["surveys"])
    assert not any(l["msg"] == "published SurveyAnswered" for l in found["surveys"])
    assert any(l["msg"] == "handled RequestReceived" for l in found["privacy"])
    # Every line of every log is one JSON object with the ids' keys.
    for name in SERVICES:
        for line in lines_of(name):
            assert {"ts", "level", "service", "case_id", "case_ref", "correlation_id"} <= set(line)
    # The lines that carry this case's id: every one about this case (its
    # events and its HTTP calls, also under a committee sitting whose id is a
    # UUID too), each with a correlation id (the caller sent none: one is made
    # per request).
    http_calls = 0
    for name in SERVICES:
        for line in lines_of(name):
            if "http_status" in line:
                if f"/{run.case_id}" in line["msg"]:
                    http_calls += 1
                    assert line["case_id"] == run.case_id, line
                    assert line["correlation_id"], line
                elif "/sittings/" in line["msg"] and "/cases/" not in line["msg"]:
                    assert line["case_id"] is None, line  # a sitting is not a case
            elif line["case_id"] == run.case_id:
                assert line["correlation_id"], line
                if line["event_id"]:  # about one of its events: the case's own ids
                    assert line["correlation_id"] == correlation_id, line
                    assert line["case_ref"] == run.case_ref, line
    assert http_calls >= 8  # information, referral, confirmation, votes, decision, delivery …


@pytest.mark.postgres
def test_health_readiness_and_the_compose_health_check(compose_run: ComposeRun) -> None:
    for name, service in compose_run.services.items():
        assert httpx.get(f"{service.url}/health").status_code == 200
        ready = httpx.get(f"{service.url}/ready").json()
        assert ready["ready"] and ready["nats"] and ready["store"] and ready["caught_up"], ready
        # The compose file's own health check command, with the port it would see.
        test = compose_run.compose["services"][name]["healthcheck"]["test"]
        assert test[0] == "CMD"
        argv = [sys.executable if a == "python" else a.replace(":8000/", f":{service.port}/") for a in test[1:]]
        assert subprocess.run(argv, timeout=10).returncode == 0
        broken = [a.replace("/ready", "/not-there") for a in argv]
        assert subprocess.run(broken, timeout=10, capture_output=True).returncode != 0


@pytest.mark.postgres
def test_the_identity_service_serves_its_keys_and_passes_its_health_check(
    compose_run: ComposeRun,
) -> None:
    identity = compose_run.identity
    jwks = httpx.get(f"{identity.url}/.well-known/jwks.json").json()
    assert jwks["keys"] and all("d" not in key for key in jwks["keys"])  # public halves only
    metadata = httpx.get(f"{identity.url}/.well-known/openid-configuration").json()
    assert metadata["issuer"] == compose_run.issuer
    test = compose_run.compose["services"]["identity"]["healthcheck"]["test"]
    argv = [sys.executable if a == "python" else a.replace(":8000/", f":{identity.port}/") for a in test[1:]]
    assert subprocess.run(argv, timeout=10).returncode == 0
    # Its signing keys are on their own volume's path, readable by the service alone.
    key_file = Path(identity.env["KHIDMA_KEY_FILE"])
    assert key_file.is_file() and key_file.stat().st_mode & 0o077 == 0


def _metric(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return None


@pytest.mark.postgres
def test_prometheus_metrics_of_every_service(
    compose_run: ComposeRun, lifecycle: dict[str, Any]
) -> None:
    def scrape(name: str) -> str:
        response = httpx.get(f"{compose_run.services[name].url}/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        return response.text

    intake = scrape("intake")
    assert _metric(intake, "khidma_messages_published_total", service="intake", event_type="RequestReceived") >= 1
    assert _metric(intake, "khidma_messages_consumed_total", service="intake", event_type="CommitteeDecided", outcome="handled") >= 1
    verification = wait_for(
        lambda: (t := scrape("verification"))
        and _metric(t, "khidma_consumer_pending", service="verification") == 0
        and t,
        what="verification's pending count to reach 0",
    )
    assert _metric(verification, "khidma_messages_consumed_total", service="verification", event_type="RequestReceived", outcome="handled") >= 1
    assert _metric(verification, "khidma_handler_seconds_count", service="verification", event_type="RequestReceived") >= 1
    assert _metric(verification, "khidma_outbox_lag", service="verification") == 0
    assert _metric(verification, "khidma_dead_letters_total", service="verification") in (None, 0.0)
    surveys = scrape("surveys")
    assert _metric(surveys, "khidma_messages_published_total", service="surveys", event_type="SurveyAnswered") >= 1
    assert _metric(surveys, "khidma_ready", service="surveys") == 1


@pytest.mark.postgres
def test_asyncapi_and_openapi_documents_are_served(compose_run: ComposeRun) -> None:
    for name, service in compose_run.services.items():
        asyncapi = httpx.get(f"{service.url}/asyncapi.json").json()
        assert asyncapi["asyncapi"].startswith("3.")
        addresses = {c["address"] for c in asyncapi["channels"].values()}
        assert f"khidma.deadletter.{name}" in addresses
        page = httpx.get(f"{service.url}/asyncapi")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        openapi = httpx.get(f"{service.url}/openapi.json").json()
        assert {"/health", "/ready", "/metrics"} <= set(openapi["paths"])
    intake = httpx.get(f"{compose_run.services['intake'].url}/asyncapi.json").json()
    addresses = {c["address"] for c in intake["channels"].values()}
    assert {"khidma.*.*.RequestReceived", "khidma.submissions.*.*", "khidma.*.*.DataVerified"} <= addresses
    assert compose_run.env["INTAKE_NATS_PASSWORD"] not in json.dumps(intake)  # no credentials
