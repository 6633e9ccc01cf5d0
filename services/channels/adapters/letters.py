"""Letters by e-mail (the `letter` channel): a letter sent to an association's address
becomes intake's submission, and the sender gets intake's answer by return of mail.

Inbound: an SMTP endpoint (aiosmtpd, `KHIDMA_LETTERS_SMTP_PORT`) and/or a maildir
polled (`KHIDMA_LETTERS_MAILDIR`). The recipient address chooses the association
(`KHIDMA_LETTERS_ADDRESSES`, JSON: address -> association_id), where its pack enables
`letter`. A letter is parsed with the standard library's `email` (`policy.default`)
and states its request in lines `label: value`:

    الخدمة: طلب شتلات أشجار برية          (Service: the code or the name)
    رقم الهوية: 1000000008                (National ID)
    الاسم: …                               (Name)
    الجوال: 0500000001                     (Phone; optional)
    موقع الزراعة: …                         (each field of the service, by label or name)
    تاريخ الانتهاء: 2030-01-31             (Expiry: of the attached documents)
    الإقرار: نعم                            (Declaration: yes; the letter is the signed paper)

Attachments become the service's documents (matched by code or label in the file
name, else in order); only their names reach intake, never their bytes. The letter's
`Message-ID` is the `channel_ref`: the same letter twice is one request. Mail that
cannot be read gets a bilingual reply saying what to send. Replies go through the
SMTP relay (`KHIDMA_LETTERS_RELAY_HOST`/`_PORT`), with `In-Reply-To`/`References`,
else to the logged outbox. Nothing here keeps a letter, and the log names no address.
"""

from __future__ import annotations

import asyncio
import email
import hashlib
import logging
import mailbox
import re
import smtplib
import unicodedata
from collections import deque
from dataclasses import dataclass, field, replace
from email import policy
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from opentelemetry.trace import SpanKind
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.channels.intake import IntakeRefused
from services.channels.main import enabled, sender_of
from services.channels.outbound import Reply
from shared import tracing
from shared.dates import read_day
from shared.errors import Invalid, Refused
from shared.inputs import ascii_digits
from shared.policy import PolicyPack, ServiceDefinition

log = logging.getLogger(__name__)

CHANNEL = "letter"
MAX_LETTER_BYTES = 25 * 1024 * 1024


class LettersSettings(BaseSettings):
    """`KHIDMA_LETTERS_*`: where letters arrive, whose address is whose, the relay."""

    # Empty values (compose's `${X:-}` of an unset variable) are the defaults.
    model_config = SettingsConfigDict(
        env_prefix="KHIDMA_LETTERS_", extra="ignore", env_ignore_empty=True
    )

    smtp_host: str = "127.0.0.1"
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    maildir: Path | None = None
    poll_seconds: float = Field(default=5.0, gt=0)
    # address -> association_id
    addresses: dict[str, str] = Field(default_factory=dict)
    relay_host: str | None = None
    relay_port: int = Field(default=25, ge=1, le=65535)
    relay_user: str | None = None
    relay_password: str | None = None
    relay_starttls: bool = False
    relay_timeout_seconds: float = Field(default=30.0, gt=0)

    @field_validator("addresses")
    @classmethod
    def _lower(cls, value: dict[str, str]) -> dict[str, str]:
        return {address.strip().lower(): association for address, association in value.items()}


# Reading a letter --------------------------------------------------------------------


@dataclass(frozen=True)
class Attachment:
    """What is kept of an attachment: its name, type, size and digest (never its bytes)."""

    filename: str
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Letter:
    message_id: str  # the channel_ref
    sender: str  # the address replies go to ('' for a bounce: never answered)
    recipients: tuple[str, ...]
    subject: str
    body: str
    attachments: tuple[Attachment, ...] = ()
    automatic: bool = False  # an auto-reply, a list's mail: never answered


