"""The web form opened from a channel's link: filled from its sealed prefill, or
empty with a notice (the real web app, intake's real API in process)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from services.web.backends import Backends
from services.web.main import build
from services.web.settings import WebSettings
from shared.form_link import FormLinkKey, ensure_key
from tests.in_process import InProcessService

pytestmark = pytest.mark.unit

APPLY = "/a/sidr/seedlings/apply"
PHONE = "+966500000123"
KNOWN = {
    "applicant": {"phone": PHONE, "national_id": "1000000008", "name": "سارة العتيبي"},
    "fields": {"seedling_count": "20"},
    "documents": [{"code": "national_id_card", "number": "1000000008", "expires_on": "2030-01-01"}],
}
Start = Callable[..., Awaitable[InProcessService]]


def web_settings(data_dir: Path, **more: object) -> WebSettings:
    url = "http://127.0.0.1:9"
    return WebSettings(
        data_dir=data_dir, identity_url=url, intake_url="http://intake", verification_url=url,
        committee_url=url, surveys_url=url, privacy_url=url, audit_url=url, channels_url=url,
        website_client_id="website", website_client_secret="s", **more,  # type: ignore[arg-type]
    )


async def web_client(settings: WebSettings, intake: InProcessService) -> httpx.AsyncClient:
    app = build(settings)
    # The pages ask intake in process (the pack of `GET /associations/sidr`).
    app.state.backends = Backends({"intake": "http://intake"}, intake.client)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://web")


@pytest.fixture
async def web(tmp_path: Path, in_process: Start) -> AsyncIterator[tuple[httpx.AsyncClient, FormLinkKey]]:
    key = ensure_key(tmp_path / "web" / "form-link.key")  # the runner's, on the first start
    async with await web_client(web_settings(tmp_path / "web"), await in_process("intake")) as client:
        yield client, key


def value_of(page: str, name: str) -> str | None:
    match = re.search(rf'<input name="{re.escape(name)}" value="([^"]*)"', page)
    return match.group(1) if match else None


def token(key: FormLinkKey, *, days: float = 7, service: str = "seedlings") -> str:
    return key.seal("sidr", service, KNOWN, datetime.now(UTC) + timedelta(days=days))


async def test_a_valid_prefill_fills_the_inputs(web: tuple[httpx.AsyncClient, FormLinkKey]) -> None:
    client, key = web
    sealed = token(key)
    page = await client.get(APPLY, params={"prefill": sealed})
    assert page.status_code == 200
    assert value_of(page.text, "applicant.phone") == PHONE
    assert value_of(page.text, "applicant.national_id") == "1000000008"
    assert value_of(page.text, "applicant.name") == "سارة العتيبي"
    assert value_of(page.text, "field.seedling_count") == "20"
    assert value_of(page.text, "doc.national_id_card.number") == "1000000008"
    assert 'value="2030-01-01"' in page.text
    # The token is used where it came, and written nowhere in the page (the language
    # switch's return address leaves it out).
    assert sealed not in page.text and "prefill" not in page.text
    assert 'name="next" value="/a/sidr/seedlings/apply"' in page.text


@pytest.mark.parametrize(
    ("how", "notice_ar"),
    [("expired", "انتهت صلاحية الرابط"), ("tampered", "تعذّرت قراءة البيانات"),
     ("other_service", "تعذّرت قراءة البيانات"), ("other_key", "تعذّرت قراءة البيانات")],
)
async def test_a_bad_prefill_is_the_empty_form_with_a_notice(
    web: tuple[httpx.AsyncClient, FormLinkKey], how: str, notice_ar: str
) -> None:
    client, key = web
    sealed = {
        "expired": lambda: token(key, days=-1),
        "tampered": lambda: token(key)[:-3] + ("AAA" if not token(key).endswith("AAA") else "BBB"),
        "other_service": lambda: token(key, service="member-service"),
        "other_key": lambda: token(FormLinkKey(bytes(32))),
    }[how]()
    page = await client.get(APPLY, params={"prefill": sealed})
    assert page.status_code == 200
    assert notice_ar in page.text
    assert value_of(page.text, "applicant.phone") == ""
    assert PHONE not in page.text and sealed not in page.text


async def test_the_notice_is_in_english_for_an_english_reader(
    web: tuple[httpx.AsyncClient, FormLinkKey],
) -> None:
    client, key = web
    home = await client.get("/")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', home.text)
    assert csrf is not None
    chosen = await client.post("/language", data={"csrf_token": csrf.group(1), "lang": "en", "next": "/"})
    assert chosen.status_code == 303
    page = await client.get(APPLY, params={"prefill": token(key, days=-1)})
    assert "The link you opened has expired" in page.text


async def test_switching_the_language_keeps_what_the_link_filled_in(
    web: tuple[httpx.AsyncClient, FormLinkKey],
) -> None:
    client, key = web
    sealed = token(key)
    page = await client.get(APPLY, params={"prefill": sealed})
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    nxt = re.search(r'name="next" value="([^"]+)"', page.text)
    assert csrf is not None and nxt is not None and nxt.group(1) == APPLY
    form = {"csrf_token": csrf.group(1), "lang": "en", "next": nxt.group(1)}
    # The browser names the page it comes from (same origin): the prefill goes back.
    switched = await client.post("/language", data=form, headers={"referer": str(page.url)})
    assert switched.status_code == 303
    assert switched.headers["location"] == f"{APPLY}?prefill={sealed}"
    english = await client.get(switched.headers["location"])
    assert 'lang="en"' in english.text and value_of(english.text, "applicant.phone") == PHONE
    # From another page, or another site, the address as the page gave it.
    for referer in (f"http://web/a/sidr?prefill={sealed}", f"http://evil.example{APPLY}?prefill=x"):
        other = await client.post("/language", data=form, headers={"referer": referer})
        assert other.headers["location"] == APPLY
    plain = await client.post("/language", data=form)
    assert plain.headers["location"] == APPLY


async def test_without_a_key_a_prefill_is_ignored(tmp_path: Path, in_process: Start) -> None:
    other = FormLinkKey(bytes(range(32)))
    settings = web_settings(tmp_path / "web")
    async with await web_client(settings, await in_process("intake")) as client:
        page = await client.get(APPLY, params={"prefill": token(other)})
    assert page.status_code == 200
    assert value_of(page.text, "applicant.phone") == ""
    assert "flash warn" not in page.text


def test_a_configured_key_file_that_is_damaged_stops_the_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damaged = tmp_path / "form-link.key"
    damaged.write_text("not a key\n")
    with pytest.raises(SystemExit) as stopped:
        build(web_settings(tmp_path, form_link_key_file=damaged))
    assert stopped.value.code == 3
    said = capsys.readouterr().err
    assert "web: cannot start: the form-link key file" in said and "تعذّر التشغيل" in said
    with pytest.raises(SystemExit):
        build(web_settings(tmp_path, form_link_key_file=tmp_path / "absent.key"))
