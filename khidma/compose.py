"""Reading docker-compose.yml as docker compose does, and running its services
locally: Docker cannot run everywhere (CI, these machines), so the tests check
the file against the compose specification and start each service's own
`command` with its own `environment` from it, against a local NATS started
with the file's NATS configuration and a local PostgreSQL.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
COMPOSE_SCHEMA = PROJECT_ROOT / "deploy" / "compose-spec.schema.json"
ENV_EXAMPLE = PROJECT_ROOT / ".env.example"

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}, $$
_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
)


class MissingVariable(ValueError):
    """A required variable (`${VAR:?message}`) is not set: compose refuses to start."""

    def __init__(self, name: str, message: str):
        super().__init__(f"required variable {name} is missing a value: {message}")
        self.name = name


def interpolate(text: str, env: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        value = env.get(name)
        unset_or_empty = value is None or (value == "" and op and op.startswith(":"))
        if op in ("-", ":-"):
            return arg if unset_or_empty else str(value)
        if op in ("?", ":?"):
            if unset_or_empty:
                raise MissingVariable(name, arg)
            return str(value)
        return "" if value is None else value

    return _VARIABLE.sub(replace, text)


class Replace:
    """A value tagged `!reset` or `!override` in an override file (Compose 2.18+):
    it replaces the base file's value instead of merging with it (e.g.
    `ports: !reset []` removes a service's host ports)."""

    def __init__(self, value: Any):
        self.value = value


class _ComposeLoader(yaml.SafeLoader):
    """YAML as compose reads it: with the `!reset` and `!override` tags."""


def _construct_replace(loader: yaml.SafeLoader, node: yaml.Node) -> Replace:
    if isinstance(node, yaml.SequenceNode):
        return Replace(loader.construct_sequence(node, deep=True))
    if isinstance(node, yaml.MappingNode):
        return Replace(loader.construct_mapping(node, deep=True))
    if isinstance(node, yaml.ScalarNode):
        return Replace(loader.construct_scalar(node))
    raise yaml.constructor.ConstructorError(
        None, None, f"!override cannot take a {type(node).__name__}", node.start_mark
    )


for _tag in ("!reset", "!override"):
    _ComposeLoader.add_constructor(_tag, _construct_replace)


def _unwrap(node: Any) -> Any:
    if isinstance(node, Replace):
        return _unwrap(node.value)
    if isinstance(node, list):
        return [_unwrap(item) for item in node]
    if isinstance(node, dict):
        return {key: _unwrap(value) for key, value in node.items()}
    return node


def _interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, Replace):
        return Replace(_interpolate_tree(node.value, env))
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, env) for key, value in node.items()}
    return node


def variables_used(path: Path = COMPOSE_FILE) -> set[str]:
    return {m.group("name") for m in _VARIABLE.finditer(path.read_text()) if m.group("name")}


def load_compose(env: Mapping[str, str], path: Path = COMPOSE_FILE) -> dict[str, Any]:
    """The compose file as compose sees it: YAML (anchors and merge keys), then
    the variables interpolated from `env` (where compose reads .env)."""
    return _unwrap(_interpolate_tree(_load_yaml(path), env))


def _load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=_ComposeLoader)


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


@dataclass
class LocalService:
    """One compose service run as a local process with its file's command and environment."""

    name: str
    command: list[str]
    env: dict[str, str]
    port: int
    log_file: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalService:
        argv = [
            sys.executable if self.command[0] == "python" else self.command[0],
            *self.command[1:],
        ]
        # Only what a container would have: PATH and the file's environment.
        environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONUNBUFFERED": "1"}
        environment.update(self.env)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as output:
            self.process = subprocess.Popen(
                argv, cwd=PROJECT_ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT
            )
        return self

    def wait_ready(self, timeout: float = 40.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited:\n{self.log_file.read_text(errors='replace')[-3000:]}"
                )
            try:
                if httpx.get(f"{self.url}/ready", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(
            f"{self.name} not ready in {timeout}s:\n{self.log_file.read_text(errors='replace')[-3000:]}"
        )

    def stop(self, timeout: float = 15.0) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def _volume_target(volume: Any) -> str:
    if isinstance(volume, dict):
        return str(volume.get("target"))
    parts = str(volume).split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def merge_compose(base: Any, override: Any, key: str = "") -> Any:
    """`docker compose -f base -f override`: mappings merge key by key, volumes by
    their target path, ports and other lists of options are added, the rest
    (command, healthcheck test, scalars) is replaced, and so is a value tagged
    `!reset` or `!override`."""
    if isinstance(override, Replace):
        return override.value
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for name, value in override.items():
            merged[name] = merge_compose(base[name], value, name) if name in base else value
        return merged
    if isinstance(base, list) and isinstance(override, list):
        if key == "volumes":
            targets = {_volume_target(v): v for v in base}
            targets.update({_volume_target(v): v for v in override})
            return list(targets.values())
        if key in ("ports", "expose", "dns", "extra_hosts"):
            return base + [item for item in override if item not in base]
    return override


def load_merged(env: Mapping[str, str], *paths: Path) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in paths:
        merged = merge_compose(merged, _interpolate_tree(_load_yaml(path), env))
    unwrapped: dict[str, Any] = _unwrap(merged)
    return unwrapped