class _Text(HTMLParser):
    """An HTML body reduced to its text, a line per block."""

    BLOCKS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "table"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def _address(value: str) -> str:
    return parseaddr(value)[1].strip().lower()


def channel_ref_of(message_id: str | None, raw: bytes) -> str:
    """The letter's Message-ID; a letter without one (or with one too long) is known
    by the digest of its bytes, so the same letter twice is still one request."""
    found = (message_id or "").strip()
    if found and len(found) <= 200 and found.isprintable():
        return found
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def parse_letter(raw: bytes, envelope_to: list[str] | None = None) -> Letter:
    """The letter as the standard library reads it (policy.default: RFC 2047 words,
    transfer encodings and charsets decoded). Raises ValueError for what is no mail."""
    if not raw.strip():
        raise ValueError("empty letter")
    message = email.message_from_bytes(raw, policy=policy.default)
    if not isinstance(message, EmailMessage) or not message.keys():
        raise ValueError("no mail headers")
    if message.defects and not message.get("From"):
        raise ValueError("not a mail message")
    sender = _address(str(message.get("Reply-To") or message.get("From") or ""))
    recipients = tuple(
        a.lower()
        for a in (envelope_to or [])
        or [
            address
            for _, address in getaddresses(
                [str(v) for h in ("To", "Cc", "Delivered-To") for v in message.get_all(h, [])]
            )
        ]
        if a
    )
    body_part = message.get_body(preferencelist=("plain", "html"))
    body = ""
    if body_part is not None:
        content = body_part.get_content()
        body = str(content)
        if body_part.get_content_subtype() == "html":
            body = html_to_text(body)
    attachments = []
    for part in message.iter_attachments():
        if part.is_multipart():
            continue
        decoded = part.get_payload(decode=True)
        payload = decoded if isinstance(decoded, bytes) else b""
        attachments.append(
            Attachment(
                filename=str(part.get_filename() or "attachment"),
                content_type=part.get_content_type(),
                size=len(payload),
                sha256=hashlib.sha256(payload).hexdigest(),
            )
        )
    auto = str(message.get("Auto-Submitted", "no")).strip().lower()
    precedence = str(message.get("Precedence", "")).strip().lower()
    return Letter(
        message_id=channel_ref_of(message.get("Message-ID"), raw),
        sender=sender,
        recipients=recipients,
        subject=str(message.get("Subject", "")).strip(),
        body=body,
        attachments=tuple(attachments),
        automatic=auto not in ("", "no") or precedence in ("bulk", "list", "junk"),
    )


# What the letter asks ---------------------------------------------------------------

_LINE = re.compile(r"^\s*([^:：]{1,80}?)\s*[:：]\s*(.*?)\s*$")

SERVICE_KEYS = ("الخدمة", "نوع الخدمة", "رمز الخدمة", "service", "service code")
NATIONAL_ID_KEYS = (
    "رقم الهوية",
    "الهوية",
    "رقم الهوية الوطنية",
    "national id",
    "national_id",
    "id",
)
NAME_KEYS = ("الاسم", "اسم مقدم الطلب", "name", "full name")
PHONE_KEYS = ("الجوال", "رقم الجوال", "الهاتف", "phone", "mobile")
EXPIRY_KEYS = ("تاريخ الانتهاء", "تاريخ انتهاء المستند", "expiry", "expiry date", "expires")
DECLARATION_KEYS = ("الإقرار", "اقرار", "إقرار", "declaration")
YES = ("نعم", "اقر", "أقر", "yes", "i declare", "true")


def _key(text: str) -> str:
    """A label as compared: case, diacritics, tatweel, alef forms and spacing aside."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(c for c in text if unicodedata.category(c) != "Mn" and c != "\u0640")
    text = text.translate(str.maketrans("أإآ", "ااا"))
    return " ".join(text.replace("_", " ").replace("-", " ").split())


def letter_lines(text: str) -> dict[str, str]:
    """Every `label: value` line of the letter, by its compared label (the first wins)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = _LINE.match(line.strip("\u200f\u200e\u202a\u202b\u202c\ufeff"))
        if match and match.group(2):
            found.setdefault(_key(match.group(1)), match.group(2))
    return found


