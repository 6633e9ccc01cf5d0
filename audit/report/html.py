"""The report as one self-contained HTML file, from Jinja2 templates (`templates/`).

This module turns the figures into what each section shows (texts already in the
report's language, numbers already formatted, charts already drawn); the
templates lay it out, and Jinja2 escapes every value (autoescape), so that no
name from a pack or message from a check can change the page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from audit import charts
from audit.figures import (
    BACKLOG_BUCKETS,
    BACKLOG_STAGES,
    FUNNEL_STAGES,
    Figures,
    SatisfactionGroup,
)
from audit.report.exceptions import ExceptionList, as_exception_list
from audit.report.text import (
    OUTCOME_NAMES,
    STAGE_NAMES,
    Names,
    approval_text,
    check_title,
    date_text,
    not_run_text,
    num,
    pct,
    round4,
    short,
    t,
)
from audit.timeline import actor_text
from shared.dates import RIYADH

SECTIONS = (
    "summary",
    "policy_versions",
    "requests",
    "funnel",
    "rates",
    "ttd",
    "backlog",
    "erasures",
    "satisfaction",
    "exceptions",
)

_TEMPLATES = Environment(
    loader=PackageLoader("audit.report", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class Cell:
    """A table cell that carries its figure's key and raw value for checking."""

    key: str
    value: str
    text: str


def cell(key: str, value: Any, text: str | None = None) -> Cell:
    return Cell(key, "" if value is None else str(value), text if text is not None else num(value))


def chart(svg: str) -> Markup:
    # Trusted markup: audit.charts builds the SVG itself and escapes every label in it.
    return Markup(svg)


def render_html(
    figures: Figures,
    exceptions: ExceptionList | Sequence[Any] | None,
    *,
    lang: str = "ar",
    packs: Mapping[str, Any] | None = None,
    api_base: str = "",
    generated_at: datetime | None = None,
) -> str:
    if lang not in ("ar", "en"):
        raise ValueError("lang is 'ar' or 'en'")
    names = Names(packs or {}, lang, several=len(figures.associations) > 1)
    found = as_exception_list(exceptions)
    view = _View(figures, found, names, lang, api_base)
    return _TEMPLATES.get_template("report.html.j2").render(
        lang=lang,
        direction="rtl" if lang == "ar" else "ltr",
        t=lambda key: t(key, lang),
        period=figures.period,
        sections=SECTIONS,
        header=view.header(generated_at or datetime.now(UTC)),
        summary=view.summary(),
        policy_versions=view.policy_versions(),
        requests=view.requests(),
        funnel=view.funnel(),
        rates=view.rates(),
        ttd=view.time_to_decision(),
        backlog=view.backlog(),
        satisfaction=view.satisfaction(),
        erasures=view.erasures(),
        exceptions=view.exceptions(),
    )


