"""The public endpoints' limits per client: a token bucket per caller, the caller's
address from a trusted proxy only, a clear 429 in both languages; the web asks the
services on the applicant's behalf."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from services.web.backends import Backends
from services.web.main import build
from services.web.settings import WebSettings
from shared.limits import Limiter, LimitSettings, TokenBuckets
from tests.auth import as_adapter
from tests.in_process import InProcessService

pytestmark = pytest.mark.unit

Start = Callable[..., Awaitable[InProcessService]]


def test_a_bucket_lets_its_burst_through_then_one_request_per_share_of_the_minute() -> None:
    now = [0.0]
    buckets = TokenBuckets(per_minute=60, burst=3, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(1.0)  # one a second
    assert buckets.take("b") == 0.0  # another client has its own
    now[0] += 1.0
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0


def test_no_limit_when_the_budget_is_zero() -> None:
    buckets = TokenBuckets(per_minute=0, burst=1)
    assert all(buckets.take("a") == 0.0 for _ in range(1000))


def test_the_forwarded_address_counts_only_from_a_trusted_proxy() -> None:
    limiter = Limiter(LimitSettings(trusted_proxies=["10.0.0.0/8", "127.0.0.1"]))
    # Anyone else's header is ignored: it cannot dodge the limit.
    assert limiter.client_address("203.0.113.9", "198.51.100.1") == "203.0.113.9"
    assert limiter.client_address("127.0.0.1", "198.51.100.1") == "198.51.100.1"
    # Through two proxies of ours: the right-most address that is not ours.
    assert limiter.client_address("10.0.0.2", "6.6.6.6, 198.51.100.1, 10.0.0.3") == "198.51.100.1"
    assert limiter.client_address(None, None) == "unknown"


async def test_the_applicant_s_status_is_a_bilingual_429_past_the_budget(in_process: Start) -> None:
    intake = await in_process("intake")
    intake.api.state.limiter = Limiter(LimitSettings(public_per_minute=6, public_burst=2))
    asked = [
        await intake.client.get("/cases/SDR-1448-000001/status", headers={"X-Case-Code": "A"})
        for _ in range(3)
    ]
    assert [r.status_code for r in asked] == [404, 404, 429]
    refused = asked[2]
    assert refused.json()["error"] == "too_many_requests"
    assert refused.json()["message"]["ar"] and refused.json()["message"]["en"]
    assert int(refused.headers["retry-after"]) >= 1


async def test_a_token_has_its_own_budget_apart_from_the_public_one(in_process: Start) -> None:
    intake = await in_process("intake")
    intake.api.state.limiter = Limiter(
        LimitSettings(public_per_minute=6, public_burst=1, client_per_minute=6, client_burst=2)
    )
    adapter = as_adapter(["website"], ["sidr"])
    question = {"association_id": "sidr", "service_code": "seedlings", "fields": {}}
    anonymous = [
        (await intake.client.post("/eligibility", json=question)).status_code for _ in range(2)
    ]
    with_token = [
        (await intake.client.post("/eligibility", json=question, headers=adapter)).status_code
        for _ in range(3)
    ]
    assert anonymous == [200, 429]
    assert with_token == [200, 200, 429]


def web_settings(data_dir: Path) -> WebSettings:
    url = "http://127.0.0.1:9"
    return WebSettings(
        data_dir=data_dir, identity_url=url, intake_url="http://intake", verification_url=url,
        committee_url=url, surveys_url=url, privacy_url=url, audit_url=url, channels_url=url,
    )  # fmt: skip


async def test_the_web_counts_each_visitor_and_the_services_count_them_as_the_web_says(
    tmp_path: Path, in_process: Start
) -> None:
    intake = await in_process("intake")
    # The web is intake's trusted proxy (the ASGI test client's address is "127.0.0.1").
    intake.api.state.limiter = Limiter(
        LimitSettings(public_per_minute=6, public_burst=2, trusted_proxies=["127.0.0.1"])
    )
    app = build(web_settings(tmp_path / "web"))
    app.state.backends = Backends({"intake": "http://intake"}, intake.client)
    app.state.limiter = Limiter(
        LimitSettings(public_per_minute=6, public_burst=10, trusted_proxies=["127.0.0.1"])
    )
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://web") as web:
        form = await web.get("/status")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf, form.text

        async def ask(visitor: str) -> httpx.Response:
            return await web.post(
                "/status",
                data={"case_ref": "SDR-1448-000001", "code": "A", "csrf_token": csrf.group(1)},
                headers={"X-Forwarded-For": visitor},
            )

        # Intake's budget of two is per visitor, not the web's one address.
        asked = [await ask(v) for v in ("198.51.100.1",) * 2 + ("198.51.100.2",) * 2]
        assert [page.status_code for page in asked] == [404] * 4  # no such request
        over = await ask("198.51.100.1")
    assert over.status_code == 429
    assert 'lang="ar"' in over.text and "أعد المحاولة" in over.text


async def test_an_htmx_submission_over_the_budget_shows_the_429_above_the_form_it_came_from(
    tmp_path: Path,
) -> None:
    """htmx swaps no 4xx: the refusal comes as a 200 aimed at the page's refusal panel,
    so the applicant reads why and what they typed stays in the form."""
    app = build(web_settings(tmp_path / "web"))
    app.state.limiter = Limiter(LimitSettings(public_per_minute=1, public_burst=1))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://web") as web:
        page = await web.get("/status")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf, page.text
        over = await web.post(
            "/status",
            data={"case_ref": "SDR-1448-000001", "code": "A", "csrf_token": csrf.group(1)},
            headers={"HX-Request": "true"},
        )
        plain = await web.get("/status")
    assert over.status_code == 200
    assert over.headers["HX-Retarget"] == "#page-refusal"
    assert over.headers["HX-Reselect"] == ".refusal" and over.headers["Retry-After"]
    assert 'class="flash error refusal"' in over.text and "أعد المحاولة" in over.text
    assert "<form" not in over.text  # the panel only: the form on the screen stays
    assert plain.status_code == 429 and "<h1>" in plain.text and 'lang="ar"' in plain.text