def _take(lines: dict[str, str], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if (value := lines.get(_key(key))) is not None:
            return value
    return None


def find_service(pack: PolicyPack, value: str) -> ServiceDefinition | None:
    wanted = _key(value)
    for service in pack.services:
        if wanted in (_key(service.code), _key(service.name.ar), _key(service.name.en)):
            return service
    return None


def _valued(value: str, kind: str) -> Any:
    digits = ascii_digits(value).strip()
    if kind == "integer" and digits.lstrip("-").isdigit():
        return int(digits)
    if kind == "number":
        try:
            return float(digits.replace("٫", "."))
        except ValueError:
            return value
    if kind == "date":
        return digits
    if kind == "boolean" and _key(value) in {_key(y) for y in YES} | {"لا", "no", "false"}:
        return _key(value) in {_key(y) for y in YES}
    return value


def _date(value: str | None) -> str | None:
    """The Gregorian day a letter gives (YYYY-MM-DD, or Hijri marked: 1446-05-20 هـ);
    intake judges whether it can be right for the document (shared.dates)."""
    if not value:
        return None
    try:
        return read_day(ascii_digits(value).strip().replace("/", "-"), "date").isoformat()
    except Invalid:
        return None


def documents_of(
    service: ServiceDefinition, attachments: tuple[Attachment, ...], expiry: str | None
) -> list[dict[str, Any]]:
    """The service's documents the attachments are: by code or label in the file
    name, else in order; the entry names the file (never its bytes)."""
    remaining = list(service.required_documents)
    documents: list[dict[str, Any]] = []
    unmatched: list[Attachment] = []
    for attachment in attachments:
        name = _key(Path(attachment.filename).stem)
        match = next(
            (
                d
                for d in remaining
                if _key(d.code) in name or _key(d.label.ar) in name or _key(d.label.en) in name
            ),
            None,
        )
        if match is None:
            unmatched.append(attachment)
            continue
        remaining.remove(match)
        documents.append(_document(match.code, attachment, expiry if match.has_expiry else None))
    for attachment in unmatched:
        if remaining:
            match = remaining.pop(0)
            code, expires = match.code, expiry if match.has_expiry else None
        else:
            code, expires = f"attachment_{len(documents) + 1}", None
        documents.append(_document(code, attachment, expires))
    return documents


def _document(code: str, attachment: Attachment, expires_on: str | None) -> dict[str, Any]:
    document: dict[str, Any] = {"code": code, "number": attachment.filename[:64]}
    if expires_on:
        document["expires_on"] = expires_on
    return document


@dataclass(frozen=True)
class Unreadable(Exception):
    """Why the letter is no request: its code and both languages' words."""

    code: str
    en: str
    ar: str


def submission_of(letter: Letter, association_id: str, pack: PolicyPack) -> dict[str, Any]:
    """Intake's submission the letter states; Unreadable when it names no service of
    the association or no national id (intake says what else is missing)."""
    lines = letter_lines(letter.body)
    service_named = _take(lines, SERVICE_KEYS)
    if not service_named:
        raise Unreadable(
            "no_service", "The letter names no service.", "لم تذكر الرسالة الخدمة المطلوبة."
        )
    service = find_service(pack, service_named)
    if service is None:
        raise Unreadable(
            "unknown_service",
            "The service the letter names is not one of the association's.",
            "الخدمة المذكورة في الرسالة ليست من خدمات الجمعية.",
        )
    national_id = ascii_digits(_take(lines, NATIONAL_ID_KEYS) or "").replace(" ", "")
    if not national_id or len(national_id) > 20:
        raise Unreadable(
            "no_national_id",
            "The letter gives no national ID number.",
            "لم تذكر الرسالة رقم الهوية الوطنية.",
        )
    name = (_take(lines, NAME_KEYS) or "").strip()[:200]
    if not name:
        raise Unreadable(
            "no_name", "The letter gives no applicant's name.", "لم تذكر الرسالة اسم مقدم الطلب."
        )
    applicant: dict[str, Any] = {"national_id": national_id, "name": name}
    phone = _take(lines, PHONE_KEYS)
    if phone:
        applicant["phone"] = ascii_digits(phone).replace(" ", "")[:32]
    if letter.sender and len(letter.sender) <= 254:
        applicant["email"] = letter.sender
    fields: dict[str, Any] = {}
    for requirement in service.required_fields:
        value = _take(lines, (requirement.name, requirement.label.ar, requirement.label.en))
        if value:
            fields[requirement.name] = _valued(value, requirement.kind)
    submission: dict[str, Any] = {
        "association_id": association_id,
        "channel": CHANNEL,
        "channel_ref": letter.message_id,
        "service_code": service.code,
        "applicant": applicant,
        "fields": fields,
        "documents": documents_of(service, letter.attachments, _date(_take(lines, EXPIRY_KEYS))),
    }
    declared = _take(lines, DECLARATION_KEYS)
    if declared and any(_key(y) in _key(declared) for y in YES):
        submission["attestation"] = {"attested": True, "method": "paper_scan"}
    return submission


# The replies --------------------------------------------------------------------------


def how_to_write(pack: PolicyPack | None, addresses: dict[str, str]) -> str:
    """What to send: the association's services and the lines to write, both languages."""
    lines = [
        "اكتب طلبك في نص الرسالة سطرًا سطرًا هكذا / Write your request in the letter, line by line:",
        "الخدمة: <اسم الخدمة أو رمزها> / Service: <the service's name or code>",
        "رقم الهوية: <رقم الهوية الوطنية> / National ID: <your national ID number>",
        "الاسم: <الاسم الكامل> / Name: <your full name>",
        "الجوال: <رقم الجوال> (اختياري) / Phone: <your mobile number> (optional)",
        "تاريخ الانتهاء: YYYY-MM-DD (للمستندات المرفقة) / Expiry: YYYY-MM-DD (of the attached documents)",
        "الإقرار: نعم / Declaration: yes (أقر بصحة البيانات / I declare the data correct)",
        "وأرفق المستندات المطلوبة (PDF أو صورة) / and attach the documents asked for (PDF or image).",
    ]
    if pack is None:
        lines.append("")
        lines.append("عناوين الجمعيات / The associations' addresses:")
        lines.extend(f"- {address} ({association})" for address, association in addresses.items())
        return "\n".join(lines)
    lines.append("")
    lines.append(f"خدمات {pack.name.ar} / The services of {pack.name.en}:")
    for service in pack.services:
        lines.append(f"- {service.name.ar} / {service.name.en} ({service.code})")
        for requirement in service.required_fields:
            lines.append(f"    {requirement.label.ar}: … / {requirement.label.en}: …")
        for document in service.required_documents:
            lines.append(f"    مرفق / attachment: {document.label.ar} / {document.label.en}")
    return "\n".join(lines)


def accepted_text(answer: dict[str, Any]) -> str:
    """Intake's answer: the reference, the secret code once, what is still missing.
    It repeats nothing of the applicant's (it is kept in the outbox, the code masked)."""
    ref = answer["case_ref"]
    lines = [f"وصل طلبك، ورقمه المرجعي: {ref}", f"Your request was received; its reference: {ref}"]
    if answer.get("access_code"):
        code = answer["access_code"]
        lines += [
            f"رمزك السري لمتابعة الطلب: {code} (احتفظ به ولا تشاركه)",
            f"Your secret code to follow the request: {code} (keep it; share it with no one)",
        ]
    elif answer.get("duplicate"):
        lines += [
            "هذا الطلب مسجّل من قبل؛ رمزك السري في الرد الأول.",
            "This request was already recorded; your secret code is in the first reply.",
        ]
    missing = answer.get("missing") or []
    if missing:
        lines.append("ما زال ينقص الطلب / The request still lacks:")
        lines.extend(f"- {m.get('ar', '')} / {m.get('en', '')}" for m in missing)
    return "\n".join(lines)


def refused_text(en: str, ar: str, guidance: str | None = None) -> str:
    text = f"لم يُقبل طلبك: {ar}\nYour request was not accepted: {en}"
    return f"{text}\n\n{guidance}" if guidance else text


def reply_subject(subject: str, case_ref: str | None = None) -> str:
    base = subject if subject.lower().startswith("re:") else f"Re: {subject}".strip()
    return f"{base} [{case_ref}]" if case_ref else base


def reply_id(letter: Letter) -> str:
    """The reply's idempotency key: a digest, so the outbox keeps no one's Message-ID."""
    return "letter-" + hashlib.sha256(letter.message_id.encode("utf-8")).hexdigest()[:32]


class RelaySender:
    """Replies through an SMTP relay (smtplib in a thread), threaded under the letter;
    idempotent on the reply's id within the process, and each reply carries a
    Message-ID derived from it, so a receiver sees a repeat as the same mail."""

    def __init__(self, settings: LettersSettings):
        self.settings = settings
        self._sent: set[str] = set()
        self._lock = asyncio.Lock()

    def message(self, reply: Reply) -> EmailMessage:
        message = EmailMessage()
        message["From"] = reply.extra.get("from") or "khidma@localhost"
        message["To"] = reply.to
        message["Subject"] = reply.extra.get("subject") or "Khidma"
        domain = message["From"].addresses[0].domain or "localhost"
        message["Message-ID"] = f"<{reply.message_id}@{domain}>"
        if reply.extra.get("in_reply_to"):
            message["In-Reply-To"] = reply.extra["in_reply_to"]
            message["References"] = reply.extra.get("references") or reply.extra["in_reply_to"]
        message["Auto-Submitted"] = "auto-replied"
        message.set_content(reply.text)
        return message

    def _deliver(self, message: EmailMessage) -> None:
        settings = self.settings
        assert settings.relay_host
        with smtplib.SMTP(
            settings.relay_host, settings.relay_port, timeout=settings.relay_timeout_seconds
        ) as smtp:
            if settings.relay_starttls:
                smtp.starttls()
            if settings.relay_user:
                smtp.login(settings.relay_user, settings.relay_password or "")
            smtp.send_message(message)

    async def send(self, reply: Reply) -> None:
        async with self._lock:
            if reply.message_id in self._sent:
                return
            await asyncio.to_thread(self._deliver, self.message(reply))
            self._sent.add(reply.message_id)


# Handling a letter ---------------------------------------------------------------------


class TryLater(Exception):
    """Intake or the issuer did not answer: the letter is taken again later."""


@dataclass
class Letters:
    app: FastAPI
    settings: LettersSettings
    outcomes: deque[str] = field(default_factory=lambda: deque(maxlen=200))  # the latest

    def association_of(self, letter: Letter) -> tuple[str | None, str | None]:
        """The association the letter is addressed to, and that address."""
        for address in letter.recipients:
            if address in self.settings.addresses:
                return self.settings.addresses[address], address
        return None, None

    async def _reply(
        self,
        letter: Letter,
        association_id: str,
        address: str | None,
        text: str,
        case_ref: str | None = None,
        secret: str | None = None,
    ) -> None:
        if not letter.sender or letter.automatic or letter.sender in self.settings.addresses:
            return  # a bounce, an auto-reply, our own: never answered (no mail loops)
        extra = {"subject": reply_subject(letter.subject, case_ref), "from": address or ""}
        if not letter.message_id.startswith("sha256:"):
            extra |= {"in_reply_to": letter.message_id, "references": letter.message_id}
        reply = Reply(
            channel=CHANNEL,
            association_id=association_id,
            to=letter.sender,
            text=text,
            message_id=reply_id(letter),
            case_ref=case_ref,
            extra=extra,
            secret=secret,
        )
        sender = sender_of(self.app, CHANNEL)
        try:
            await sender.send(reply)
        except (OSError, smtplib.SMTPException) as error:
            if sender is self.app.state.outbox:
                raise
            # The request is recorded and its secret code is shown once: the reply is
            # kept in the logged outbox for the operator rather than lost.
            log.warning(  # the error's words may name the address: only its kind
                "letters: the relay did not take a reply (%s); kept in the outbox",
                type(error).__name__,
            )
            await self.app.state.outbox.send(reply)

    def _record(self, outcome: str, association_id: str | None) -> None:
        self.outcomes.append(outcome)
        log.info("letter %s (association %s)", outcome, association_id or "-")

    async def handle(
        self, raw: bytes, envelope_to: list[str] | None = None, envelope_from: str = ""
    ) -> str:
        """Reads the letter, submits it, answers the sender; its outcome. Raises
        TryLater when intake did not answer (the letter is to be taken again)."""
        with tracing.request_span("take letter", None, kind=SpanKind.INTERNAL):
            return await self._handle(raw, envelope_to, envelope_from)

    async def _handle(self, raw: bytes, envelope_to: list[str] | None, envelope_from: str) -> str:
        try:
            letter = parse_letter(raw, envelope_to)
        except (ValueError, LookupError, TypeError) as error:
            # Only the envelope's sender (SMTP) is known: they are told what to send.
            letter = Letter(
                message_id=channel_ref_of(None, raw),
                sender=_address(envelope_from),
                recipients=tuple(a.lower() for a in envelope_to or []),
                subject="",
                body="",
            )
            association_id, address = self.association_of(letter)
            packs: dict[str, PolicyPack] = self.app.state.packs
            if association_id is not None:
                await self._reply(
                    letter,
                    association_id,
                    address,
                    refused_text(
                        "Your letter could not be read as mail.",
                        "تعذّرت قراءة رسالتك.",
                        how_to_write(packs.get(association_id), {}),
                    ),
                )
            self._record(f"unparseable ({type(error).__name__})", association_id)
            return "unparseable"
        if not letter.sender and envelope_from:
            letter = replace(letter, sender=_address(envelope_from))
        association_id, address = self.association_of(letter)
        packs = self.app.state.packs
        if association_id is None:
            fallback = next(iter(self.settings.addresses.values()), "unknown")
            guidance = how_to_write(None, self.settings.addresses)
            await self._reply(
                letter,
                fallback,
                None,
                refused_text(
                    "No association receives letters at this address.",
                    "لا تستقبل أي جمعية الرسائل على هذا العنوان.",
                    guidance,
                ),
            )
            self._record("unknown_address", None)
            return "unknown_address"
        pack = packs.get(association_id)
        if pack is None or not enabled(self.app, association_id, CHANNEL):
            await self._reply(
                letter,
                association_id,
                address,
                refused_text(
                    "This association does not take requests by letter here.",
                    "لا تستقبل هذه الجمعية الطلبات بالرسائل هنا.",
                ),
            )
            self._record("channel_not_enabled", association_id)
            return "channel_not_enabled"
        try:
            submission = submission_of(letter, association_id, pack)
        except Unreadable as unreadable:
            await self._reply(
                letter,
                association_id,
                address,
                refused_text(unreadable.en, unreadable.ar, how_to_write(pack, {})),
            )
            self._record(f"unreadable ({unreadable.code})", association_id)
            return "unreadable"
        try:
            answer = await self.app.state.intake.submit(submission)
        except IntakeRefused as refusal:
            if refusal.status >= 500 or refusal.status in (401, 403, 429):
                raise TryLater(refusal.code) from None
            await self._reply(
                letter,
                association_id,
                address,
                refused_text(refusal.en, refusal.ar, how_to_write(pack, {})),
            )
            self._record(f"refused ({refusal.code})", association_id)
            return "refused"
        except Refused as refusal:  # the client's token
            raise TryLater(refusal.code) from None
        except httpx.HTTPError as error:  # intake unreachable
            raise TryLater(type(error).__name__) from None
        await self._reply(
            letter,
            association_id,
            address,
            accepted_text(answer),
            case_ref=answer["case_ref"],
            secret=answer.get("access_code"),
        )
        outcome = "duplicate" if answer.get("duplicate") else "submitted"
        self._record(f"{outcome} {answer['case_ref']}", association_id)
        return outcome


# Inbound: SMTP and maildir ----------------------------------------------------------------


class SmtpHandler:
    """aiosmtpd's handler: only the associations' addresses are taken (RCPT), and a
    letter intake could not take now is answered 451, so the sending server retries."""

    def __init__(self, letters: Letters):
        self.letters = letters

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address.strip().lower() not in self.letters.settings.addresses:
            return "550 5.1.1 No association receives letters at this address"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        try:
            await self.letters.handle(
                bytes(raw), [a.lower() for a in envelope.rcpt_tos], envelope.mail_from or ""
            )
        except TryLater:
            return "451 4.3.0 The letter could not be taken now; please retry"
        except Exception:
            log.exception("a letter failed")
            return "451 4.3.0 The letter could not be taken now; please retry"
        return "250 Message accepted for delivery"


async def serve_smtp(letters: Letters, host: str, port: int) -> None:
    from aiosmtpd.smtp import SMTP

    # aiosmtpd logs every command at INFO, the envelope's addresses with them: never.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            SmtpHandler(letters),
            data_size_limit=MAX_LETTER_BYTES,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname="khidma-letters",
        ),
        host,
        port,
    )
    log.info("letters: SMTP endpoint on %s:%s", host, port)
    async with server:
        await server.serve_forever()


