"""Reading the policy packs: one TOML file per association in the policies folder.

Each file is validated as a shared.policy.PolicyPack; a broken one is named by
its file, key and problem, and stops the service that needs it (exit code 2).
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shared.policy import PolicyPack

DEFAULT_POLICIES_DIR = Path(__file__).resolve().parent.parent / "policies"


class PolicyError(Exception):
    """A pack that cannot be used; the message names the file, the key and the problem."""


def load_pack(path: Path) -> PolicyPack:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise PolicyError(f"{path}: cannot read the policy pack: {error}") from None
    try:
        pack = PolicyPack.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{_key(problem['loc'])}: {problem['msg']}" for problem in error.errors()
        )
        raise PolicyError(f"{path}: {problems}") from None
    if path.stem != pack.association_id:
        raise PolicyError(
            f"{path}: association_id '{pack.association_id}' must match the file name"
        )
    return pack


def load_packs(folder: Path) -> dict[str, PolicyPack]:
    """Every pack in the folder, keyed by association id."""
    paths = sorted(Path(folder).glob("*.toml"))
    if not paths:
        raise PolicyError(f"{folder}: no policy pack (*.toml) found")
    packs: dict[str, PolicyPack] = {}
    prefixes: dict[str, str] = {}
    for path in paths:
        pack = load_pack(path)
        if pack.case_prefix in prefixes:
            raise PolicyError(
                f"{path}: case_prefix '{pack.case_prefix}' is already used by "
                f"{prefixes[pack.case_prefix]}"
            )
        prefixes[pack.case_prefix] = pack.association_id
        packs[pack.association_id] = pack
    return packs


def load_packs_or_exit(folder: Path, service: str) -> dict[str, PolicyPack]:
    """The packs a service starts with; a broken one stops it at once (exit code 2)."""
    try:
        return load_packs(folder)
    except PolicyError as error:
        print(f"{service}: invalid policy pack / سياسة غير صالحة: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def _key(location: tuple[Any, ...]) -> str:
    key = ""
    for part in location:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key or "(file)"
