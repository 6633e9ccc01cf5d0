"""Reading the policy packs: each association's versions, in the policies folder.

An association with one version has one file, `<association_id>.toml`. One whose
board has approved later versions keeps them side by side in a folder of its
own, `<association_id>/`, a file per version (`v1.toml`, `v2.toml`, ...), each
the whole policy with its `[version]` (number, takes_effect) and its board's
approval. Each file is validated as a shared.policy.PolicyPack and the versions
of an association as a history (numbered 1, 2, ... in the order they take
effect, one case prefix); a broken one is named by its file, key and problem,
and stops the service that needs it (exit code 2).
"""

from __future__ import annotations

import itertools
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shared.policy import Policies, PolicyHistory, PolicyPack

DEFAULT_POLICIES_DIR = Path(__file__).resolve().parent.parent / "policies"


class PolicyError(Exception):
    """A pack that cannot be used; the message names the file, the key and the problem."""


def load_pack(path: Path, association_id: str | None = None) -> PolicyPack:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise PolicyError(f"{path}: cannot read the policy pack: {error}") from None
    try:
        pack = PolicyPack.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(_problem(problem) for problem in error.errors())
        raise PolicyError(f"{path}: {problems}") from None
    expected = association_id or path.stem
    if expected != pack.association_id:
        where = "folder" if association_id else "file"
        raise PolicyError(
            f"{path}: association_id '{pack.association_id}' must match the {where} name"
        )
    return pack


def load_packs(folder: Path) -> Policies:
    """Every association's policy versions, keyed by association id; as a mapping,
    the version in force now."""
    folder = Path(folder)
    files = sorted(folder.glob("*.toml"))
    folders = sorted(path for path in folder.iterdir() if path.is_dir()) if folder.is_dir() else []
    versioned = [path for path in folders if list(path.glob("*.toml"))]
    if not files and not versioned:
        raise PolicyError(f"{folder}: no policy pack (*.toml) found")
    histories: dict[str, PolicyHistory] = {}
    sources: dict[str, Path] = {}
    for path in files:
        histories[path.stem] = PolicyHistory([load_pack(path)])
        sources[path.stem] = path
    for path in versioned:
        if path.name in histories:
            raise PolicyError(
                f"{path}: the association has both {path.name}.toml and a folder of "
                "versions; keep its versions in the folder only"
            )
        histories[path.name] = load_history(path)
        sources[path.name] = path
    _check_prefixes(histories, sources)
    return Policies(dict(sorted(histories.items())))


def load_history(folder: Path) -> PolicyHistory:
    """An association's versions, one file each, checked as one history."""
    versions: list[tuple[Path, PolicyPack]] = []
    for path in sorted(folder.glob("*.toml")):
        pack = load_pack(path, association_id=folder.name)
        versions.append((path, pack))
    versions.sort(key=lambda item: item[1].number)
    first_path, first = versions[0]
    for expected, (path, pack) in enumerate(versions, start=1):
        if pack.number != expected:
            raise PolicyError(
                f"{path}: version.number: {pack.number} where version {expected} was "
                f"expected (the versions are numbered 1, 2, ... without a gap or a repeat)"
            )
        if pack.case_prefix != first.case_prefix:
            raise PolicyError(
                f"{path}: case_prefix: '{pack.case_prefix}' differs from version 1's "
                f"'{first.case_prefix}' ({first_path.name}): case numbers keep one prefix"
            )
    for (_, earlier), (path, later) in itertools.pairwise(versions):
        before = earlier.version.takes_effect
        after = later.version.takes_effect
        if before is not None and after is not None and after <= before:
            raise PolicyError(
                f"{path}: version.takes_effect: {after.isoformat()} is not after version "
                f"{earlier.number}'s ({before.isoformat()}): each version takes effect "
                "after the one before it"
            )
    return PolicyHistory([pack for _, pack in versions])


def _check_prefixes(histories: dict[str, PolicyHistory], sources: dict[str, Path]) -> None:
    prefixes: dict[str, str] = {}
    for association_id in sorted(histories, key=lambda key: str(sources[key])):
        prefix = histories[association_id].versions[0].case_prefix
        if prefix in prefixes:
            raise PolicyError(
                f"{sources[association_id]}: case_prefix '{prefix}' is already used by "
                f"{prefixes[prefix]}"
            )
        prefixes[prefix] = association_id


def load_packs_or_exit(folder: Path, service: str) -> Policies:
    """The packs a service starts with; a broken one stops it at once (exit code 2)."""
    try:
        return load_packs(folder)
    except PolicyError as error:
        print(f"{service}: invalid policy pack / سياسة غير صالحة: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def _problem(problem: Any) -> str:
    """`key: what is wrong`; a rule across keys names its key at the head of its message."""
    message = str(problem["msg"]).removeprefix("Value error, ")
    if not problem["loc"] and re.match(r"^[a-z_.]+: ", message):
        return message
    return f"{_key(problem['loc'])}: {message}"


def _key(location: tuple[Any, ...]) -> str:
    key = ""
    for part in location:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key or "(file)"
