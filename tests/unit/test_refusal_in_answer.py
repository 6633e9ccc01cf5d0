"""Reading another service's refusal from its answer: one reading for the web app and
the channel adapters."""

from __future__ import annotations

import pytest

from shared.errors import refusal_in_answer

pytestmark = pytest.mark.unit


def test_a_refusal_gives_its_code_words_and_detail() -> None:
    body = {"error": "invalid_request", "message": {"en": "No.", "ar": "لا."}, "detail": [{"loc": ["body"]}]}
    assert refusal_in_answer(body) == ("invalid_request", {"en": "No.", "ar": "لا."}, [{"loc": ["body"]}])


def test_identitys_oauth_refusal_names_khidmas_code_in_reason() -> None:
    body = {"error": "invalid_grant", "reason": "password_change_required",
            "message": {"en": "Choose.", "ar": "اختر."}}
    assert refusal_in_answer(body)[0] == "password_change_required"


def test_a_message_inside_an_http_exceptions_detail_is_read() -> None:
    body = {"detail": {"message": {"en": "Not set", "ar": "غير مضبوط"}, "error": "x"}}
    code, words, _ = refusal_in_answer(body)
    assert code == "x" and words == {"en": "Not set", "ar": "غير مضبوط"}


@pytest.mark.parametrize("body", [{}, [], "text", None, {"message": "plain"}])
def test_an_answer_without_the_shape_gives_no_words(body: object) -> None:
    assert refusal_in_answer(body)[1] is None