async def poll_maildir(letters: Letters, folder: Path, every: float) -> None:
    """Takes each letter of the maildir's `new/`, then removes it (the case holds what
    it said, sealed); one intake could not take stays for the next round."""
    box = mailbox.Maildir(folder, create=True)
    while True:
        for key in list(box.iterkeys()):
            try:
                raw = box.get_bytes(key)
            except KeyError:
                continue
            try:
                await letters.handle(raw)
            except TryLater:
                continue
            except Exception:
                log.exception("a letter of the maildir failed")
                continue
            box.discard(key)
        await asyncio.sleep(every)


def _settings_or_exit() -> LettersSettings:
    try:
        return LettersSettings()
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        message = (
            f"The letters' settings (KHIDMA_LETTERS_*) are not valid: {problems} / "
            f"إعدادات الرسائل (KHIDMA_LETTERS_*) غير صحيحة: {problems}"
        )
        log.critical(message)
        raise SystemExit(2) from None  # as a service with an invalid setting


async def run(app: FastAPI) -> None:
    """The letters' listeners: the SMTP endpoint and/or the maildir, when configured."""
    settings = _settings_or_exit()
    if settings.relay_host:
        app.state.senders[CHANNEL] = RelaySender(settings)
    letters = Letters(app, settings)
    app.state.letters = letters
    listeners = []
    if settings.smtp_port:
        listeners.append(serve_smtp(letters, settings.smtp_host, settings.smtp_port))
    if settings.maildir:
        listeners.append(poll_maildir(letters, settings.maildir, settings.poll_seconds))
    if not listeners:
        return
    if not settings.addresses:
        log.warning("letters: no address is configured (KHIDMA_LETTERS_ADDRESSES)")
    try:
        await asyncio.gather(*listeners)
    except OSError as error:
        message = (
            f"The letters' SMTP endpoint did not start: {error.strerror or error} / "
            f"لم تبدأ نقطة استقبال الرسائل: {error.strerror or error}"
        )
        log.critical(message)
        raise SystemExit(2) from None  # as a service with an invalid setting
