from pathlib import Path

import pytest

from khidma.apidocs import generate

pytestmark = pytest.mark.integration  # builds each service on temporary SQLite stores

ROOT = Path(__file__).resolve().parents[2]


def test_the_api_documents_in_docs_match_the_code():
    """After a change of routes or events, `make docs` brings docs/ up to date."""
    for relative, text in generate().items():
        path = ROOT / "docs" / relative
        assert path.exists(), f"{relative} is missing: run `make docs`"
        assert path.read_text(encoding="utf-8") == text, f"{relative} is stale: run `make docs`"