class _View:
    """What each section shows, in the report's language."""

    def __init__(
        self,
        figures: Figures,
        found: ExceptionList | None,
        names: Names,
        lang: str,
        api_base: str,
    ) -> None:
        self.figures = figures
        self.found = found
        self.names = names
        self.lang = lang
        self.api_base = api_base.rstrip("/") if api_base else ""
        self.embedded = found.timelines if found is not None else {}
        self.rtl = lang == "ar"

    def date(self, day: date | datetime) -> str:
        return date_text(day, self.lang)

    def case(self, case_id: str, case_ref: str) -> dict[str, Any]:
        """A case's reference, linked to its timeline in the file and/or in the audit API."""
        return {
            "id": case_id,
            "ref": case_ref,
            "embedded": case_id in self.embedded,
            "api_url": f"{self.api_base}/cases/{case_id}/timeline" if self.api_base else "",
        }

    def header(self, generated_at: datetime) -> dict[str, Any]:
        period, figures = self.figures.period, self.figures
        moment = figures.as_of or period.last_moment
        return {
            "start": {"iso": period.start.isoformat(), "text": self.date(period.start)},
            "end": {"iso": period.end.isoformat(), "text": self.date(period.end)},
            "moment": {
                "iso": moment.isoformat(),
                "text": self.date(moment),
                "time": f"{moment.astimezone(RIYADH):%H:%M}",
                "early": moment < period.last_moment,
            },
            "generated": {
                "text": self.date(generated_at),
                "time": f"{generated_at.astimezone(UTC):%H:%M}",
            },
            "events_read": {"value": figures.events_read, "text": f"{figures.events_read:,}"},
            "associations": [
                self.names.association(association)
                + approval_text(self.names.packs.get(association), self.lang)
                for association in figures.associations
            ],
        }

    def summary(self) -> list[dict[str, Any]]:
        figures = self.figures
        count = self.found.total if self.found is not None else None
        cards = [
            ("requests_total", "requests.total", figures.requests_total, num),
            ("referral_rate", "referral.rate", figures.referral_rate, pct),
            ("approval_rate", "approval.rate", figures.approval_rate, pct),
            (
                "window_share",
                "time_to_decision.share_within_window",
                figures.share_within_window,
                pct,
            ),
            ("backlog", "backlog.total", figures.backlog_total, num),
            ("exceptions", "exceptions.count", count, num),
        ]
        return [
            {"label": t(label, self.lang), "cell": Cell(key, _card_value(value), shown(value))}
            for label, key, value, shown in cards
        ]

    def policy_versions(self) -> list[dict[str, Any]]:
        """Each version in force during the period: its approval, since when, and the
        cohort's cases it governed."""
        rows = []
        for row in self.figures.policy_versions:
            association, number = row["association_id"], row["version"]
            takes_effect = row["takes_effect"]
            rows.append(
                {
                    "association": self.names.association(association),
                    "version": number,
                    "takes_effect": (
                        self.date(datetime.fromisoformat(takes_effect))
                        if takes_effect
                        else t("since_always", self.lang)
                    ),
                    "approval": self._approval(row),
                    "cases": cell(f"policy_versions.{association}.{number}", row["cases"]),
                }
            )
        return rows

    def _approval(self, row: dict[str, Any]) -> dict[str, str]:
        """The board's approval: the date as the minutes write it (isolated, it may be in
        the other script), then the day in the report's calendars and the meeting."""
        if not row["approval_as_written"]:
            return {
                "as_written": "",
                "rest": "—" if row["known"] else t("version_not_held", self.lang),
            }
        rest = []
        if row["approved_on"]:
            rest.append(self.date(date.fromisoformat(row["approved_on"])))
        if row["meeting"]:
            rest.append(f"{t('meeting', self.lang)} {row['meeting']}")
        return {"as_written": row["approval_as_written"], "rest": " · ".join(rest)}

    def requests(self) -> dict[str, Any]:
        names, figures = self.names, self.figures
        by_channel = [
            (
                association,
                names.channel(channel),
                cell(f"requests.by_channel.{association}.{channel}", n),
            )
            for association, counts in figures.requests_by_channel.items()
            for channel, n in counts.items()
        ]
        by_service = [
            (
                association,
                names.service(association, service),
                cell(f"requests.by_service.{association}.{service}", n),
            )
            for association, counts in figures.requests_by_service.items()
            for service, n in counts.items()
        ]
        return {
            "by_channel": self._breakdown(by_channel, "by_channel", charts.PALETTE[0]),
            "by_service": self._breakdown(by_service, "by_service", charts.PALETTE[2]),
        }

    def _breakdown(
        self, rows: list[tuple[str, str, Cell]], title: str, color: str
    ) -> dict[str, Any]:
        bars = [(short(self.names, a, label), int(c.value)) for a, label, c in rows]
        return {
            "chart": chart(
                charts.bar_chart(bars, title=t(title, self.lang), rtl=self.rtl, color=color)
            ),
            "rows": [(self.names.association(a), label, c) for a, label, c in rows],
        }

    def funnel(self) -> dict[str, Any]:
        figures, lang = self.figures, self.lang
        stages = [(STAGE_NAMES[s][lang], figures.funnel.get(s, 0)) for s in FUNNEL_STAGES]
        received = figures.funnel.get("received", 0)
        outcomes = [
            (OUTCOME_NAMES.get(o, {}).get(lang, o), o, n)
            for o, n in figures.verification_outcomes.items()
        ]
        return {
            "chart": chart(charts.funnel_chart(stages, title=t("funnel", lang), rtl=self.rtl)),
            "stages": [
                (
                    STAGE_NAMES[s][lang],
                    cell(f"funnel.{s}", figures.funnel.get(s, 0)),
                    pct(figures.funnel.get(s, 0) / received if received else None),
                )
                for s in FUNNEL_STAGES
            ],
            "outcomes_chart": chart(
                charts.bar_chart(
                    [(name, n) for name, _, n in outcomes],
                    title=t("outcomes", lang),
                    rtl=self.rtl,
                    color=charts.PALETTE[1],
                )
            ),
            "outcomes": [(name, cell(f"verification_outcomes.{o}", n)) for name, o, n in outcomes],
        }

    def rates(self) -> list[dict[str, Any]]:
        figures = self.figures
        return [
            {
                "label": t("referral_rate", self.lang),
                "cells": [
                    cell("referral.referred", figures.referred),
                    cell("referral.received", figures.requests_total),
                    cell(
                        "referral.rate", round4(figures.referral_rate), pct(figures.referral_rate)
                    ),
                ],
            },
            {
                "label": t("approval_rate", self.lang),
                "cells": [
                    cell("approval.approved", figures.approved),
                    cell("approval.decisions", figures.decisions),
                    cell(
                        "approval.rate", round4(figures.approval_rate), pct(figures.approval_rate)
                    ),
                ],
            },
        ]

    def time_to_decision(self) -> dict[str, Any]:
        figures, lang = self.figures, self.lang
        histogram = [
            (f"{days}–{days + 1} {t('days', lang)}", n)
            for days, n in figures.days_to_decision_histogram.items()
        ]
        return {
            "cells": [
                cell("time_to_decision.decisions", figures.decisions),
                cell("time_to_decision.within_window", figures.within_window),
                cell(
                    "time_to_decision.share_within_window",
                    round4(figures.share_within_window),
                    pct(figures.share_within_window),
                ),
                cell("time_to_decision.median_days", figures.median_days_to_decision),
            ],
            "chart": chart(
                charts.bar_chart(
                    histogram, title=t("days_hist", lang), rtl=self.rtl, color=charts.PALETTE[3]
                )
            ),
            "slowest": [
                {
                    "case": self.case(slow.case_id, slow.case_ref),
                    "association": self.names.association(slow.association_id),
                    "days": cell(
                        f"time_to_decision.slowest.{slow.case_ref}.days", round(slow.days, 2)
                    ),
                    "window": cell(
                        f"time_to_decision.slowest.{slow.case_ref}.window_days", slow.window_days
                    ),
                    "within": t("yes" if slow.within_window else "no", lang),
                    "decided_on": self.date(date.fromisoformat(slow.decided_on)),
                }
                for slow in figures.slowest
            ],
        }

    def backlog(self) -> dict[str, Any]:
        figures, lang = self.figures, self.lang
        totals = [
            (f"{label} {t('days', lang)}", sum(figures.backlog.get(label, {}).values()))
            for label, _ in BACKLOG_BUCKETS
        ]
        rows = []
        for label, _ in BACKLOG_BUCKETS:
            counts = figures.backlog.get(label, {})
            cells = [
                cell(f"backlog.by_age.{label}.{stage}", counts.get(stage, 0))
                for stage in BACKLOG_STAGES
            ]
            rows.append(
                (label, [*cells, cell(f"backlog.by_age.{label}.total", sum(counts.values()))])
            )
        return {
            "total": {"value": figures.backlog_total, "text": f"{figures.backlog_total:,}"},
            "chart": chart(
                charts.bar_chart(
                    totals, title=t("backlog", lang), rtl=self.rtl, color=charts.PALETTE[4]
                )
            ),
            "stages": [t(stage, lang) for stage in BACKLOG_STAGES],
            "rows": rows,
        }

    def erasures(self) -> dict[str, Any]:
        by_association = self.figures.erasures_by_association
        total = self.figures.erasures_total
        return {
            "counted": by_association is not None,
            "total": cell("erasures.total", total),
            "rows": [
                (self.names.association(a), cell(f"erasures.by_association.{a}", n))
                for a, n in (by_association or {}).items()
            ],
        }

    def satisfaction(self) -> list[dict[str, Any]]:
        names = self.names
        by_service: Callable[[SatisfactionGroup], str] = lambda g: short(
            names, g.association_id, names.service(g.association_id, g.key)
        )
        by_channel: Callable[[SatisfactionGroup], str] = lambda g: short(
            names, g.association_id, names.channel(g.key)
        )
        return [
            self._satisfaction(
                "by_service", "service", self.figures.satisfaction_by_service, by_service
            ),
            self._satisfaction(
                "by_channel", "channel", self.figures.satisfaction_by_channel, by_channel
            ),
        ]

    def _satisfaction(
        self,
        key: str,
        column: str,
        groups: Sequence[SatisfactionGroup],
        label_of: Callable[[SatisfactionGroup], str],
    ) -> dict[str, Any]:
        title = t("sat_" + key, self.lang)
        rows = []
        for group in groups:
            base = f"satisfaction.{key}.{group.bucket}.{group.association_id}.{group.key}"
            rows.append(
                {
                    "bucket": group.bucket,
                    "label": label_of(group),
                    "suppressed_key": f"{base}.answers" if group.suppressed else "",
                    "cells": []
                    if group.suppressed
                    else [
                        cell(base + ".answers", group.answers),
                        cell(base + ".mean", round(group.mean or 0, 2)),
                    ],
                }
            )
        return {
            "title": title,
            "column": t(column, self.lang),
            "chart": chart(_trend_chart(groups, label_of, title, self.rtl, self.lang)),
            "rows": rows,
        }

    def exceptions(self) -> dict[str, Any] | None:
        found, lang = self.found, self.lang
        if found is None:
            return None
        return {
            "total": found.total,
            "not_run": " ".join(found.not_run),
            "not_run_texts": [not_run_text(code, lang) for code in found.not_run],
            "by_check": [
                (check_title(code, lang), code, cell(f"exceptions.by_check.{code}", count))
                for code, count in found.by_check.items()
            ],
            "listed_first": t("listed_first", lang).format(
                shown=len(found.listed), total=found.total
            )
            if len(found.listed) < found.total
            else "",
            "listed": self._listed(found),
        }

    def _listed(self, found: ExceptionList) -> list[dict[str, Any]]:
        """Each listed exception with its evidence; a case's timeline goes with its first one."""
        listed = []
        seen_cases: set[str] = set()
        for number, exception in enumerate(found.listed, 1):
            case_id = str(exception.case_id)
            first_of_case = case_id not in seen_cases
            seen_cases.add(case_id)
            proven_at = getattr(exception, "proven_at", None)
            listed.append(
                {
                    "number": number,
                    "check": exception.check,
                    "case": self.case(case_id, exception.case_ref),
                    "association": self.names.association(exception.association_id),
                    "message": exception.message.get(self.lang) or exception.message.get("en", ""),
                    "proven_at": "—" if proven_at is None else self.date(proven_at),
                    "event_ids": [str(event_id) for event_id in exception.event_ids],
                    "first_of_case": first_of_case,
                    "timeline": self._timeline(self.embedded[case_id])
                    if first_of_case and case_id in self.embedded
                    else None,
                }
            )
        return listed

    def _timeline(self, rows: list[dict[str, Any]]) -> list[dict[str, str]]:
        """One case's timeline rows as the evidence shows them."""
        shown = []
        for row in rows:
            actor = row.get("actor") or {}
            what = row["event_type"]
            if row.get("revision"):
                what += f" ({t('revision', self.lang)} {row['revision']})"
            moment = datetime.fromisoformat(row["at"])
            shown.append(
                {
                    "date": self.date(moment),
                    # The day is Riyadh's (shared.dates): so is the hour shown beside it.
                    "time": f"{moment.astimezone(RIYADH):%H:%M}",
                    "what": what,
                    "service": row["service"],
                    "actor": actor_text(actor),
                    "source": row["source"],
                    "event_id": row.get("event_id") or "",
                }
            )
        return shown


def _card_value(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _trend_chart(
    groups: Sequence[SatisfactionGroup],
    label_of: Callable[[SatisfactionGroup], str],
    title: str,
    rtl: bool,
    lang: str = "en",
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
