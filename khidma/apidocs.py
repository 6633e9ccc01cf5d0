"""Generates the API documents into docs/: `make docs`.

- docs/asyncapi.json: the AsyncAPI 3.0 document of all the integration events
  (FastStream generates it), and docs/asyncapi/<service>.json per service, the
  same document each service serves on /asyncapi.json.
- docs/openapi/<service>.json: the OpenAPI document of each HTTP API, the same
  the service serves on /openapi.json.

    python -m khidma.apidocs [docs] [--check]

`--check` writes nothing and exits 1 when a document in docs/ differs from
what the code generates (after a change of events or routes: run `make docs`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from shared.asyncapi import SERVICES, system_asyncapi
from shared.auth import IssuerSettings, Verifier
from shared.personal.master import MasterKeys

# The documents describe the routes, not who may call them today: an issuer
# with no keys, so that no token could pass while they are generated.
DOCUMENTATION_VERIFIER = Verifier(
    [IssuerSettings(issuer="https://issuer.example", audience="khidma", jwks={"keys": []})]
)


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def service_documents(service: str, data_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(OpenAPI, AsyncAPI) of one service, built as it runs, without starting it."""
    main = importlib.import_module(f"services.{service}.main")
    settings_class = next(
        value
        for name, value in vars(main).items()
        if name.endswith("Settings") and name != "ServiceSettings" and isinstance(value, type)
    )
    settings = settings_class(nats_url="nats://nats:4222", data_dir=data_dir / service)
    MasterKeys.ensure(settings.master_key_path)  # a throwaway key: nothing is sealed
    api = main.build(settings, verifier=DOCUMENTATION_VERIFIER)
    runtime = api.state.runtime
    try:
        return api.openapi(), runtime.asyncapi()
    finally:
        runtime.app.close()


def generate() -> dict[str, str]:
    """Relative path -> content of every generated document."""
    files = {"asyncapi.json": _dump(system_asyncapi())}
    with tempfile.TemporaryDirectory() as tmp:
        for service in SERVICES:
            openapi, asyncapi = service_documents(service, Path(tmp))
            files[f"openapi/{service}.json"] = _dump(openapi)
            files[f"asyncapi/{service}.json"] = _dump(asyncapi)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generates docs/asyncapi*.json and docs/openapi/")
    parser.add_argument("docs", nargs="?", type=Path, default=Path("docs"))
    parser.add_argument("--check", action="store_true", help="only compare with docs/")
    args = parser.parse_args(argv)
    stale = []
    for relative, content in generate().items():
        path = args.docs / relative
        if args.check:
            if not path.exists() or path.read_text() != content:
                stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        print(f"wrote {path}")
    if stale:
        print("out of date (run `make docs`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
