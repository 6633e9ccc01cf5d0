"""The board report: one self-contained HTML file, CSV files and a JSON file of the same figures.

    python -m audit report --from 2026-10-01 --to 2026-11-30 [--lang ar|en] [--out DIR] [--as-of MOMENT | --hijri DAY]

Arabic (right to left) by default, English with `--lang en`; printable; every
date in the Hijri and the Gregorian calendars; charts are inline SVG, and the
file refers to no external resource, so it opens without a network. The figures
come from the integration events of the KHIDMA stream (`audit.figures`), the
compliance exceptions from `audit.compliance.run_checks` over each case's
timeline from the services' stores and the stream together (the stream alone
when no store can be read: the report then names the checks it could not run),
against the policy packs. The timelines of the listed exceptions' cases are
embedded in the HTML (`#case-<id>`), so the evidence reads offline.

The report stands at one moment, stated in both calendars: the end of the
period, or `--as-of` when that is earlier (default: the clock, so a report of a
period not yet over counts the backlog's ages now). Events after the moment are
not read, neither for the figures nor for the checks, whose clock (a referral's
age, the grace of a survey invitation) is that moment too: the same command
with the same `--as-of` writes the same report later, whatever was recorded
since. An exception belongs to the period when what proves it happened in the
period (`ComplianceException.proven_at`: a late decision taken in it, whatever
the date its request was received), the rule the figures of the period's
activity follow.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

from audit import charts
from audit.compliance import DEFAULT_GRACE
from audit.figures import (
    BACKLOG_BUCKETS,
    BACKLOG_STAGES,
    FUNNEL_STAGES,
    MIN_GROUP,
    Figures,
    Period,
    SatisfactionGroup,
    compute_figures,
)
from audit.replay import StreamUnavailable
from shared.dates import RIYADH, both_calendars, from_hijri
from shared.events import IntegrationEvent

# --- words -----------------------------------------------------------------------

TEXT: dict[str, dict[str, str]] = {
    "title": {
        "ar": "تقرير مجلس الإدارة: تطبيق سياسة خدمة المستفيدين",
        "en": "Board report: how the service policy was applied",
    },
    "period": {"ar": "الفترة", "en": "Period"},
    "from": {"ar": "من", "en": "From"},
    "to": {"ar": "إلى", "en": "To"},
    "generated": {"ar": "أُعدّ في", "en": "Generated"},
    "as_of": {"ar": "التقرير كما كان السجل في", "en": "As the records stood on"},
    "as_of_early": {
        "ar": "لم تكن الفترة قد انتهت في هذه اللحظة: لا يُحتسب ما سُجّل بعدها.",
        "en": "The period had not ended at this moment: nothing recorded after it is counted.",
    },
    "associations": {"ar": "الجمعيات", "en": "Associations"},
    "approved_by": {"ar": "اعتمد السياسة", "en": "Policy approved by"},
    "meeting": {"ar": "اجتماع", "en": "meeting"},
    "summary": {"ar": "الخلاصة", "en": "Summary"},
    "requests": {"ar": "الطلبات", "en": "Requests"},
    "requests_total": {"ar": "الطلبات المستلمة في الفترة", "en": "Requests received in the period"},
    "by_channel": {"ar": "الطلبات حسب قناة الاستقبال", "en": "Requests by channel"},
    "by_service": {"ar": "الطلبات حسب الخدمة", "en": "Requests by service"},
    "association": {"ar": "الجمعية", "en": "Association"},
    "channel": {"ar": "القناة", "en": "Channel"},
    "service": {"ar": "الخدمة", "en": "Service"},
    "count": {"ar": "العدد", "en": "Count"},
    "total": {"ar": "المجموع", "en": "Total"},
    "funnel": {
        "ar": "مسار الطلبات من الاستلام إلى التقييم",
        "en": "The funnel from received to surveyed",
    },
    "cohort_note": {
        "ar": "الطلبات المستلمة في الفترة كما كانت في لحظة التقرير.",
        "en": "Requests received in the period, as they stood at the report's moment.",
    },
    "activity_note": {
        "ar": "ما جرى خلال الفترة أيًّا كان تاريخ استلام الطلب.",
        "en": "What happened during the period, whatever the date the request was received.",
    },
    "stage": {"ar": "المرحلة", "en": "Stage"},
    "share": {"ar": "النسبة من المستلم", "en": "Share of received"},
    "outcomes": {"ar": "نتائج التحقق من البيانات", "en": "Verification outcomes"},
    "outcome": {"ar": "النتيجة", "en": "Outcome"},
    "rates": {"ar": "نسب الإحالة والقبول", "en": "Referral and approval rates"},
    "metric": {"ar": "المؤشر", "en": "Measure"},
    "numerator": {"ar": "البسط", "en": "Of which"},
    "denominator": {"ar": "المقام", "en": "Out of"},
    "rate": {"ar": "النسبة", "en": "Rate"},
    "referral_rate": {
        "ar": "نسبة الإحالة إلى الباحث الاجتماعي",
        "en": "Referral rate to the social researcher",
    },
    "approval_rate": {
        "ar": "نسبة القبول من قرارات اللجنة",
        "en": "Approval rate of the committee's decisions",
    },
    "window_share": {
        "ar": "نسبة القرارات ضمن المهلة",
        "en": "Share of decisions within the window",
    },
    "ttd": {"ar": "مدة البت في الطلب مقارنة بالمهلة", "en": "Time to decision against the window"},
    "decisions": {"ar": "قرارات اللجنة في الفترة", "en": "Committee decisions in the period"},
    "within": {"ar": "ضمن المهلة", "en": "Within the window"},
    "median_days": {"ar": "الوسيط (أيام)", "en": "Median (days)"},
    "days_hist": {"ar": "توزيع المدة بالأيام", "en": "Days to decision"},
    "days": {"ar": "أيام", "en": "days"},
    "slowest": {"ar": "أبطأ الطلبات", "en": "The slowest cases"},
    "case": {"ar": "الطلب", "en": "Case"},
    "duration": {"ar": "المدة (أيام)", "en": "Duration (days)"},
    "window": {"ar": "المهلة (أيام)", "en": "Window (days)"},
    "decided_on": {"ar": "تاريخ القرار", "en": "Decided on"},
    "yes": {"ar": "نعم", "en": "yes"},
    "no": {"ar": "لا", "en": "no"},
    "timeline": {"ar": "السجل الزمني", "en": "timeline"},
    "backlog": {
        "ar": "الطلبات المفتوحة حسب العمر في لحظة التقرير",
        "en": "Open backlog by age at the report's moment",
    },
    "age": {"ar": "العمر (أيام)", "en": "Age (days)"},
    "awaiting_verification": {"ar": "بانتظار التحقق", "en": "Awaiting verification"},
    "awaiting_decision": {"ar": "بانتظار قرار اللجنة", "en": "Awaiting the decision"},
    "awaiting_delivery": {"ar": "بانتظار تقديم الخدمة", "en": "Awaiting delivery"},
    "satisfaction": {"ar": "اتجاه رضا المستفيدين", "en": "Satisfaction trend"},
    "sat_by_service": {"ar": "الرضا حسب الخدمة", "en": "Satisfaction by service"},
    "sat_by_channel": {"ar": "الرضا حسب القناة", "en": "Satisfaction by channel"},
    "sat_note": {
        "ar": f"متوسط الرضا من ١ إلى ٥. تُحجب كل مجموعة تقل إجاباتها عن {MIN_GROUP} حفاظًا على خصوصية المجيبين، وكذلك كل مجموعة يمكن أن يُستنتج منها ما حُجب. نتائج التقييم للتحسين، ولا تُستخدم لمحاسبة أي موظف أو التشهير به.",
        "en": f"Mean satisfaction from 1 to 5. A group with fewer than {MIN_GROUP} answers is suppressed to protect those who answered, and so is any group from which a suppressed one could be worked out. The results are for improvement, never for blaming or shaming any member of staff.",
    },
    "bucket": {"ar": "الفترة الفرعية", "en": "Period"},
    "answers": {"ar": "عدد الإجابات", "en": "Answers"},
    "mean": {"ar": "متوسط الرضا", "en": "Mean satisfaction"},
    "suppressed": {"ar": "محجوب (أقل من ٥ إجابات)", "en": "suppressed (fewer than 5 answers)"},
    "exceptions": {"ar": "الاستثناءات من السياسة", "en": "Compliance exceptions"},
    "no_exceptions": {"ar": "لم يُرصد أي استثناء.", "en": "No exception was found."},
    "exceptions_rule": {
        "ar": "يُنسب الاستثناء إلى الفترة إذا وقع فيها ما يثبته، أيًّا كان تاريخ استلام الطلب: قرار متأخر صدر "
        "في الفترة مثلًا، أو مهلة انقضت فيها؛ وهي القاعدة نفسها التي تُحسب بها قرارات الفترة. "
        "ويُقرأ السجل كما كان في لحظة التقرير.",
        "en": "An exception belongs to the period when what proves it happened in the period, whatever the date "
        "the request was received: a late decision taken in the period, for example, or a window that ran "
        "out in it; the same rule as the period's decisions. The records are read as they stood at the "
        "report's moment.",
    },
    "proven_at": {"ar": "ثبت في", "en": "Proven on"},
    "exceptions_missing": {
        "ar": "لم يُجرَ فحص الالتزام لهذا التقرير.",
        "en": "The compliance checks were not run for this report.",
    },
    "checks_not_run": {
        "ar": "لم تُجرَ هذه الفحوص لأن ما تحتاجه لم يُقرأ، فلا يعني غيابها من القائمة أنه لا استثناء فيها:",
        "en": "These checks were not run, because what they need was not read; their absence from the list does not mean there is no exception:",
    },
    "needs_store": {"ar": "يحتاج مخزن خدمة {service}", "en": "needs the {service} service's store"},
    "needs_packs": {"ar": "يحتاج حزم السياسات", "en": "needs the policy packs"},
    "case_timeline": {"ar": "السجل الزمني للطلب", "en": "The case's timeline"},
    "events": {"ar": "أحداث", "en": "events"},
    "when": {"ar": "التاريخ", "en": "When"},
    "event": {"ar": "الحدث", "en": "Event"},
    "by_whom": {"ar": "من", "en": "By"},
    "source": {"ar": "المصدر", "en": "Source"},
    "revision": {"ar": "النسخة", "en": "revision"},
    "open_in_api": {"ar": "في واجهة التدقيق", "en": "in the audit API"},
    "check": {"ar": "الفحص", "en": "Check"},
    "finding": {"ar": "الملاحظة", "en": "Finding"},
    "evidence": {"ar": "الأحداث المثبتة", "en": "Events that prove it"},
    "evidence_title": {"ar": "أدلة الاستثناءات", "en": "Evidence of the exceptions"},
    "listed_first": {
        "ar": "تُعرض هنا أول {shown} استثناءات من {total}؛ القائمة الكاملة في ملف exceptions CSV.",
        "en": "The first {shown} of {total} exceptions are listed here; the exceptions CSV file has them all.",
    },
    "events_read": {"ar": "الأحداث المقروءة من السجل", "en": "Events read from the stream"},
    "source_note": {
        "ar": "كل الأرقام محسوبة من أحداث التكامل في سجل KHIDMA وحدها.",
        "en": "Every figure is computed from the integration events of the KHIDMA stream alone.",
    },
    "none": {"ar": "لا يوجد", "en": "none"},
}

OUTCOME_NAMES = {
    "verified": {"ar": "بيانات مطابقة", "en": "verified"},
    "discrepancies": {"ar": "فروقات في البيانات", "en": "discrepancies"},
    "ineligible": {"ar": "غير مستحق", "en": "ineligible"},
}
STAGE_NAMES = {
    "received": {"ar": "مستلم", "en": "received"},
    "verified": {"ar": "تم التحقق", "en": "verified"},
    "decided": {"ar": "صدر القرار", "en": "decided"},
    "approved": {"ar": "مقبول", "en": "approved"},
    "delivered": {"ar": "قُدمت الخدمة", "en": "delivered"},
    "surveyed": {"ar": "قُيّمت الخدمة", "en": "surveyed"},
}
CHANNEL_NAMES = {
    "interview": {"ar": "المقابلة الشخصية", "en": "interview"},
    "phone": {"ar": "الاتصال الهاتفي", "en": "phone call"},
    "social_media": {"ar": "وسائل التواصل الاجتماعي", "en": "social media"},
    "letter": {"ar": "الخطابات", "en": "letters"},
    "help_request": {"ar": "خدمة طلب المساعدة", "en": "help-request service"},
    "volunteering": {"ar": "خدمة التطوع", "en": "volunteering service"},
    "website": {"ar": "موقع الجمعية", "en": "the association's website"},
    "branch_office": {"ar": "مندوبو الفروع", "en": "branch-office representatives"},
}
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
    "exceptions",
)


def t(key: str, lang: str) -> str:
    return TEXT[key][lang]


# --- the compliance exceptions -------------------------------------------------------

MAX_LISTED = 1000  # exceptions shown one by one in the HTML and the JSON; all go to the CSV


@dataclass
class ExceptionList:
    """The exceptions of a report: the first `MAX_LISTED` in full, every one counted by check."""

    listed: list[Any]
    total: int
    by_check: dict[str, int]
    #: the checks that could not run (a store or the packs missing), by code
    not_run: list[str] = field(default_factory=list)
    #: case id -> the case's timeline rows, embedded so the file works offline
    timelines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def collect(
        cls, exceptions: Iterable[Any], *, limit: int = MAX_LISTED, sink: Any = None
    ) -> ExceptionList:
        """Reads the exceptions once; `sink(exception)` sees every one (the CSV writer)."""
        listed: list[Any] = []
        counts: dict[str, int] = {}
        total = 0
        for exception in exceptions:
            total += 1
            counts[exception.check] = counts.get(exception.check, 0) + 1
            if len(listed) < limit:
                listed.append(exception)
            if sink is not None:
                sink(exception)
        return cls(listed, total, dict(sorted(counts.items())))

    def __len__(self) -> int:
        return self.total


def _as_list(exceptions: Any) -> ExceptionList | None:
    if exceptions is None or isinstance(exceptions, ExceptionList):
        return exceptions
    return ExceptionList.collect(exceptions)


class EvidenceTimelines:
    """The timelines of the cases of the first `limit` exceptions, kept for the HTML.

    Only what a reader of the evidence needs (when, what, who, from where, the
    event id), never the payload: the board report carries no applicant data.
    """

    def __init__(self, limit: int = MAX_LISTED):
        self.limit = limit
        self.exceptions = 0
        self.cases: dict[str, list[dict[str, Any]]] = {}

    def keep(self, timeline: Any, exceptions: int) -> None:
        """Called for each case with its count of exceptions, in the order they are yielded."""
        if exceptions and self.exceptions < self.limit:
            self.cases[str(timeline.case_id)] = [_timeline_row(entry) for entry in timeline.entries]
        self.exceptions += exceptions


def _timeline_row(entry: Any) -> dict[str, Any]:
    revision = None
    if entry.event_type in ("RequestReceived", "DataVerified"):
        revision = entry.data.get("revision") or 1
    return {
        "at": entry.occurred_at.isoformat(),
        "event_type": entry.event_type,
        "service": entry.service,
        "source": entry.source,
        "actor": entry.actor,
        "channel": entry.channel,
        "event_id": entry.event_id,
        "revision": revision,
    }


def _check_title(code: str, lang: str) -> str:
    from audit.compliance import REGISTRY

    check = REGISTRY.get(code)
    return check.title.get(lang, code) if check else code


# --- names from the packs ----------------------------------------------------------


@dataclass
class Names:
    packs: Mapping[str, Any]
    lang: str
    several: bool = False  # the report covers several associations

    def association(self, association_id: str) -> str:
        pack = self.packs.get(association_id)
        return getattr(pack.name, self.lang) if pack else association_id

    def service(self, association_id: str, code: str) -> str:
        pack = self.packs.get(association_id)
        service = pack.service(code) if pack else None
        return getattr(service.name, self.lang) if service else code

    def channel(self, code: str) -> str:
        return CHANNEL_NAMES.get(code, {}).get(self.lang, code)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"


def _cell(key: str, value: Any, text: str | None = None) -> str:
    """A table cell that carries its figure's key and raw value for checking."""
    raw = "" if value is None else str(value)
    return f'<td data-key="{escape(key)}" data-value="{escape(raw)}">{escape(text if text is not None else _num(value))}</td>'


