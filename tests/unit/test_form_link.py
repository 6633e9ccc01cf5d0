"""The sealed prefill of a web form's link (shared/form_link): what opens, what does not."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.channels.form_links import WebFormLinks
from shared.clock import FrozenClock
from shared.form_link import (
    FormLinkKey,
    FormLinkKeyProblem,
    PrefillRefused,
    ensure_key,
    expiry,
    load_key,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
KEY = FormLinkKey(bytes(range(32)))
PHONE = "+966500000123"
NATIONAL_ID = "1012345678"
VALUES = {
    "applicant": {"phone": PHONE, "national_id": NATIONAL_ID, "name": "سارة"},
    "fields": {"seedling_count": "20"},
    "documents": [{"code": "land_deed", "number": "D-1", "expires_on": "2030-01-01"}],
}


def sealed(values: dict[str, object] = VALUES, *, days: int = 7) -> str:
    return KEY.seal("sidr", "seedlings", values, expiry(NOW, days))


def test_a_sealed_prefill_opens_to_its_values_for_its_form() -> None:
    assert KEY.open(sealed(), "sidr", "seedlings", NOW) == VALUES
    assert KEY.open(sealed(), "sidr", "seedlings", NOW + timedelta(days=7, seconds=-1)) == VALUES


def test_two_seals_of_the_same_values_differ_random_nonce() -> None:
    assert sealed() != sealed()


@pytest.mark.parametrize(
    ("association_id", "service_code"),
    [("elites", "seedlings"), ("sidr", "member-service"), ("sidr", "seedlings ")],
)
def test_a_prefill_opens_for_no_other_form(association_id: str, service_code: str) -> None:
    with pytest.raises(PrefillRefused) as refused:
        KEY.open(sealed(), association_id, service_code, NOW)
    assert refused.value.reason == "invalid"


def test_a_changed_token_is_refused_wherever_it_is_changed() -> None:
    token = sealed()
    for position in (0, 5, len(token) // 2, len(token) - 2):
        changed = token[:position] + ("A" if token[position] != "A" else "B") + token[position + 1 :]
        with pytest.raises(PrefillRefused, match="invalid"):
            KEY.open(changed, "sidr", "seedlings", NOW)
    for junk in ("", "x", "not a token!", token[:-4], "A" * 5000):
        with pytest.raises(PrefillRefused, match="invalid"):
            KEY.open(junk, "sidr", "seedlings", NOW)


def test_another_keys_token_is_refused() -> None:
    other = FormLinkKey(os.urandom(32))
    with pytest.raises(PrefillRefused, match="invalid"):
        other.open(sealed(), "sidr", "seedlings", NOW)


def test_an_expired_prefill_is_refused_as_expired_by_the_injected_clock() -> None:
    token = sealed(days=7)
    with pytest.raises(PrefillRefused) as refused:
        KEY.open(token, "sidr", "seedlings", NOW + timedelta(days=7))
    assert refused.value.reason == "expired"


def _encodings(value: str) -> set[str]:
    """The value as it could show in a URL: plain, digits only, hex, and base64 in
    each alignment (standard and url-safe, without padding)."""
    raw = value.encode()
    found = {value, value.lstrip("+"), raw.hex(), raw.hex().upper()}
    for pad in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * pad + raw).decode().rstrip("=")
            # The characters that depend on the value alone (not on the padding bytes).
            found.add(text[(pad * 4 + 2) // 3 + 1 : -2])
    found.add(base64.b32encode(raw).decode().rstrip("="))
    return {item for item in found if len(item) >= 6}


def test_the_token_shows_neither_the_phone_nor_the_national_id() -> None:
    token = sealed()
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    for secret in (PHONE, NATIONAL_ID):
        assert secret.encode() not in raw
        for shown in _encodings(secret):
            assert shown not in token, shown


def test_the_key_file_is_made_private_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "form-link.key"
    made = ensure_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert ensure_key(path) == made == load_key(path, configured=False)


def test_no_key_configured_and_none_made_is_plain_links(tmp_path: Path) -> None:
    assert load_key(tmp_path / "form-link.key", configured=False) is None
    links = WebFormLinks("https://k.example/", None)
    assert links("sidr", "seedlings", VALUES) == "https://k.example/a/sidr/seedlings/apply"


@pytest.mark.parametrize("text", ["short", "", "not base64 at all!!", base64.b64encode(b"x" * 16).decode()])
def test_a_damaged_key_file_stops_the_start_in_both_languages(tmp_path: Path, text: str) -> None:
    path = tmp_path / "form-link.key"
    path.write_text(text)
    with pytest.raises(FormLinkKeyProblem) as problem:
        load_key(path, configured=False)
    assert "damaged" in problem.value.en and "تالف" in problem.value.ar


def test_a_configured_key_file_that_cannot_be_read_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(FormLinkKeyProblem) as missing:
        load_key(tmp_path / "absent.key", configured=True)
    assert "cannot be read" in missing.value.en and "تعذّرت" in missing.value.ar
    with pytest.raises(FormLinkKeyProblem):
        load_key(tmp_path, configured=True)  # a folder, not a file


def test_a_link_seals_its_values_until_the_configured_days_end() -> None:
    clock = FrozenClock(NOW)
    links = WebFormLinks("https://k.example", KEY, days=2, clock=clock)
    link = links("sidr", "seedlings", VALUES)
    address, _, token = link.partition("?prefill=")
    assert address == "https://k.example/a/sidr/seedlings/apply"
    assert KEY.open(token, "sidr", "seedlings", NOW + timedelta(days=2) - timedelta(seconds=1))
    with pytest.raises(PrefillRefused, match="expired"):
        KEY.open(token, "sidr", "seedlings", NOW + timedelta(days=2))
