"""The branch-office batches' pages: the real web app, intake's real API in process
(the packs) and a stand-in channels service that records what it was sent."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.web.associations import Associations
from services.web.backends import Backends
from services.web.main import build
from services.web.session import COOKIE, Session, SessionCodec, session_key
from services.web.settings import WebSettings
from tests.in_process import InProcessService

pytestmark = pytest.mark.unit

Start = Callable[..., Awaitable[InProcessService]]
CSRF = "the-forms-csrf-token"
REFUSED_ROW = {
    "row": 4, "outcome": "refused", "error": "row_unreadable",
    "reason_en": "The national ID is not valid.", "reason_ar": "رقم الهوية غير صحيح.",
}  # fmt: skip


@dataclass
class StandInChannels:
    """Answers as channels does; `answers` by path, or `down` to be unreachable."""

    answers: dict[str, httpx.Response] = field(default_factory=dict)
    seen: list[httpx.Request] = field(default_factory=list)
    down: bool = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if self.down:
            raise httpx.ConnectError("refused", request=request)
        return self.answers.get(request.url.path) or httpx.Response(404, json=gone())


def gone() -> dict[str, Any]:
    return {"error": "batch_not_found", "message": {
        "en": "There is no batch b-1 of yours here: upload it again.",
        "ar": "لا توجد لك دفعة b-1 هنا: ارفعها مرة أخرى."}}  # fmt: skip


def progress(done: int, finished: bool, refusals: list[dict[str, Any]]) -> dict[str, Any]:
    counts = {"received": done - len(refusals), "refused": len(refusals)} if done else {}
    return {"batch": "b-1", "rows": 3, "done": done, "counts": counts, "finished": finished,
            "failed": False, "refusals": refusals}  # fmt: skip


@dataclass
class Web:
    client: httpx.AsyncClient
    channels: StandInChannels
    codec: SessionCodec

    def sign_in(self, roles: dict[str, list[str]], lang: str = "ar") -> None:
        person = Session(csrf=CSRF, lang=lang, username="rep", name="Rep", roles=roles,
                         token="the-persons-token", expires=time.time() + 600)  # fmt: skip
        self.client.cookies.set(COOKIE, self.codec.seal(person))


@pytest.fixture
async def web(tmp_path: Path, in_process: Start) -> AsyncIterator[Web]:
    url = "http://127.0.0.1:9"
    settings = WebSettings(
        data_dir=tmp_path, identity_url=url, intake_url="http://intake", verification_url=url,
        committee_url=url, surveys_url=url, privacy_url=url, audit_url=url,
        channels_url="http://channels",
    )  # fmt: skip
    app = build(settings)
    intake = await in_process("intake")
    channels = StandInChannels()
    client = httpx.AsyncClient(mounts={
        "http://intake": httpx.ASGITransport(app=intake.api),
        "http://channels": httpx.MockTransport(channels),
    })  # fmt: skip
    app.state.backends = Backends({"intake": "http://intake", "channels": "http://channels"}, client)
    app.state.associations = Associations(app.state.backends)
    codec = SessionCodec(session_key(tmp_path / "web-session.key"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://web") as c:
        yield Web(c, channels, codec)
    await client.aclose()


TEXTILE_DESK = {"textile-coop": ["front_desk"]}


async def test_the_upload_page_explains_the_file_and_offers_only_the_associations_taking_batches(
    web: Web,
) -> None:
    web.sign_in({**TEXTILE_DESK, "sidr": ["front_desk"]})
    page = await web.client.get("/batches")
    assert page.status_code == 200 and 'lang="ar"' in page.text
    assert 'value="textile-coop"' in page.text and 'value="sidr"' not in page.text
    assert 'enctype="multipart/form-data"' in page.text and f'value="{CSRF}"' in page.text
    assert 'href="/batches"' in page.text  # in the menu
    template = await web.client.get("/batches/template.csv", params={"association_id": "textile-coop"})
    assert template.status_code == 200 and template.content.startswith(b"\xef\xbb\xbf")
    header = next(csv.reader(io.StringIO(template.content.decode("utf-8-sig"))))
    assert header[:4] == ["association_id", "service_code", "national_id", "name"]
    for column in ("family_size", "monthly_income", "level", "doc:national_id_card:number",
                   "doc:national_id_card:expires_on", "attested", "method"):  # fmt: skip
        assert column in header
    assert len(header) == len(set(header))
    other = await web.client.get("/batches/template.csv", params={"association_id": "sidr"})
    assert other.status_code == 404


async def test_a_person_without_the_role_where_batches_are_taken_is_refused_in_their_language(
    web: Web,
) -> None:
    web.sign_in({"sidr": ["front_desk"], "textile-coop": ["verifier"]}, lang="en")
    page = await web.client.get("/batches")
    assert page.status_code == 403 and 'lang="en"' in page.text
    assert "You do not have a role that opens this page." in page.text
    staff = await web.client.get("/staff")
    assert 'href="/batches"' not in staff.text and 'href="/desk"' in staff.text


async def test_an_upload_goes_to_channels_async_with_the_persons_token_and_shows_its_progress(
    web: Web,
) -> None:
    web.channels.answers["/batches"] = httpx.Response(
        202, json={**progress(0, False, []), "progress_url": "/batches/b-1"}
    )
    web.sign_in(TEXTILE_DESK)
    sent = await web.client.post(
        "/batches",
        data={"csrf_token": CSRF, "association_id": "textile-coop", "batch_id": " office-7 "},
        files={"file": ("دفعة.csv", b"service_code,national_id,name\r\n", "text/csv")},
    )
    assert sent.status_code == 303 and sent.headers["location"] == "/batches/b-1"
    request = web.channels.seen[-1]
    assert request.method == "POST" and request.headers["prefer"] == "respond-async"
    assert request.headers["authorization"] == "Bearer the-persons-token"
    body = request.content
    assert b"service_code,national_id,name" in body and b"textile-coop" in body
    assert b"office-7" in body and b" office-7 " not in body

    web.channels.answers["/batches/b-1"] = httpx.Response(200, json=progress(1, False, []))
    page = await web.client.get("/batches/b-1")
    assert page.status_code == 200 and "أُنجز 1 من 3 صفًا" in page.text
    assert 'hx-get="/batches/b-1"' in page.text and "/batches/b-1/result" not in page.text

    web.channels.answers["/batches/b-1"] = httpx.Response(200, json=progress(3, True, [REFUSED_ROW]))
    poll = await web.client.get("/batches/b-1", headers={"HX-Request": "true"})
    assert poll.status_code == 200 and "<html" not in poll.text
    assert 'hx-get="/batches/b-1"' not in poll.text  # finished: no more polling
    assert 'href="/batches/b-1/result"' in poll.text
    assert 'data-row="4"' in poll.text and "رقم الهوية غير صحيح." in poll.text


async def test_a_file_channels_refuses_is_shown_on_the_upload_page_in_the_readers_words(
    web: Web,
) -> None:
    web.channels.answers["/batches"] = httpx.Response(422, json={
        "error": "batch_unreadable", "message": {
            "en": "This file is not a batch of requests.", "ar": "هذا الملف ليس دفعة طلبات."}})  # fmt: skip
    web.sign_in(TEXTILE_DESK, lang="en")
    form = {"csrf_token": CSRF, "association_id": "textile-coop", "batch_id": "office-7"}
    page = await web.client.post("/batches", data=form, files={"file": ("scan.pdf", b"%PDF-1.4")})
    assert page.status_code == 422 and page.headers["content-type"].startswith("text/html")
    assert "This file is not a batch of requests." in page.text and 'value="office-7"' in page.text
    bare = await web.client.post("/batches", data=form)
    assert bare.status_code == 422 and "Choose the file of the batch." in bare.text
    web.channels.down = True
    page = await web.client.post("/batches", data=form, files={"file": ("a.csv", b"x")})
    assert page.status_code == 503 and "did not answer; please try again" in page.text
    assert 'action="/batches"' in page.text  # the form again, not an error page


async def test_a_batch_gone_from_channels_says_so_and_a_poll_stops_with_the_words(
    web: Web,
) -> None:
    web.sign_in(TEXTILE_DESK)
    page = await web.client.get("/batches/b-1")
    assert page.status_code == 404 and "لا توجد لك دفعة b-1 هنا" in page.text
    assert "{" not in page.text.split("<main", 1)[1].split("</main>", 1)[0]  # no JSON
    poll = await web.client.get("/batches/b-1", headers={"HX-Request": "true"})
    assert poll.status_code == 200 and "لا توجد لك دفعة" in poll.text
    assert "hx-get" not in poll.text
    odd = await web.client.get("/batches/..%2Fsecret")
    assert odd.status_code in (404, 422) and "<html" in odd.text
    assert [r.url.path for r in web.channels.seen] == ["/batches/b-1"] * 2


async def test_the_result_file_is_fetched_from_channels_each_time_and_never_cached(
    web: Web,
) -> None:
    content = "\ufeffrow,outcome,case_ref,access_code\r\n2,received,TX-1,SECRET\r\n".encode()
    web.channels.answers["/batches/b-1/result"] = httpx.Response(
        200, content=content, headers={
            "content-type": "text/csv; charset=utf-8", "x-batch-rows": "1",
            "content-disposition": 'attachment; filename="batch-results.csv"'})  # fmt: skip
    web.sign_in(TEXTILE_DESK)
    for _ in range(2):
        answer = await web.client.get("/batches/b-1/result")
        assert answer.status_code == 200 and answer.content == content
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["content-disposition"] == 'attachment; filename="batch-results.csv"'
        assert "x-batch-rows" not in answer.headers
    assert [r.url.path for r in web.channels.seen] == ["/batches/b-1/result"] * 2
    assert web.channels.seen[0].headers["authorization"] == "Bearer the-persons-token"
    web.channels.answers["/batches/b-1/result"] = httpx.Response(409, json={
        "error": "batch_not_finished", "message": {"en": "Not finished.", "ar": "لم تنتهِ."}})  # fmt: skip
    early = await web.client.get("/batches/b-1/result")
    assert early.status_code == 409 and "لم تنتهِ." in early.text
    assert json.dumps({"error": "batch_not_finished"})[:8] not in early.text
