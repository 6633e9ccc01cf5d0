"""The report's figures as CSV files (one per table) and one JSON file: the same numbers as the HTML."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from audit.figures import BACKLOG_BUCKETS, BACKLOG_STAGES, FUNNEL_STAGES, Figures
from audit.report.exceptions import ExceptionList
from shared.dates import both_calendars

CSV_FILES = (
    "requests_by_channel",
    "requests_by_service",
    "funnel",
    "verification_outcomes",
    "rates",
    "time_to_decision",
    "slowest_cases",
    "backlog",
    "satisfaction_by_service",
    "satisfaction_by_channel",
    "erasures",
    "exceptions",
)


def csv_tables(figures: Figures) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """Each CSV file's header and rows: the same numbers as the HTML."""
    data = figures.to_dict()
    tables: dict[str, tuple[list[str], list[list[Any]]]] = {}
    tables["requests_by_channel"] = (
        ["association_id", "channel", "requests"],
        [[a, c, n] for a, counts in figures.requests_by_channel.items() for c, n in counts.items()],
    )
    tables["requests_by_service"] = (
        ["association_id", "service_code", "requests"],
        [[a, s, n] for a, counts in figures.requests_by_service.items() for s, n in counts.items()],
    )
    tables["policy_versions"] = (
        ["association_id", "version", "takes_effect", "approved_on_hijri", "meeting", "cases"],
        [
            [
                row["association_id"],
                row["version"],
                row["takes_effect"] or "",
                row["approved_on_hijri"] or "",
                row["meeting"] or "",
                row["cases"],
            ]
            for row in figures.policy_versions
        ],
    )
    tables["funnel"] = (["stage", "cases"], [[s, figures.funnel.get(s, 0)] for s in FUNNEL_STAGES])
    tables["verification_outcomes"] = (
        ["outcome", "cases"],
        [[o, n] for o, n in figures.verification_outcomes.items()],
    )
    tables["rates"] = (
        ["measure", "numerator", "denominator", "rate"],
        [
            ["referral_rate", figures.referred, figures.requests_total, data["referral"]["rate"]],
            ["approval_rate", figures.approved, figures.decisions, data["approval"]["rate"]],
            [
                "share_within_window",
                figures.within_window,
                figures.decisions,
                data["time_to_decision"]["share_within_window"],
            ],
        ],
    )
    tables["time_to_decision"] = (
        ["days_from", "days_to", "decisions"],
        [[d, d + 1, n] for d, n in figures.days_to_decision_histogram.items()],
    )
    tables["slowest_cases"] = (
        [
            "case_id",
            "case_ref",
            "association_id",
            "days",
            "window_days",
            "within_window",
            "decided_on",
        ],
        [
            [
                s["case_id"],
                s["case_ref"],
                s["association_id"],
                s["days"],
                s["window_days"],
                s["within_window"],
                s["decided_on"],
            ]
            for s in data["time_to_decision"]["slowest"]
        ],
    )
    tables["backlog"] = (
        ["age_days", *BACKLOG_STAGES, "total"],
        [
            [
                label,
                *(figures.backlog[label][s] for s in BACKLOG_STAGES),
                sum(figures.backlog[label].values()),
            ]
            for label, _ in BACKLOG_BUCKETS
        ],
    )
    tables["erasures"] = (
        ["association_id", "erasures"],
        [[a, n] for a, n in (figures.erasures_by_association or {}).items()],
    )
    for key in ("by_service", "by_channel"):
        tables[f"satisfaction_{key}"] = (
            [
                "period",
                "association_id",
                "service_code" if key == "by_service" else "channel",
                "answers",
                "mean",
                "suppressed",
            ],
            [
                [
                    g["bucket"],
                    g["association_id"],
                    g["key"],
                    "" if g["suppressed"] else g["answers"],
                    "" if g["suppressed"] else g["mean"],
                    "yes" if g["suppressed"] else "no",
                ]
                for g in data["satisfaction"][key]
            ],
        )
    return tables


EXCEPTION_COLUMNS = [
    "check",
    "case_id",
    "case_ref",
    "association_id",
    "message_ar",
    "message_en",
    "event_ids",
    "proven_at",
]


def _proven_at(e: Any) -> str | None:
    proven_at = getattr(e, "proven_at", None)
    return proven_at.isoformat() if proven_at else None


def exception_row(e: Any) -> list[Any]:
    return [
        e.check,
        str(e.case_id),
        e.case_ref,
        e.association_id,
        e.message.get("ar", ""),
        e.message.get("en", ""),
        " ".join(str(i) for i in e.event_ids),
        _proven_at(e) or "",
    ]


def report_json(figures: Figures, exceptions: ExceptionList | None, *, lang: str) -> dict[str, Any]:
    data = figures.to_dict()
    data["period"].update(
        {
            "from_calendars": both_calendars(figures.period.start),
            "to_calendars": both_calendars(figures.period.end),
        }
    )
    data["as_of_calendars"] = both_calendars(figures.as_of or figures.period.last_moment)
    data["lang"] = lang
    data["exceptions_total"] = None if exceptions is None else exceptions.total
    data["exceptions_by_check"] = None if exceptions is None else exceptions.by_check
    data["checks_not_run"] = None if exceptions is None else list(exceptions.not_run)
    data["exceptions"] = (
        None
        if exceptions is None
        else [
            {
                "check": e.check,
                "case_id": str(e.case_id),
                "case_ref": e.case_ref,
                "association_id": e.association_id,
                "message": dict(e.message),
                "event_ids": [str(i) for i in e.event_ids],
                "proven_at": _proven_at(e),
            }
            for e in exceptions.listed
        ]
    )
    return data


def write_csv(path: Path, header: list[str], rows: Iterable[list[Any]]) -> Path:
    # The BOM (utf-8-sig): spreadsheets then read the Arabic right.
    with path.open("w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_exceptions_csv(
    path: Path, exceptions: Iterable[Any] | None, max_listed: int
) -> ExceptionList | None:
    """Writes every exception to the CSV and returns them as the HTML and JSON list them.

    The exceptions are read once: every one goes to the CSV as it comes, the first
    `max_listed` are kept for the HTML and the JSON, all are counted. None when the
    checks were not run (the CSV then has its header only).
    """
    with path.open("w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.writer(handle)
        writer.writerow(EXCEPTION_COLUMNS)
        if exceptions is None:
            return None
        if isinstance(exceptions, ExceptionList):
            writer.writerows(exception_row(e) for e in exceptions.listed)
            return exceptions
        return ExceptionList.collect(
            exceptions, limit=max_listed, sink=lambda e: writer.writerow(exception_row(e))
        )
