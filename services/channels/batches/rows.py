"""A batch row as intake's submission, and the batch's channel references.

Columns (docs/operations.md): association_id (or the upload's form field),
service_code, national_id, name, phone, email, the service's fields by their name,
documents as `doc:<code>:number` / `doc:<code>:issued_on` / `doc:<code>:expires_on`,
and the declaration as `attested` (yes/no) with `method` and `attested_by`.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError

from shared.dates import read_day
from shared.errors import Invalid
from shared.inputs import ascii_digits
from shared.policy import PolicyPack
from shared.submissions import Submission

CHANNEL = "branch_office"
APPLICANT_COLUMNS = ("national_id", "name", "phone", "email")
ATTESTATION_COLUMNS = ("attested", "method", "attested_by")
OTHER_COLUMNS = ("association_id", "service_code", *APPLICANT_COLUMNS, *ATTESTATION_COLUMNS)
DOCUMENT_PARTS = ("number", "issued_on", "expires_on")
YES = {"yes", "y", "true", "1", "x", "نعم", "✓"}
NO = {"no", "n", "false", "0", "لا"}
_NATIONAL_ID = re.compile(r"^[12]\d{9}$")
_DECIMAL_COMMA = re.compile(r"^-?\d+,\d+$")
_DAY_FIRST = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$")


def batch_key(content: bytes, batch_id: str | None, uploader: str) -> str:
    """What the batch is known by: the representative's own batch id (theirs alone),
    else the digest of the file's bytes: the same file again is the same batch."""
    if batch_id:
        return "id:" + hashlib.sha256(f"{uploader}\n{batch_id}".encode()).hexdigest()
    return "file:" + hashlib.sha256(content).hexdigest()


def channel_ref(key: str, row: int) -> str:
    """The row's channel reference: the same batch's same row is the same request."""
    return "batch-" + hashlib.sha256(f"{key}\n{row}".encode()).hexdigest()[:40]


class RowUnreadable(Invalid):
    """A row the adapter cannot make a submission of (its own words, both languages)."""


def _unreadable(en: str, ar: str) -> RowUnreadable:
    return RowUnreadable("row_unreadable", en, ar)


def national_id_valid(value: str) -> bool:
    """10 digits, 1 (citizen) or 2 (resident) first, a valid (Luhn-style) check digit."""
    if not _NATIONAL_ID.fullmatch(value):
        return False
    total = 0
    for index, character in enumerate(value):
        digit = int(character) * (2 if index % 2 == 0 else 1)
        total += digit // 10 + digit % 10
    return total % 10 == 0


def _text(value: Any) -> str | None:
    return None if value is None else str(value).strip() or None


def _day(value: Any, column: str) -> str:
    if isinstance(value, (date, datetime)):
        return value.isoformat()[:10]
    text = str(value).strip()
    try:
        # YYYY-MM-DD, or Hijri marked (1446-05-20h): read once, as intake reads it.
        return read_day(text, column).isoformat()
    except Invalid:
        pass
    found = _DAY_FIRST.fullmatch(text)
    if found:
        day, month, year = (int(g) for g in found.groups())
        try:
            return date(year, month, day).isoformat()
        except ValueError:
            pass
    raise _unreadable(
        f"{column}: '{text}' is not a date (write it as 2027-03-31 or 31/03/2027, "
        "or in Hijri 1448-10-03h).",
        f"{column}: '{text}' ليس تاريخًا (اكتبه 2027-03-31 أو 31/03/2027، أو هجريًا 1448-10-03h).",
    )


def _yes(value: Any, column: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in YES:
        return True
    if text in NO:
        return False
    raise _unreadable(
        f"{column}: write yes or no, not '{text}'.",
        f"{column}: اكتب نعم أو لا، وليس '{text}'.",
    )


def _field_value(value: Any, kind: str | None) -> Any:
    """A field's cell as the pack's kind wants it (intake reads numbers from text)."""
    if kind == "boolean" and not isinstance(value, bool):
        text = str(value).strip().lower()
        return True if text in YES else False if text in NO else value
    if kind == "number" and isinstance(value, str) and _DECIMAL_COMMA.fullmatch(value):
        return value.replace(",", ".")  # Excel where the decimal sign is a comma
    return value


def submission_of(
    cells: dict[str, Any],
    *,
    ref: str,
    default_association: str | None,
    packs: dict[str, PolicyPack],
) -> Submission:
    """The row's submission; RowUnreadable says why there is none."""
    association_id = _text(cells.get("association_id")) or default_association
    if not association_id:
        raise _unreadable(
            "association_id is missing (a column, or the upload's association_id field).",
            "معرّف الجمعية association_id غير مذكور (عمود، أو حقل association_id في الرفع).",
        )
    # Arabic-Indic digits are digits: the row's id is judged as intake will read it.
    national_id = ascii_digits(_text(cells.get("national_id")) or "")
    # Excel may show a 10-digit id as a number: it comes back whole, as digits.
    if not national_id_valid(national_id):
        raise _unreadable(
            f"national_id '{national_id}' is not a Saudi national ID or iqama number "
            "(10 digits, starting with 1 or 2, with a valid check digit).",
            f"رقم الهوية '{national_id}' ليس رقم هوية وطنية أو إقامة صحيحًا "
            "(10 أرقام تبدأ بـ1 أو 2، برقم تحقق صحيح).",
        )
    name = _text(cells.get("name"))
    service_code = _text(cells.get("service_code"))
    if not name or not service_code:
        raise _unreadable(
            "The row needs the applicant's name and the service_code.",
            "يحتاج الصف إلى اسم مقدّم الطلب ورمز الخدمة service_code.",
        )
    pack = packs.get(association_id)
    service = pack.service(service_code) if pack else None
    kinds = {f.name: f.kind for f in service.required_fields} if service else {}
    fields: dict[str, Any] = {}
    documents: dict[str, dict[str, Any]] = {}
    for column, value in cells.items():
        if value is None or column in OTHER_COLUMNS:
            continue
        if column.startswith("doc:"):
            parts = column.split(":")
            if len(parts) != 3 or not parts[1] or parts[2] not in DOCUMENT_PARTS:
                raise _unreadable(
                    f"The column '{column}' is not doc:<code>:number, "
                    "doc:<code>:issued_on or doc:<code>:expires_on.",
                    f"العمود '{column}' ليس بالصيغة doc:<code>:number أو "
                    "doc:<code>:issued_on أو doc:<code>:expires_on.",
                )
            code, part = parts[1], parts[2]
            documents.setdefault(code, {"code": code})[part] = (
                str(value) if part == "number" else _day(value, column)
            )
            continue
        fields[column] = _field_value(value, kinds.get(column))
    attestation = None
    attested = cells.get("attested")
    if attested is not None and _yes(attested, "attested"):
        attestation = {
            "attested": True,
            "method": _text(cells.get("method")) or "in_person",
            "attested_by": _text(cells.get("attested_by")),
        }
    body = {
        "association_id": association_id,
        "channel": CHANNEL,
        "channel_ref": ref,
        "service_code": service_code,
        "applicant": {
            "national_id": national_id,
            "name": name,
            "phone": _text(cells.get("phone")),
            "email": _text(cells.get("email")),
        },
        "fields": fields,
        "documents": list(documents.values()),
        "attestation": attestation,
    }
    try:
        return Submission.model_validate(body)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise _unreadable(
            f"The row cannot be read: {problems}.",
            f"تعذّرت قراءة الصف: {problems}.",
        ) from None
