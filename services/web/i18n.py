"""The screens' words, in Arabic and English: one TOML catalogue per area.

`messages/<area>.toml` holds `key = { ar = "…", en = "…" }` under a table per
area (`[signin]` gives `signin.title`). A key defined twice, or in one language
only, stops the application at start: a screen never shows half a translation.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from services.web.session import LANGUAGES

MESSAGES = Path(__file__).parent / "messages"


class Catalogue:
    def __init__(self, texts: Mapping[str, Mapping[str, str]]):
        self.texts = dict(texts)

    @classmethod
    def load(cls, folder: Path = MESSAGES) -> Catalogue:
        texts: dict[str, dict[str, str]] = {}
        for path in sorted(folder.glob("*.toml")):
            with path.open("rb") as file:
                _flatten(tomllib.load(file), "", path.name, texts)
        return cls(texts)

    def text(self, key: str, lang: str, **values: Any) -> str:
        entry = self.texts.get(key)
        if entry is None:
            return key  # seen at once on the page and caught by the catalogue's test
        text = entry[lang]
        return text.format(**values) if values else text


def _flatten(
    table: Mapping[str, Any], prefix: str, file: str, into: dict[str, dict[str, str]]
) -> None:
    for name, value in table.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping) and set(value) <= set(LANGUAGES) and value:
            if set(value) != set(LANGUAGES) or not all(isinstance(v, str) for v in value.values()):
                raise SystemExit(f"{file}: {key} needs both ar and en texts")
            if key in into:
                raise SystemExit(f"{file}: {key} is defined twice")
            into[key] = {lang: str(value[lang]) for lang in LANGUAGES}
        elif isinstance(value, Mapping):
            _flatten(value, f"{key}.", file, into)
        else:
            raise SystemExit(f"{file}: {key} is not a {{ ar, en }} text")


def pick(value: Any, lang: str) -> str:
    """A service's bilingual value ({"ar": …, "en": …}) in the reader's language."""
    if isinstance(value, Mapping):
        return str(value.get(lang) or value.get("en") or value.get("ar") or "")
    return "" if value is None else str(value)
