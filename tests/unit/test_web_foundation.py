"""The web application's session cookie, CSRF token and words (no browser)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from services.web import pages
from services.web.i18n import Catalogue
from services.web.rendering import TEMPLATES
from services.web.session import Session, SessionCodec, csrf_matches, session_key
from shared.roles import ROLES

pytestmark = pytest.mark.unit

KEY = bytes(range(32))


def test_a_sealed_session_opens_to_the_same_session() -> None:
    codec = SessionCodec(KEY)
    session = Session(username="officer", name="موظف", roles={"elites": ["front_desk"]},
                      token="t", expires=time.time() + 600, lang="en")
    assert codec.open(codec.seal(session)) == session


def test_a_changed_or_foreign_cookie_opens_to_no_session() -> None:
    codec = SessionCodec(KEY)
    sealed = codec.seal(Session(username="officer", token="t", expires=time.time() + 600))
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    assert codec.open(flipped) is None
    assert SessionCodec(bytes(32)).open(sealed) is None
    assert codec.open("not a cookie") is None
    assert codec.open(None) is None


def test_the_cookie_does_not_show_who_signed_in_or_their_token() -> None:
    sealed = SessionCodec(KEY).seal(
        Session(username="officer-name", token="secret-token", expires=time.time() + 600)
    )
    assert "officer" not in sealed and "secret" not in sealed


def test_a_session_whose_token_ended_is_a_visitors_keeping_the_language() -> None:
    codec = SessionCodec(KEY)
    ended = Session(username="officer", token="t", expires=time.time() - 1, lang="en")
    opened = codec.open(codec.seal(ended))
    assert opened is not None
    assert not opened.signed_in and opened.username is None and opened.lang == "en"


def test_the_csrf_token_must_be_the_sessions_own() -> None:
    session = Session()
    assert csrf_matches(session, session.csrf)
    assert not csrf_matches(session, Session().csrf)
    assert not csrf_matches(session, None)
    assert not csrf_matches(session, "")


def test_the_session_key_is_made_private_once_and_a_bad_one_stops_the_start(
    tmp_path: Path,
) -> None:
    path = tmp_path / "web-session.key"
    key = session_key(path)
    assert len(key) == 32 and session_key(path) == key
    assert path.stat().st_mode & 0o777 == 0o600
    path.write_text("short\n")
    with pytest.raises(SystemExit, match="session key"):
        session_key(path)


def _keys_used() -> tuple[set[str], set[str]]:
    """The catalogue keys the screens name: whole keys, and prefixes a template
    completes with a value (`t("desk.status_" ~ row.status)`)."""
    keys: set[str] = set()
    prefixes: set[str] = set()
    pattern = re.compile(r"""\bt\(\s*["']([\w.]+)["']\s*(~)?""")
    for template in TEMPLATES.rglob("*.html"):
        for key, joined in pattern.findall(template.read_text()):
            (prefixes if joined else keys).add(key)
    keys.update(link.label for link in pages.navigation(pages.areas()))
    keys.update(f"roles.{role}" for role in ROLES)
    return keys, prefixes


def test_every_word_a_screen_uses_is_in_the_catalogue_in_both_languages() -> None:
    catalogue = Catalogue.load()
    keys, prefixes = _keys_used()
    missing = sorted(key for key in keys if key not in catalogue.texts)
    assert missing == []
    unknown = sorted(p for p in prefixes if not any(k.startswith(p) for k in catalogue.texts))
    assert unknown == []
    for key, texts in catalogue.texts.items():
        assert texts["ar"].strip() and texts["en"].strip(), key


def test_a_text_in_one_language_only_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "area.toml").write_text('[area]\ntitle = { ar = "عنوان" }\n')
    with pytest.raises(SystemExit, match="both ar and en"):
        Catalogue.load(tmp_path)


def test_a_word_defined_twice_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('[area]\ntitle = { ar = "أ", en = "a" }\n')
    (tmp_path / "b.toml").write_text('[area]\ntitle = { ar = "ب", en = "b" }\n')
    with pytest.raises(SystemExit, match="twice"):
        Catalogue.load(tmp_path)


def test_every_menu_link_opens_its_own_areas_page_not_another_areas_route(
    tmp_path: Path,
) -> None:
    """Areas are included by name: a route of one (`/surveys/{token}`) must not
    shadow another's page (`/surveys/results` once was)."""
    from starlette.routing import Match

    from services.web.main import build
    from services.web.settings import WebSettings

    url = "http://127.0.0.1:9"
    app = build(
        WebSettings(
            data_dir=tmp_path, identity_url=url, intake_url=url, verification_url=url,
            committee_url=url, surveys_url=url, privacy_url=url, audit_url=url,
            channels_url=url,
        )
    )

    def endpoint_of(routes: list, path: str):  # type: ignore[no-untyped-def]
        """The first route that answers GET `path`, as the app tries them in order."""
        for route in routes:
            included = getattr(route, "original_router", None)
            if included is not None:
                found = endpoint_of(included.routes, path)
                if found is not None:
                    return found
            elif route.matches({"type": "http", "path": path, "method": "GET"})[0] == Match.FULL:
                return route.endpoint
        return None

    for module in pages.areas():
        for link in getattr(module, "NAV", ()):
            endpoint = endpoint_of(app.router.routes, link.path)
            assert endpoint is not None and endpoint.__module__ == module.__name__, link.path


def test_a_malformed_address_is_a_page_in_the_readers_language_not_json(tmp_path: Path) -> None:
    import time as clock

    from fastapi.testclient import TestClient

    from services.web.main import build
    from services.web.session import COOKIE
    from services.web.settings import WebSettings

    url = "http://127.0.0.1:9"
    app = build(
        WebSettings(
            data_dir=tmp_path, identity_url=url, intake_url=url, verification_url=url,
            committee_url=url, surveys_url=url, privacy_url=url, audit_url=url,
            channels_url=url,
        )
    )
    researcher = Session(
        username="r", name="r", roles={"elites": ["researcher"]}, token="t",
        expires=clock.time() + 600,
    )
    cookie = SessionCodec(session_key(tmp_path / "web-session.key")).seal(researcher)
    with TestClient(app, cookies={COOKIE: cookie}) as client:
        for path in ("/researcher/not-a-uuid", "/researcher?page=0"):
            answer = client.get(path, follow_redirects=False)
            assert answer.status_code == 422, path
            assert answer.headers["content-type"].startswith("text/html")
            assert 'lang="ar"' in answer.text and "قيمة لا يمكن قبولها" in answer.text
