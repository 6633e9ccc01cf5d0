"""What the WhatsApp adapter reads in a message, and the webhook's format and signature."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime

import pytest

from services.channels.form_links import WebFormLinks
from services.channels.whatsapp import conversation
from services.channels.whatsapp.conversation import Unusable, message_ref
from services.channels.whatsapp.settings import load_whatsapp_settings
from services.channels.whatsapp.webhook import (
    MalformedNotification,
    messages_of,
    signature_holds,
    signature_of,
)
from shared.clock import FrozenClock
from shared.form_link import FormLinkKey
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from tests.fakes.graph_api import (
    PHONE_NUMBER_ID,
    delivered_status,
    notification,
    seedlings_request,
    text_message,
)

pytestmark = pytest.mark.unit

SIDR = load_packs(DEFAULT_POLICIES_DIR)["sidr"]


@pytest.mark.parametrize(
    "text",
    [
        "status SDR-1448-000123 K7QM-3XRD-P9TA",
        "Status sdr-1448-000123 k7qm-3xrd-p9ta",
        "حالة SDR-١٤٤٨-٠٠٠١٢٣ K7QM-3XRD-P9TA",
        "حالة الطلب: SDR-۱۴۴۸-۰۰۰۱۲۳ K7QM-3XRD-P9TA",
        "  حاله SDR-1448-000123   K7QM-3XRD-P9TA  ",
    ],
)
def test_a_status_question_in_either_language_and_either_digits(text: str) -> None:
    assert conversation.status_question(text) == ("SDR-1448-000123", "K7QM-3XRD-P9TA")


@pytest.mark.parametrize(
    "text", ["status", "status SDR-1448-000123", "حالة الطقس اليوم", "hello SDR-1448-000123 X"]
)
def test_other_messages_are_no_status_question(text: str) -> None:
    assert conversation.status_question(text) is None


def test_a_structured_message_is_the_whole_submission() -> None:
    lines = conversation.structured(seedlings_request(count="٢٠"))
    assert lines is not None
    body = conversation.submission(SIDR, lines, wamid="wamid.X", sender="966500000123")
    assert body["channel"] == "social_media" and body["channel_ref"] == message_ref("wamid.X") != "wamid.X"
    assert body["service_code"] == "seedlings"
    assert body["applicant"] == {
        "national_id": "1000000008",
        "name": "سارة العتيبي",
        "phone": "+966500000123",
    }
    assert body["fields"] == {"planting_site": "وادي حنيفة", "seedling_count": 20}
    assert body["documents"] == [
        {"code": "national_id_card", "number": "1000000008", "expires_on": "2030-01-01"}
    ]


def test_a_structured_message_without_the_applicant_is_unusable() -> None:
    lines = conversation.structured("service: seedlings\nseedling_count: 3")
    assert lines is not None
    with pytest.raises(Unusable) as refused:
        conversation.submission(SIDR, lines, wamid="w", sender="1")
    assert refused.value.ar and refused.value.en


def test_a_message_without_the_applicant_is_answered_with_the_form_filled_with_what_it_said() -> None:
    lines = conversation.structured("service: seedlings\nseedling_count: 3")
    assert lines is not None
    with pytest.raises(Unusable) as refused:
        conversation.submission(SIDR, lines, wamid="w", sender="966500000123")
    assert refused.value.body is not None
    links = WebFormLinks("https://k.example", FORM_KEY, clock=FrozenClock(NOW))
    text = conversation.refused(SIDR, refused.value.body, refused.value, links)
    assert "national_id" in text and "رقم الهوية" in text
    [(code, token), _] = links_in(text)
    assert FORM_KEY.open(token, "sidr", code, NOW) == {
        "applicant": {"phone": "+966500000123"},
        "fields": {"seedling_count": "3"},
        "documents": [],
    }


def test_a_message_without_a_service_line_is_not_structured() -> None:
    assert conversation.structured("name: Sara\nnational_id: 1") is None
    assert conversation.structured("مرحبا") is None


FORM_KEY = FormLinkKey(bytes(range(32)))
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
LINK = re.compile(r"https://k\.example/a/sidr/([a-z-]+)/apply(?:\?prefill=([A-Za-z0-9_-]+))?")


def links_in(text: str) -> list[tuple[str, str]]:
    """(service, prefill token) of every form link in a reply."""
    return [(m.group(1), m.group(2) or "") for m in LINK.finditer(text)]


def test_the_menu_links_every_service_form_in_both_languages() -> None:
    text = conversation.menu(SIDR, WebFormLinks("https://k.example/"), "966500000123")
    for service in SIDR.services:
        assert f"https://k.example/a/sidr/{service.code}/apply" in text
        assert service.name.ar in text and service.name.en in text
    assert "prefill" not in text  # no key: the plain links, as before


def test_the_menus_links_carry_the_senders_phone_sealed_for_each_form() -> None:
    links = WebFormLinks("https://k.example", FORM_KEY, clock=FrozenClock(NOW))
    text = conversation.menu(SIDR, links, "966500000123")
    found = links_in(text)
    # Each service in both languages, each link opening for its own service only.
    assert sorted({code for code, _ in found}) == sorted(s.code for s in SIDR.services)
    assert len(found) == 2 * len(SIDR.services)
    for code, token in found:
        opened = FORM_KEY.open(token, "sidr", code, NOW)
        assert opened == {"applicant": {"phone": "+966500000123"}}
    assert "966500000123" not in text


class _Refusal:
    ar = "البيانات غير صالحة."
    en = "The data is not valid."
    detail = [{"loc": ["body", "applicant", "national_id"], "type": "string_too_long"}]


def test_a_refused_requests_link_carries_every_line_the_applicant_sent() -> None:
    message = seedlings_request(national_id="1" * 21) + "\nالبريد: sara@example.org"
    lines = conversation.structured(message)
    assert lines is not None
    body = conversation.submission(SIDR, lines, wamid="w", sender="966500000123")
    links = WebFormLinks("https://k.example", FORM_KEY, clock=FrozenClock(NOW))
    text = conversation.refused(SIDR, body, _Refusal(), links)
    assert "applicant.national_id" in text and _Refusal.en in text
    [(code, token), (again, _)] = links_in(text)
    assert code == again == "seedlings"
    assert FORM_KEY.open(token, "sidr", "seedlings", NOW) == {
        "applicant": {
            "national_id": "1" * 21,
            "name": "سارة العتيبي",
            "phone": "+966500000123",
            "email": "sara@example.org",
        },
        "fields": {"planting_site": "وادي حنيفة", "seedling_count": "20"},
        "documents": [
            {"code": "national_id_card", "number": "1000000008", "expires_on": "2030-01-01"}
        ],
    }
    assert "1" * 21 not in text and "sara@example.org" not in text


def test_the_signature_is_the_hmac_of_the_raw_body() -> None:
    body = '{"a": "سدر"}'.encode()
    expected = "sha256=" + hmac.new(b"secret", body, hashlib.sha256).hexdigest()
    assert signature_of(body, "secret") == expected
    assert signature_holds(body, expected, "secret")
    assert not signature_holds(body + b" ", expected, "secret")
    assert not signature_holds(body, expected, "other")
    assert not signature_holds(body, None, "secret")
    assert not signature_holds(body, expected.removeprefix("sha256="), "secret")
    assert not signature_holds(body, "sha256=é", "secret")
    assert not signature_holds(body, expected, "")


def test_messages_are_read_and_statuses_ignored() -> None:
    message = text_message("hello")
    [found] = messages_of(notification(message, statuses=[delivered_status()]))
    assert found.phone_number_id == PHONE_NUMBER_ID
    assert (found.sender, found.wamid, found.type, found.text) == (
        message["from"],
        message["id"],
        "text",
        "hello",
    )
    assert messages_of(notification(statuses=[delivered_status()])) == []
    assert messages_of({"object": "page", "entry": []}) == []
    image = {**text_message(""), "type": "image", "image": {"id": "1", "mime_type": "image/jpeg"}}
    del image["text"]
    [other] = messages_of(notification(image))
    assert other.type == "image" and other.text == ""


def test_a_notification_of_the_wrong_shape_is_malformed() -> None:
    for bad in ([], {"object": "whatsapp_business_account", "entry": "x"}):
        with pytest.raises(MalformedNotification):
            messages_of(bad)


def test_wrong_settings_stop_the_service_at_start_in_both_languages(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    packs = load_packs(DEFAULT_POLICIES_DIR)
    monkeypatch.setenv("KHIDMA_WHATSAPP_NUMBERS", "{not json")
    with pytest.raises(SystemExit) as stopped:
        load_whatsapp_settings(dict(packs))
    assert stopped.value.code == 2
    assert "KHIDMA_WHATSAPP_NUMBERS" in capsys.readouterr().err
    monkeypatch.setenv("KHIDMA_WHATSAPP_NUMBERS", '{"1065": "no-such-association"}')
    with pytest.raises(SystemExit):
        load_whatsapp_settings(dict(packs))
    err = capsys.readouterr().err
    assert "no-such-association" in err and "جمعيات" in err
    monkeypatch.setenv("KHIDMA_WHATSAPP_NUMBERS", '{"1065": "sidr"}')
    assert load_whatsapp_settings(dict(packs)).numbers == {"1065": "sidr"}
