"""Reading letters: real .eml files (Arabic RFC 2047 subjects, base64 and
quoted-printable parts, PDF and JPEG attachments) into intake's submissions."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from services.channels.adapters.letters import (
    Unreadable,
    channel_ref_of,
    how_to_write,
    html_to_text,
    letter_lines,
    parse_letter,
    submission_of,
)
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from shared.submissions import Submission

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "letters"
PACKS = load_packs(DEFAULT_POLICIES_DIR)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_an_arabic_letter_with_a_pdf_is_read_with_its_encoded_subject_and_attachment():
    raw = fixture("seedlings_arabic_pdf.eml")
    assert b"=?utf-8?b?" in raw.lower()  # the subject as a mail client encodes it
    letter = parse_letter(raw)
    assert letter.subject == "طلب شتلات أشجار برية"
    assert letter.message_id == "<5d0c2a8e-7f3b-4e1c-9a51-2b6f0e1d3c44@example.sa>"
    assert letter.sender == "abdullah.q@example.sa"
    assert letter.recipients == ("letters@sidr.example.org",)
    assert "الخدمة: طلب شتلات أشجار برية" in letter.body
    [attachment] = letter.attachments
    assert attachment.filename == "national_id_card.pdf"
    assert attachment.content_type == "application/pdf"
    assert attachment.size > 100 and len(attachment.sha256) == 64


def test_the_arabic_letter_becomes_a_complete_submission():
    letter = parse_letter(fixture("seedlings_arabic_pdf.eml"))
    submission = submission_of(letter, "sidr", PACKS["sidr"])
    Submission.model_validate(submission)  # intake's own contract
    assert submission["service_code"] == "seedlings"
    assert submission["channel"] == "letter"
    assert submission["channel_ref"] == letter.message_id
    assert submission["applicant"] == {
        "national_id": "1000000008",  # Arabic-Indic digits read as digits
        "name": "عبدالله بن سعيد القحطاني",
        "phone": "0500000001",
        "email": "abdullah.q@example.sa",
    }
    assert submission["fields"] == {"planting_site": "وادي حنيفة، الرياض", "seedling_count": 40}
    assert submission["documents"] == [
        {"code": "national_id_card", "number": "national_id_card.pdf", "expires_on": "2031-05-30"}
    ]
    assert submission["attestation"] == {"attested": True, "method": "paper_scan"}


def test_an_html_letter_with_a_jpeg_named_in_arabic_is_reduced_to_text():
    letter = parse_letter(fixture("seedlings_html_jpeg.eml"))
    assert letter.subject == "طلب: شتلات — Seedlings request"
    assert "<div>" not in letter.body and "p{margin" not in letter.body
    [attachment] = letter.attachments
    assert attachment.filename == "هوية.jpg"  # RFC 2231
    assert attachment.content_type == "image/jpeg"
    submission = submission_of(letter, "sidr", PACKS["sidr"])
    assert submission["applicant"]["national_id"] == "1000000016"
    assert submission["applicant"]["name"] == "Fatimah Al-Harbi"
    assert submission["fields"] == {"planting_site": "Al-Qassim farm road", "seedling_count": 12}
    # No code or label in its name: the attachment is the service's next document.
    assert submission["documents"] == [
        {"code": "national_id_card", "number": "هوية.jpg", "expires_on": "2030-01-31"}
    ]


def test_a_letter_naming_no_service_is_unreadable():
    letter = parse_letter(fixture("no_service_arabic.eml"))
    assert letter.subject == "استفسار عن خدمات الجمعية"
    with pytest.raises(Unreadable) as raised:
        submission_of(letter, "sidr", PACKS["sidr"])
    assert raised.value.code == "no_service"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("Service: Haircut\nNational ID: 1\nName: A", "unknown_service"),
        ("الخدمة: seedlings\nالاسم: أ", "no_national_id"),
        ("الخدمة: seedlings\nرقم الهوية: 1000000008", "no_name"),
    ],
)
def test_what_makes_a_letter_unreadable(body: str, code: str):
    raw = (
        "From: a@example.com\r\nTo: letters@sidr.example.org\r\nSubject: x\r\n"
        "Message-ID: <x@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body
    ).encode()
    with pytest.raises(Unreadable) as raised:
        submission_of(parse_letter(raw), "sidr", PACKS["sidr"])
    assert raised.value.code == code


def test_lines_are_matched_whatever_the_case_diacritics_and_colon():
    lines = letter_lines("SERVICE : seedlings\n\u200fالاسمُ： سارة\nno colon here")
    assert lines == {"service": "seedlings", "الاسم": "سارة"}


def test_what_is_no_mail_is_refused_and_a_letter_without_message_id_has_a_digest_ref():
    with pytest.raises(ValueError):
        parse_letter(b"   ")
    with pytest.raises(ValueError):
        parse_letter(b"\x00\x01\x02 no headers at all")
    raw = b"From: a@example.com\r\nTo: letters@sidr.example.org\r\nSubject: x\r\n\r\nbody"
    assert parse_letter(raw).message_id == channel_ref_of(None, raw)
    assert parse_letter(raw).message_id.startswith("sha256:")


def test_html_to_text_keeps_blocks_as_lines():
    assert html_to_text("<p>Service: a</p><div>Name:&nbsp;B</div><script>x</script>") == (
        "Service: a\nName: B"
    )


def test_the_guidance_names_the_association_s_services_and_the_lines_in_both_languages():
    text = how_to_write(PACKS["sidr"], {})
    assert "الخدمة:" in text and "Service:" in text and "National ID:" in text
    for service in PACKS["sidr"].services:
        assert service.name.ar in text and service.name.en in text and service.code in text
    assert "موقع الزراعة" in text and "Planting site" in text


def test_auto_replies_are_known():
    raw = (
        b"From: a@example.com\r\nTo: letters@sidr.example.org\r\nAuto-Submitted: auto-replied\r\n"
        b"Subject: Out of office\r\n\r\nAway"
    )
    assert parse_letter(raw).automatic


@pytest.mark.parametrize(
    ("written", "read"),
    [("١٤٥٥/٠١/٠١ هـ", "2033-04-01"), ("1455-01-01h", "2033-04-01"), ("2031/05/30", "2031-05-30")],
)
def test_an_expiry_written_in_hijri_with_its_mark_is_read_as_its_gregorian_day(
    written: str, read: str
):
    message = EmailMessage()
    message["From"] = "a@example.com"
    message["To"] = "letters@sidr.example.org"
    message["Subject"] = "x"
    message["Message-ID"] = "<hijri@example.com>"
    message.set_content(
        f"الخدمة: seedlings\nرقم الهوية: 1000000008\nالاسم: سارة\nتاريخ الانتهاء: {written}\n"
    )
    message.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf",
                           filename="national_id_card.pdf")
    submission = submission_of(parse_letter(message.as_bytes()), "sidr", PACKS["sidr"])
    assert submission["documents"][0]["expires_on"] == read
