"""Extracts Keycloak's RealmRepresentation JSON schema from the operator's CRD.

Keycloak publishes no standalone JSON schema of a realm file, but the
Keycloak operator's `KeycloakRealmImport` custom resource definition carries
the whole RealmRepresentation (generated from the Java class by Fabric8's
CRDGenerator) as the OpenAPI v3 schema of `spec.realm`. This script takes that
sub-schema out of the CRD and writes it as a JSON schema:

    python deploy/keycloak/extract_realm_schema.py CRD.yml deploy/keycloak/realm-schema.json \
        --source "keycloak/keycloak-k8s-resources@26.0.0 (81567cb6...)"

where CRD.yml is `kubernetes/keycloakrealmimports.k8s.keycloak.org-v1.yml` of
github.com/keycloak/keycloak-k8s-resources at the tag of the Keycloak version
(deploy/keycloak/README.md names the one vendored). The translation is small:
the keywords the CRD uses (type, properties, items, additionalProperties,
enum, description) mean the same in JSON Schema 2020-12; the
`x-kubernetes-preserve-unknown-fields` markers (where the generator stopped
recursing) are kept and ignored by validators; `nullable` would become a
`null` type but the CRD has none (the script refuses keywords it does not know,
so a newer CRD cannot be translated silently wrong).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

# OpenAPI v3 keywords of the CRD whose JSON Schema 2020-12 meaning is the same.
KNOWN = {"type", "properties", "items", "additionalProperties", "enum", "description"}
IGNORED = {"x-kubernetes-preserve-unknown-fields"}


def translate(node: Any, where: str = "realm") -> Any:
    if isinstance(node, list):
        return [translate(item, f"{where}[]") for item in node]
    if not isinstance(node, dict):
        return node
    unknown = set(node) - KNOWN - IGNORED - {"nullable"}
    if unknown:
        raise SystemExit(f"{where}: keywords this script does not translate: {sorted(unknown)}")
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: translate(sub, f"{where}.{name}") for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = translate(value, f"{where}.{key}")
        elif key == "nullable":
            continue
        else:
            out[key] = value
    if node.get("nullable") is True and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def realm_schema(crd: dict[str, Any], source: str) -> dict[str, Any]:
    (version,) = crd["spec"]["versions"]
    realm = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["realm"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Keycloak RealmRepresentation (a realm import file)",
        "$comment": (
            f"Extracted from {source}: kubernetes/keycloakrealmimports.k8s.keycloak.org-v1.yml, "
            f"spec.versions[{version['name']}].schema.openAPIV3Schema.properties.spec."
            "properties.realm, by deploy/keycloak/extract_realm_schema.py. Apache-2.0, "
            "Copyright Red Hat, Inc. and the Keycloak contributors."
        ),
        **translate(realm),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("crd", type=Path, help="keycloakrealmimports.k8s.keycloak.org-v1.yml")
    parser.add_argument("output", type=Path, help="where to write the realm schema")
    parser.add_argument("--source", required=True, help="repository@tag (commit) of the CRD")
    args = parser.parse_args(argv)
    crd = yaml.safe_load(args.crd.read_text(encoding="utf-8"))
    schema = realm_schema(crd, args.source)
    args.output.write_text(json.dumps(schema, indent=1, ensure_ascii=False) + "\n", "utf-8")
    print(f"{args.output}: {len(schema['properties'])} top-level realm properties")
    return 0


if __name__ == "__main__":
    sys.exit(main())