def _table(headers: Sequence[str], rows: Iterable[str], cls: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(f"<tr>{row}</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _date_text(day: date | datetime, lang: str) -> str:
    both = both_calendars(day)
    return both[lang]


# --- the HTML ---------------------------------------------------------------------

CSS = """
:root { --ink:#1d2a2f; --muted:#5f6b70; --line:#d5dcdf; --accent:#1b6e5a; --warn:#a33b3b; }
* { box-sizing: border-box; }
body { font-family: 'Noto Naskh Arabic','Segoe UI',Tahoma,Arial,sans-serif; color: var(--ink);
       margin: 0 auto; max-width: 1100px; padding: 24px; line-height: 1.5; }
h1 { color: var(--accent); font-size: 1.6em; margin-bottom: 4px; }
h2 { border-bottom: 2px solid var(--accent); padding-bottom: 4px; margin-top: 32px; font-size: 1.25em; }
h3 { font-size: 1.05em; margin-bottom: 4px; }
.muted, .note { color: var(--muted); font-size: .9em; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 16px; font-size: .92em; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: start; vertical-align: top; }
th { background: #eef3f1; }
td[data-value] { font-variant-numeric: tabular-nums; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; min-width: 160px; flex: 1; }
.card .value { font-size: 1.5em; font-weight: bold; color: var(--accent); }
.suppressed { color: var(--muted); font-style: italic; }
.exception td:first-child { color: var(--warn); font-weight: bold; }
.ids { font-family: ui-monospace, Consolas, monospace; font-size: .85em; direction: ltr; unicode-bidi: embed; }
svg.chart { max-width: 100%; height: auto; display: block; margin: 8px 0; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
nav.toc a { margin-inline-end: 12px; }
details.timeline { margin: 4px 0 16px; }
details.timeline summary { cursor: pointer; color: var(--accent); }
.not-run { border-inline-start: 4px solid var(--warn); padding: 4px 12px; margin: 8px 0; }
@media (max-width: 800px) { .grid { grid-template-columns: 1fr; } }
@media print {
  body { max-width: none; padding: 0; font-size: 10.5pt; }
  nav.toc { display: none; }
  h2 { break-after: avoid; page-break-after: avoid; }
  table, svg.chart, .card { break-inside: avoid; page-break-inside: avoid; }
  section { break-before: auto; }
  a { color: inherit; text-decoration: none; }
  @page { size: A4; margin: 14mm; }
}
"""


def render_html(
    figures: Figures,
    exceptions: Sequence[Any] | None,
    *,
    lang: str = "ar",
    packs: Mapping[str, Any] | None = None,
    api_base: str = "",
    generated_at: datetime | None = None,
) -> str:
    if lang not in ("ar", "en"):
        raise ValueError("lang is 'ar' or 'en'")
    names = Names(packs or {}, lang, several=len(figures.associations) > 1)
    found = _as_list(exceptions)
    embedded = found.timelines if found is not None else {}
    rtl = lang == "ar"
    generated_at = generated_at or datetime.now(UTC)
    period = figures.period
    parts: list[str] = []
    add = parts.append

    add(f"<header><h1>{escape(t('title', lang))}</h1>")
    add(
        f"<p><strong>{escape(t('period', lang))}:</strong> {escape(t('from', lang))} "
        f'<span data-key="period.from" data-value="{period.start.isoformat()}">{escape(_date_text(period.start, lang))}</span> '
        f'{escape(t("to", lang))} <span data-key="period.to" data-value="{period.end.isoformat()}">{escape(_date_text(period.end, lang))}</span></p>'
    )
    moment = figures.as_of or period.last_moment
    add(
        f"<p><strong>{escape(t('as_of', lang))}:</strong> "
        f'<span data-key="as_of" data-value="{moment.isoformat()}">{escape(_date_text(moment, lang))} '
        f'<span class="ids">{moment.astimezone(RIYADH):%H:%M} (+03)</span></span>'
        + (
            f' <span class="note">{escape(t("as_of_early", lang))}</span>'
            if moment < period.last_moment
            else ""
        )
        + "</p>"
    )
    add(
        f'<p class="muted">{escape(t("generated", lang))}: {escape(_date_text(generated_at, lang))} '
        f"({generated_at.astimezone(UTC):%H:%M} UTC) · {escape(t('events_read', lang))}: "
        f'<span data-key="events_read" data-value="{figures.events_read}">{figures.events_read:,}</span> · '
        f"{escape(t('source_note', lang))}</p>"
    )
    if figures.associations:
        add(f"<h3>{escape(t('associations', lang))}</h3><ul>")
        for association in figures.associations:
            approval = _approval_text(names.packs.get(association), lang)
            add(f"<li>{escape(names.association(association))}{escape(approval)}</li>")
        add("</ul>")
    add("</header>")

    sections = [
        ("summary", t("summary", lang)),
        ("requests", t("requests", lang)),
        ("funnel", t("funnel", lang)),
        ("rates", t("rates", lang)),
        ("ttd", t("ttd", lang)),
        ("backlog", t("backlog", lang)),
        ("satisfaction", t("satisfaction", lang)),
        ("exceptions", t("exceptions", lang)),
    ]
    add(
        '<nav class="toc">'
        + "".join(f'<a href="#{key}">{escape(title)}</a>' for key, title in sections)
        + "</nav>"
    )

    # Summary cards
    exception_count = found.total if found is not None else None
    cards = [
        ("requests_total", "requests.total", figures.requests_total, _num(figures.requests_total)),
        ("referral_rate", "referral.rate", figures.referral_rate, _pct(figures.referral_rate)),
        ("approval_rate", "approval.rate", figures.approval_rate, _pct(figures.approval_rate)),
        (
            "window_share",
            "time_to_decision.share_within_window",
            figures.share_within_window,
            _pct(figures.share_within_window),
        ),
        ("backlog", "backlog.total", figures.backlog_total, _num(figures.backlog_total)),
        ("exceptions", "exceptions.count", exception_count, _num(exception_count)),
    ]
    add(f'<section id="summary"><h2>{escape(t("summary", lang))}</h2><div class="cards">')
    for label, key, value, text in cards:
        raw = "" if value is None else (f"{value:.4f}" if isinstance(value, float) else str(value))
        add(
            f'<div class="card"><div class="muted">{escape(t(label, lang))}</div>'
            f'<div class="value" data-key="{key}" data-value="{raw}">{escape(text)}</div></div>'
        )
    add("</div></section>")

    # Requests
    add(
        f'<section id="requests"><h2>{escape(t("requests", lang))}</h2><p class="note">{escape(t("cohort_note", lang))}</p>'
    )
    add(f"<h3>{escape(t('by_channel', lang))}</h3>")
    rows, bars = [], []
    for association, counts in figures.requests_by_channel.items():
        for channel, count in counts.items():
            rows.append(
                f"<td>{escape(names.association(association))}</td><td>{escape(names.channel(channel))}</td>"
                + _cell(f"requests.by_channel.{association}.{channel}", count)
            )
            bars.append((_short(names, association, names.channel(channel)), count))
    add(charts.bar_chart(bars, title=t("by_channel", lang), rtl=rtl))
    add(_table([t("association", lang), t("channel", lang), t("count", lang)], rows))
    add(f"<h3>{escape(t('by_service', lang))}</h3>")
    rows, bars = [], []
    for association, counts in figures.requests_by_service.items():
        for service, count in counts.items():
            rows.append(
                f"<td>{escape(names.association(association))}</td><td>{escape(names.service(association, service))}</td>"
                + _cell(f"requests.by_service.{association}.{service}", count)
            )
            bars.append((_short(names, association, names.service(association, service)), count))
    add(charts.bar_chart(bars, title=t("by_service", lang), rtl=rtl, color=charts.PALETTE[2]))
    add(_table([t("association", lang), t("service", lang), t("count", lang)], rows))
    add("</section>")

    # Funnel and verification outcomes
    add(
        f'<section id="funnel"><h2>{escape(t("funnel", lang))}</h2><p class="note">{escape(t("cohort_note", lang))}</p>'
    )
    stages = [(STAGE_NAMES[s][lang], figures.funnel.get(s, 0)) for s in FUNNEL_STAGES]
    add(charts.funnel_chart(stages, title=t("funnel", lang), rtl=rtl))
    received = figures.funnel.get("received", 0)
    add(
        _table(
            [t("stage", lang), t("count", lang), t("share", lang)],
            [
                f"<td>{escape(STAGE_NAMES[s][lang])}</td>"
                + _cell(f"funnel.{s}", figures.funnel.get(s, 0))
                + f"<td>{_pct(figures.funnel.get(s, 0) / received if received else None)}</td>"
                for s in FUNNEL_STAGES
            ],
        )
    )
    add(f"<h3>{escape(t('outcomes', lang))}</h3>")
    outcome_items = [
        (OUTCOME_NAMES.get(o, {}).get(lang, o), n) for o, n in figures.verification_outcomes.items()
    ]
    add(
        charts.bar_chart(outcome_items, title=t("outcomes", lang), rtl=rtl, color=charts.PALETTE[1])
    )
    add(
        _table(
            [t("outcome", lang), t("count", lang)],
            [
                f"<td>{escape(OUTCOME_NAMES.get(o, {}).get(lang, o))}</td>"
                + _cell(f"verification_outcomes.{o}", n)
                for o, n in figures.verification_outcomes.items()
            ],
        )
    )
    add("</section>")

    # Rates
    add(f'<section id="rates"><h2>{escape(t("rates", lang))}</h2>')
    add(
        _table(
            [t("metric", lang), t("numerator", lang), t("denominator", lang), t("rate", lang)],
            [
                f"<td>{escape(t('referral_rate', lang))}</td>"
                + _cell("referral.referred", figures.referred)
                + _cell("referral.received", figures.requests_total)
                + _cell(
                    "referral.rate", _round4(figures.referral_rate), _pct(figures.referral_rate)
                ),
                f"<td>{escape(t('approval_rate', lang))}</td>"
                + _cell("approval.approved", figures.approved)
                + _cell("approval.decisions", figures.decisions)
                + _cell(
                    "approval.rate", _round4(figures.approval_rate), _pct(figures.approval_rate)
                ),
            ],
        )
    )
    add(
        f'<p class="note">{escape(t("referral_rate", lang))}: {escape(t("cohort_note", lang))} '
        f"{escape(t('approval_rate', lang))}: {escape(t('activity_note', lang))}</p></section>"
    )

    # Time to decision
    add(
        f'<section id="ttd"><h2>{escape(t("ttd", lang))}</h2><p class="note">{escape(t("activity_note", lang))}</p>'
    )
    add(
        _table(
            [
                t("decisions", lang),
                t("within", lang),
                t("window_share", lang),
                t("median_days", lang),
            ],
            [
                "".join(
                    [
                        _cell("time_to_decision.decisions", figures.decisions),
                        _cell("time_to_decision.within_window", figures.within_window),
                        _cell(
                            "time_to_decision.share_within_window",
                            _round4(figures.share_within_window),
                            _pct(figures.share_within_window),
                        ),
                        _cell("time_to_decision.median_days", figures.median_days_to_decision),
                    ]
                )
            ],
        )
    )
    histogram = [
        (f"{days}–{days + 1} {t('days', lang)}", n)
        for days, n in figures.days_to_decision_histogram.items()
    ]
    add(charts.bar_chart(histogram, title=t("days_hist", lang), rtl=rtl, color=charts.PALETTE[3]))
    add(f"<h3>{escape(t('slowest', lang))}</h3>")
    rows = []
    for slow in figures.slowest:
        rows.append(
            f"<td>{_case_links(slow.case_id, slow.case_ref, api_base, lang, embedded=slow.case_id in embedded)}</td>"
            f"<td>{escape(names.association(slow.association_id))}</td>"
            + _cell(f"time_to_decision.slowest.{slow.case_ref}.days", round(slow.days, 2))
            + _cell(f"time_to_decision.slowest.{slow.case_ref}.window_days", slow.window_days)
            + f"<td>{escape(t('yes' if slow.within_window else 'no', lang))}</td>"
            f"<td>{escape(_date_text(date.fromisoformat(slow.decided_on), lang))}</td>"
        )
    add(
        _table(
            [
                t("case", lang),
                t("association", lang),
                t("duration", lang),
                t("window", lang),
                t("within", lang),
                t("decided_on", lang),
            ],
            rows,
        )
        if rows
        else f"<p>{escape(t('none', lang))}</p>"
    )
    add("</section>")

    # Backlog
    add(f'<section id="backlog"><h2>{escape(t("backlog", lang))}</h2>')
    add(
        f'<p>{escape(t("total", lang))}: <strong data-key="backlog.total" data-value="{figures.backlog_total}">{figures.backlog_total:,}</strong></p>'
    )
    bucket_totals = [
        (f"{label} {t('days', lang)}", sum(figures.backlog.get(label, {}).values()))
        for label, _ in BACKLOG_BUCKETS
    ]
    add(charts.bar_chart(bucket_totals, title=t("backlog", lang), rtl=rtl, color=charts.PALETTE[4]))
    rows = []
    for label, _ in BACKLOG_BUCKETS:
        counts = figures.backlog.get(label, {})
        rows.append(
            f"<td>{escape(label)}</td>"
            + "".join(
                _cell(f"backlog.by_age.{label}.{stage}", counts.get(stage, 0))
                for stage in BACKLOG_STAGES
            )
            + _cell(f"backlog.by_age.{label}.total", sum(counts.values()))
        )
    add(
        _table(
            [t("age", lang)] + [t(stage, lang) for stage in BACKLOG_STAGES] + [t("total", lang)],
            rows,
        )
    )
    add("</section>")

    # Satisfaction
    add(
        f'<section id="satisfaction"><h2>{escape(t("satisfaction", lang))}</h2><p class="note">{escape(t("sat_note", lang))}</p>'
    )
    for key, groups, label_of in (
        (
            "by_service",
            figures.satisfaction_by_service,
            lambda g: _short(names, g.association_id, names.service(g.association_id, g.key)),
        ),
        (
            "by_channel",
            figures.satisfaction_by_channel,
            lambda g: _short(names, g.association_id, names.channel(g.key)),
        ),
    ):
        title = t("sat_" + key, lang)
        add(f"<h3>{escape(title)}</h3>")
        add(_trend_chart(groups, label_of, title, rtl, lang))
        rows = []
        for group in groups:
            base = f"satisfaction.{key}.{group.bucket}.{group.association_id}.{group.key}"
            if group.suppressed:
                values = (
                    f'<td class="suppressed" data-key="{escape(base)}.answers" data-value="suppressed" colspan="2">'
                    f"{escape(t('suppressed', lang))}</td>"
                )
            else:
                values = _cell(base + ".answers", group.answers) + _cell(
                    base + ".mean", round(group.mean or 0, 2)
                )
            rows.append(
                f"<td>{escape(group.bucket)}</td><td>{escape(label_of(group))}</td>" + values
            )
        add(
            _table(
                [
                    t("bucket", lang),
                    t("service" if key == "by_service" else "channel", lang),
                    t("answers", lang),
                    t("mean", lang),
                ],
                rows,
            )
            if rows
            else f"<p>{escape(t('none', lang))}</p>"
        )
    add("</section>")

    # Compliance exceptions
    add(
        f'<section id="exceptions"><h2>{escape(t("exceptions", lang))}</h2>'
        f'<p class="note">{escape(t("exceptions_rule", lang))}</p>'
    )
    if found is not None and found.not_run:
        add(
            f'<div class="not-run" data-key="exceptions.not_run" data-value="{escape(" ".join(found.not_run))}">'
            f"<p><strong>{escape(t('checks_not_run', lang))}</strong></p><ul>"
            + "".join(f"<li>{escape(_not_run_text(code, lang))}</li>" for code in found.not_run)
            + "</ul></div>"
        )
    if found is None:
        add(f"<p>{escape(t('exceptions_missing', lang))}</p>")
    elif not found.total:
        add(f"<p>{escape(t('no_exceptions', lang))}</p>")
    else:
        add(
            _table(
                [t("check", lang), t("count", lang)],
                [
                    f'<td>{escape(_check_title(code, lang))} <span class="muted ids">{escape(code)}</span></td>'
                    + _cell(f"exceptions.by_check.{code}", count)
                    for code, count in found.by_check.items()
                ],
            )
        )
        if len(found.listed) < found.total:
            add(
                f'<p class="note">{escape(t("listed_first", lang).format(shown=len(found.listed), total=found.total))}</p>'
            )
        rows = []
        for number, exception in enumerate(found.listed, 1):
            message = exception.message.get(lang) or exception.message.get("en", "")
            rows.append(
                f'<td data-key="exceptions.{number}.check" data-value="{escape(exception.check)}">{escape(exception.check)}</td>'
                f"<td>{_case_links(str(exception.case_id), exception.case_ref, api_base, lang, embedded=str(exception.case_id) in embedded)}</td>"
                f"<td>{escape(names.association(exception.association_id))}</td>"
                f"<td>{escape(message)}</td>"
                f"<td>{_proven_text(exception, lang)}</td>"
                f'<td><a href="#evidence-{number}">{len(exception.event_ids)} ↧</a></td>'
            )
        add(
            _table(
                [
                    t("check", lang),
                    t("case", lang),
                    t("association", lang),
                    t("finding", lang),
                    t("proven_at", lang),
                    t("evidence", lang),
                ],
                rows,
                "exception",
            )
        )
        add(f"<h3>{escape(t('evidence_title', lang))}</h3>")
        seen_cases: set[str] = set()
        for number, exception in enumerate(found.listed, 1):
            case_id = str(exception.case_id)
            first_of_case = case_id not in seen_cases
            seen_cases.add(case_id)
            anchor = (
                f' id="case-{escape(case_id)}"' if first_of_case and case_id not in embedded else ""
            )
            if case_id in embedded:
                link = f'<a href="#case-{escape(case_id)}">{escape(t("timeline", lang))}</a>'
                if api_base:
                    link += f' · <a href="{escape(_timeline_url(api_base, case_id))}">{escape(t("open_in_api", lang))}</a>'
            elif api_base:
                link = f'<a href="{escape(_timeline_url(api_base, case_id))}">{escape(t("timeline", lang))}</a>'
            else:
                link = ""
            add(
                f'<div id="evidence-{number}"><p{anchor}><strong>{number}. {escape(exception.case_ref)}</strong> — '
                f'{escape(exception.check)}{" · " + link if link else ""}</p><ul class="ids">'
                + "".join(
                    f'<li id="event-{number}-{escape(str(eid))}">{escape(str(eid))}</li>'
                    for eid in exception.event_ids
                )
                + "</ul>"
                + (
                    _timeline_details(case_id, exception.case_ref, embedded[case_id], lang)
                    if first_of_case and case_id in embedded
                    else ""
                )
                + "</div>"
            )
    add("</section>")

    direction = "rtl" if rtl else "ltr"
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}" dir="{direction}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(t('title', lang))} — {period.start.isoformat()} / {period.end.isoformat()}</title>"
        f"<style>{CSS}</style></head><body>" + "".join(parts) + "</body></html>\n"
    )


