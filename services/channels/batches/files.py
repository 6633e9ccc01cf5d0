"""Reading a batch file (CSV in UTF-8 with or without a BOM, `,` `;` or tab; or
XLSX) into a header and rows, and writing the per-row result file in the same kind.

Nothing here touches the disk: the upload and the result (which holds the secret
codes) live in memory only.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from shared.errors import Invalid

Kind = Literal["csv", "xlsx"]
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
DELIMITERS = (",", ";", "\t")
# The columns every batch must have: without them it is not a batch file.
REQUIRED_COLUMNS = ("service_code", "national_id", "name")


@dataclass(frozen=True)
class Sheet:
    kind: Kind
    header: list[str]
    # (row number as the spreadsheet shows it, the cells by column name)
    rows: list[tuple[int, dict[str, Any]]]


def not_a_batch(reason_en: str, reason_ar: str) -> Invalid:
    return Invalid(
        "batch_unreadable",
        "This file is not a batch of requests: send a CSV (UTF-8, with a header row) or "
        f"an XLSX workbook with the columns of docs/operations.md. {reason_en}",
        "هذا الملف ليس دفعة طلبات: أرسل ملف CSV (بترميز UTF-8 وبصف عناوين) أو مصنف XLSX "
        f"بالأعمدة المذكورة في دليل التشغيل. {reason_ar}",
    )


def too_many_rows(count: int, limit: int) -> Invalid:
    return Invalid(
        "batch_too_large",
        f"The batch has {count} rows; at most {limit} are taken at once. Split it.",
        f"تحتوي الدفعة على {count} صفًا؛ والحد الأقصى {limit} في المرة الواحدة. قسّمها.",
    )


def is_xlsx(content: bytes) -> bool:
    if not content.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            return "xl/workbook.xml" in archive.namelist()
    except zipfile.BadZipFile:
        return False


def _header(cells: list[Any]) -> list[str]:
    return [str(c).strip() if c is not None else "" for c in cells]


def _check_header(header: list[str]) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        names = ", ".join(missing)
        raise not_a_batch(f"Its header lacks: {names}.", f"ينقص صف العناوين: {names}.")


def _cell(value: Any) -> Any:
    """A cell as a submission takes it: text trimmed, a whole float as an integer, a
    date (XLSX) as its ISO day; empty as None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _sheet(kind: Kind, records: list[list[Any]], max_rows: int) -> Sheet:
    if not records:
        raise not_a_batch("It is empty.", "الملف فارغ.")
    header = _header(records[0])
    _check_header(header)
    rows: list[tuple[int, dict[str, Any]]] = []
    for number, record in enumerate(records[1:], start=2):
        cells = {name: _cell(value) for name, value in zip(header, record, strict=False) if name}
        if any(v is not None for v in cells.values()):
            rows.append((number, cells))
    if len(rows) > max_rows:
        raise too_many_rows(len(rows), max_rows)
    return Sheet(kind, header, rows)


def sniff_delimiter(first_line: str) -> str:
    """Excel writes `,` or, where the decimal sign is a comma, `;`: the header's most
    frequent candidate wins."""
    counts = {d: first_line.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_csv(content: bytes, max_rows: int) -> Sheet:
    if b"\x00" in content[:4096]:
        raise not_a_batch("It is a binary file.", "الملف ثنائي وليس نصًا.")
    try:
        text = content.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a BOM
    except UnicodeDecodeError:
        raise not_a_batch(
            "It is not UTF-8 text (in Excel: Save As, CSV UTF-8).",
            "الملف ليس نصًا بترميز UTF-8 (في إكسل: حفظ باسم، CSV UTF-8).",
        ) from None
    first_line = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(first_line))
    try:
        records: list[list[Any]] = list(reader)
    except csv.Error:
        raise not_a_batch("It is not valid CSV.", "الملف ليس CSV صالحًا.") from None
    return _sheet("csv", records, max_rows)


def read_xlsx(content: bytes, max_rows: int) -> Sheet:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception:  # noqa: BLE001 — any unreadable workbook is the same refusal
        raise not_a_batch("The workbook cannot be read.", "تعذّرت قراءة المصنف.") from None
    try:
        sheet = workbook.worksheets[0]
        records: list[list[Any]] = []
        for values in sheet.iter_rows(values_only=True):
            records.append(list(values))
            if len(records) > max_rows + 1 and not any(v is not None for v in values):
                break
    finally:
        workbook.close()
    # Trailing empty rows of a sheet are not requests.
    while records and not any(v is not None and str(v).strip() for v in records[-1]):
        records.pop()
    return _sheet("xlsx", records, max_rows)


def read_batch(content: bytes, max_rows: int) -> Sheet:
    if not content.strip():
        raise not_a_batch("It is empty.", "الملف فارغ.")
    if is_xlsx(content):
        return read_xlsx(content, max_rows)
    if content.startswith(b"PK\x03\x04"):
        raise not_a_batch(
            "It is an archive but not an XLSX workbook.", "الملف أرشيف وليس مصنف XLSX."
        )
    return read_csv(content, max_rows)


RESULT_COLUMNS = (
    "row",
    "outcome",
    "case_ref",
    "access_code",
    "complete",
    "missing",
    "error",
    "reason_en",
    "reason_ar",
)


def write_result(kind: Kind, results: list[dict[str, Any]]) -> bytes:
    """The per-row result file: CSV in UTF-8 with a BOM (Excel then shows Arabic
    right) and CRLF, or XLSX when the batch was XLSX."""
    lines = [[_text(r.get(c)) for c in RESULT_COLUMNS] for r in results]
    if kind == "xlsx":
        from openpyxl import Workbook

        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet("results")
        sheet.append(list(RESULT_COLUMNS))
        for line, result in zip(lines, results, strict=True):
            sheet.append([result["row"], *line[1:]])
        out = io.BytesIO()
        workbook.save(out)
        return out.getvalue()
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(RESULT_COLUMNS)
    writer.writerows(lines)
    return buffer.getvalue().encode("utf-8-sig")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)