def _proven_text(exception: Any, lang: str) -> str:
    proven_at = getattr(exception, "proven_at", None)
    if proven_at is None:
        return "—"
    return escape(_date_text(proven_at, lang))


def _round4(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _short(names: Names, association: str, label: str) -> str:
    """A chart label: the association's name only when the report has several."""
    return f"{association} · {label}" if names.several else label


def _approval_text(pack: Any, lang: str) -> str:
    approval = getattr(pack, "board_approval", None) if pack else None
    if not approval:
        return ""
    meeting = f" {t('meeting', lang)} {approval.meeting}" if approval.meeting else ""
    day = _date_text(approval.gregorian, lang) if approval.gregorian else approval.date_as_written
    return f" — {t('approved_by', lang)}: {getattr(approval.body, lang)}{meeting}, {day}"


def _timeline_url(api_base: str, case_id: str) -> str:
    return f"{api_base.rstrip('/')}/cases/{case_id}/timeline"


def _case_links(
    case_id: str, case_ref: str, api_base: str, lang: str, *, embedded: bool = False
) -> str:
    """The case's reference, linked to its timeline embedded in the file (works offline)
    and, when an audit API base was given, to the API as well."""
    if embedded:
        text = (
            f'<a href="#case-{escape(case_id)}" data-case-id="{escape(case_id)}">'
            f"{escape(case_ref)}</a>"
        )
    elif api_base:
        return (
            f'<a href="{escape(_timeline_url(api_base, case_id))}" data-case-id="{escape(case_id)}">'
            f"{escape(case_ref)}</a>"
        )
    else:
        return f'<span data-case-id="{escape(case_id)}">{escape(case_ref)}</span>'
    if api_base:
        text += (
            f' <a class="api" href="{escape(_timeline_url(api_base, case_id))}" '
            f'title="{escape(t("open_in_api", lang))}">↗</a>'
        )
    return text


def _timeline_details(case_id: str, case_ref: str, rows: list[dict[str, Any]], lang: str) -> str:
    """One case's timeline as a collapsible section, anchored #case-<id>."""
    body = []
    for row in rows:
        actor = row.get("actor") or {}
        what = row["event_type"]
        if row.get("revision"):
            what += f" ({t('revision', lang)} {row['revision']})"
        moment = datetime.fromisoformat(row["at"])
        # The day is Riyadh's (shared.dates): so is the hour shown beside it.
        body.append(
            f"<td>{escape(_date_text(moment, lang))} "
            f'<span class="ids">{moment.astimezone(RIYADH):%H:%M} (+03)</span></td>'
            f"<td>{escape(what)}</td><td>{escape(row['service'])}</td>"
            f"<td>{escape(str(actor.get('kind', '')))}:{escape(str(actor.get('id', '')))}</td>"
            f'<td>{escape(row["source"])}</td><td class="ids">{escape(row.get("event_id") or "")}</td>'
        )
    table = _table(
        [
            t("when", lang),
            t("event", lang),
            t("service", lang),
            t("by_whom", lang),
            t("source", lang),
            "event_id",
        ],
        body,
        "timeline",
    )
    return (
        f'<details id="case-{escape(case_id)}" class="timeline" open><summary>{escape(t("case_timeline", lang))}: '
        f"{escape(case_ref)} ({len(rows)} {escape(t('events', lang))})</summary>{table}</details>"
    )


def _not_run_text(code: str, lang: str) -> str:
    from audit.compliance import REGISTRY

    check = REGISTRY.get(code)
    needs = []
    if check is not None:
        needs += [t("needs_store", lang).format(service=service) for service in check.needs_stores]
        if check.needs_packs:
            needs.append(t("needs_packs", lang))
    return f"{_check_title(code, lang)} ({code})" + (
        f" — {'، '.join(needs) if lang == 'ar' else '; '.join(needs)}" if needs else ""
    )


def _trend_chart(
    groups: Sequence[SatisfactionGroup], label_of: Any, title: str, rtl: bool, lang: str = "en"
) -> str:
    buckets = sorted({group.bucket for group in groups})
    series: dict[str, list[float | None]] = {}
    for group in groups:
        values = series.setdefault(label_of(group), [None] * len(buckets))
        values[buckets.index(group.bucket)] = None if group.suppressed else group.mean
    if not buckets:
        return ""
    mark = " (محجوب)" if lang == "ar" else " (suppressed)"
    lines = [
        (name + (mark if all(v is None for v in values) else ""), values)
        for name, values in sorted(series.items())
    ]
    return charts.line_chart(buckets, lines, title=title, rtl=rtl)


# --- CSV and JSON --------------------------------------------------------------------


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


def _exception_row(e: Any) -> list[Any]:
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


@dataclass
class ReportFiles:
    html: Path
    json: Path
    csv: dict[str, Path]
    exceptions_total: int | None = None


def write_report(
    figures: Figures,
    exceptions: Iterable[Any] | None,
    *,
    out_dir: Path | str,
    lang: str = "ar",
    period: Period | tuple[date, date] | None = None,
    packs: Mapping[str, Any] | None = None,
    api_base: str = "",
    generated_at: datetime | None = None,
    max_listed: int = MAX_LISTED,
    checks_not_run: Sequence[str] = (),
    evidence: EvidenceTimelines | None = None,
) -> ReportFiles:
    """Writes report-<from>_<to>-<lang>.html, figures-<from>_<to>.json and one CSV per table.

    `exceptions` are audit.compliance.ComplianceException objects (check, case_id,
    case_ref, association_id, message{ar,en}, event_ids); None when the checks
    were not run; they are read once (an iterator is fine): all go to the
    exceptions CSV, the first `max_listed` are shown in the HTML and the JSON,
    with the count of each check. `period`, when given, must be the figures' period.
    `checks_not_run` names the checks that could not run (the report says so);
    `evidence` (filled while the exceptions are read) holds the timelines of the
    listed exceptions' cases, embedded in the HTML so that it works offline.
    """
    if period is not None:
        wanted = period if isinstance(period, Period) else Period(*period)
        if wanted != figures.period:
            raise ValueError(f"the figures are for {figures.period}, not {wanted}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{figures.period.start.isoformat()}_{figures.period.end.isoformat()}"
    csv_paths = {}
    for name, (header, rows) in csv_tables(figures).items():
        csv_paths[name] = _write_csv(out / f"{name}-{stem}.csv", header, rows)
    # The exceptions are read once: every one goes to the CSV as it comes, the
    # first MAX_LISTED are kept for the HTML and the JSON, all are counted.
    csv_paths["exceptions"] = path = out / f"exceptions-{stem}.csv"
    with path.open("w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.writer(handle)
        writer.writerow(EXCEPTION_COLUMNS)
        found = (
            None
            if exceptions is None
            else (
                exceptions
                if isinstance(exceptions, ExceptionList)
                else ExceptionList.collect(
                    exceptions, limit=max_listed, sink=lambda e: writer.writerow(_exception_row(e))
                )
            )
        )
        if isinstance(exceptions, ExceptionList):
            writer.writerows(_exception_row(e) for e in exceptions.listed)
    if found is not None:
        found.not_run = list(checks_not_run) or found.not_run
        if evidence is not None:
            found.timelines = evidence.cases
    html_path = out / f"report-{stem}-{lang}.html"
    html_path.write_text(
        render_html(
            figures, found, lang=lang, packs=packs, api_base=api_base, generated_at=generated_at
        ),
        encoding="utf-8",
    )
    json_path = out / f"figures-{stem}.json"
    json_path.write_text(
        json.dumps(report_json(figures, found, lang=lang), ensure_ascii=False, indent=2),
        encoding="utf-8",
    )
    return ReportFiles(
        html=html_path,
        json=json_path,
        csv=csv_paths,
        exceptions_total=None if found is None else found.total,
    )


def _write_csv(path: Path, header: list[str], rows: Iterable[list[Any]]) -> Path:
    with path.open(
        "w", newline="", encoding="utf-8-sig"
    ) as handle:  # BOM: spreadsheets read Arabic right
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# --- the command --------------------------------------------------------------------


def parse_day(text: str) -> date:
    """YYYY-MM-DD: Gregorian, or Hijri when the year is before 1700 (e.g. 1448-05-01)."""
    try:
        year, month, day = (int(part) for part in text.split("-"))
        return from_hijri(year, month, day) if year < 1700 else date(year, month, day)
    except (ValueError, OverflowError) as error:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a date YYYY-MM-DD (Gregorian, or Hijri before 1700) / تاريخ غير صالح: {error}"
        ) from None


def stream_events(
    nats_url: str,
    *,
    progress: bool | None = None,
    user: str | None = None,
    password: str | None = None,
    on_error: Any = None,
) -> Iterator[IntegrationEvent]:
    """Every integration event of the KHIDMA stream, in stream order, decoded.

    The audit's own stream replay (`audit.replay.replay_stream`: an ephemeral
    pull consumer read in bounded batches). A message that is not a valid event
    is skipped and reported to `on_error(subject, sequence, error)`.
    """
    from audit.replay import replay_stream

    for record in replay_stream(nats_url, progress=progress, user=user, password=password):
        if record.event is not None:
            yield record.event
        elif on_error is not None:
            on_error(record.subject, record.sequence, record.error)


def register_commands(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="the board report for a period (HTML, CSV, JSON) / تقرير مجلس الإدارة لفترة",
        description="Writes the board report of a period from the KHIDMA stream: one self-contained "
        "HTML file (Arabic by default), CSV files and a JSON file of the same figures.",
    )
    parser.add_argument(
        "--from", dest="start", required=True, type=parse_day, help="first day (YYYY-MM-DD)"
    )
    parser.add_argument(
        "--to", dest="end", required=True, type=parse_day, help="last day, included"
    )
    parser.add_argument("--lang", choices=("ar", "en"), default="ar")
    parser.add_argument(
        "--out", type=Path, default=Path("reports"), help="folder for the files (default: reports)"
    )
    parser.add_argument(
        "--by", choices=("month", "week"), default="month", help="satisfaction trend step"
    )
    parser.add_argument(
        "--api-base",
        default=None,
        help="base URL of the audit API: also link each case to its timeline there "
        "(default: none; the listed exceptions' timelines are in the file itself)",
    )
    parser.add_argument("--no-compliance", action="store_true", help="skip the compliance checks")
    parser.add_argument(
        "--max-listed",
        type=int,
        default=MAX_LISTED,
        help=f"exceptions listed one by one in the HTML and JSON (default {MAX_LISTED}; the CSV has all)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: when stderr is a terminal)",
    )
    parser.add_argument(
        "--grace-minutes",
        type=float,
        default=DEFAULT_GRACE.total_seconds() / 60,
        help="a follow-up (survey invitation) this recent is not yet missing "
        f"(default {DEFAULT_GRACE.total_seconds() / 60:g})",
    )
    moment = parser.add_mutually_exclusive_group()
    moment.add_argument(
        "--as-of",
        dest="as_of",
        type=_moment_argument,
        default=None,
        help="the report as the records stood at this moment (ISO moment, or a day: its end, "
        "Riyadh), at the latest the end of the period; also the checks' clock (default: now)",
    )
    moment.add_argument(
        "--hijri",
        dest="as_of",
        type=_hijri_argument,
        help="--as-of a Hijri day, Umm al-Qura (1448-06-11): the end of that day",
    )
    parser.set_defaults(handler=run_report_command)


def _moment_argument(text: str) -> datetime:
    from audit.asof import parse_moment

    try:
        return parse_moment(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not an ISO moment or day / لحظة غير صالحة: {error}"
        ) from None


def _hijri_argument(text: str) -> datetime:
    from audit.asof import hijri_moment

    try:
        return hijri_moment(text)
    except (ValueError, OverflowError) as error:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a Hijri day YYYY-MM-DD / تاريخ هجري غير صالح: {error}"
        ) from None


def run_report_command(args: argparse.Namespace, settings: Any = None) -> int:
    from audit.settings import load_audit_settings
    from shared.policy_loader import load_packs

    settings = settings or load_audit_settings()
    if not settings.nats_url:
        print(
            "KHIDMA_NATS_URL is needed to read the KHIDMA stream / يلزم ضبط KHIDMA_NATS_URL لقراءة سجل الأحداث",
            file=sys.stderr,
        )
        return 2
    if args.end < args.start:
        print(
            f"--to {args.end} is before --from {args.start} / تاريخ النهاية قبل تاريخ البداية",
            file=sys.stderr,
        )
        return 2
    # The report's moment: the clock unless --as-of, never after the period's end.
    as_of = getattr(args, "as_of", None) or datetime.now(UTC)
    try:
        Period(args.start, args.end).moment(as_of)
    except ValueError:
        print(
            f"the report's moment {as_of.isoformat()} (--as-of, or now) is before the period starts "
            f"({args.start}) / لحظة التقرير قبل بداية الفترة",
            file=sys.stderr,
        )
        return 2
    packs = load_packs(settings.policies_dir)
    credentials = {"user": settings.nats_user, "password": settings.nats_password}
    started = time.perf_counter()
    try:
        figures = compute_figures(
            stream_events(settings.nats_url, progress=args.progress, **credentials),
            start=args.start,
            end=args.end,
            packs=packs,
            granularity=args.by,
            as_of=as_of,
        )
        exceptions: Iterable[Any] | None = None
        not_run: list[str] = []
        evidence = EvidenceTimelines(args.max_listed)
        if not args.no_compliance:
            from audit.compliance import CheckContext, checks_not_run
            from audit.replay import available_services

            # The stores hold what the stream does not (a referral's closure, a survey
            # invitation): read them too whenever they can be read.
            stores = available_services(settings)
            not_run = checks_not_run(stores, packs=packs)
            context = CheckContext(packs=packs, grace=timedelta(minutes=args.grace_minutes))
            exceptions = compliance_exceptions(
                settings.nats_url,
                figures,
                progress=args.progress,
                settings=settings if stores else None,
                context=context,
                evidence=evidence,
                **credentials,
            )
        api_base = args.api_base or ""
        files = write_report(
            figures,
            exceptions,
            out_dir=args.out,
            lang=args.lang,
            packs=packs,
            api_base=api_base,
            max_listed=args.max_listed,
            checks_not_run=not_run,
            evidence=evidence,
        )
    except StreamUnavailable as error:
        print(f"{error.message['en']}\n{error.message['ar']}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - started
    print(f"{files.html}\n{files.json}\n" + "\n".join(str(p) for p in files.csv.values()))
    print(
        f"as of {(figures.as_of or figures.period.last_moment).isoformat()}: "
        f"{figures.events_read:,} events, {figures.requests_total:,} requests in the period, "
        f"{'no' if files.exceptions_total is None else files.exceptions_total} exceptions, {elapsed:.1f}s"
        + (f"; checks not run: {', '.join(not_run)}" if not_run else ""),
        file=sys.stderr,
    )
    return 0


def compliance_exceptions(
    nats_url: str,
    figures: Figures,
    *,
    progress: bool | None = None,
    user: str | None = None,
    password: str | None = None,
    settings: Any = None,
    context: Any = None,
    evidence: EvidenceTimelines | None = None,
) -> Iterator[Any]:
    """The compliance exceptions of the period, as of the figures' moment (audit.compliance).

    Each case's history is read as it stood at the moment (`figures.as_of`), which
    is also the checks' clock; an exception is the period's when it was proven in
    the period (`proven_at`), whenever its request was received: the rule of the
    figures of the period's decisions. An exception without `proven_at` (a check
    that does not say) is the period's when its case was received in the period.

    With `settings` (whose stores can be read), each case's timeline is built from
    the services' stores and the stream together, as `python -m audit compliance`
    does; otherwise from the stream alone, and the checks that need a store stay
    silent (`checks_not_run` names them). `evidence` keeps the timelines (as of
    the moment) of the cases of the first exceptions.
    """
    from dataclasses import replace

    from audit.compliance import CheckContext, run_checks, truncated_at
    from audit.timeline import case_timelines, case_timelines_from_stream

    moment = figures.as_of or figures.period.last_moment
    start = figures.period.start_at
    context = replace(context or CheckContext(), now=moment)
    if settings is not None:
        timelines = case_timelines(
            settings, stores=True, stream=True, nats_url=nats_url, progress=progress
        )
    else:
        timelines = case_timelines_from_stream(
            nats_url, progress=progress, user=user, password=password
        )
    for whole in timelines:
        timeline = truncated_at(whole, moment)
        if timeline is None:
            continue  # the case began after the moment
        found = [
            e
            for e in run_checks([timeline], context=context)
            if (
                start <= e.proven_at <= moment
                if e.proven_at is not None
                else timeline.case_id in figures.cohort_case_ids
            )
        ]
        if evidence is not None:
            evidence.keep(timeline, len(found))
        yield from found
