"""The report's making: the figures and the exceptions to the HTML, CSV and JSON files."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from audit.figures import Figures, Period
from audit.report.exceptions import MAX_LISTED, EvidenceTimelines
from audit.report.exports import csv_tables, report_json, write_csv, write_exceptions_csv
from audit.report.html import render_html
from shared.events import IntegrationEvent


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
        csv_paths[name] = write_csv(out / f"{name}-{stem}.csv", header, rows)
    csv_paths["exceptions"] = path = out / f"exceptions-{stem}.csv"
    found = write_exceptions_csv(path, exceptions, max_listed)
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
    from shared.event_structs import decode_event_fast

    # The figures read the events' fields by name: the contract's structs (pydantic's
    # model for what they refuse), several times faster over a long history.
    for record in replay_stream(
        nats_url, progress=progress, user=user, password=password, decode=decode_event_fast
    ):
        if record.event is not None:
            yield record.event
        elif on_error is not None:
            on_error(record.subject, record.sequence, record.error)


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
    associations: set[str] | None = None,
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
    the moment) of the cases of the first exceptions. `associations`, when given,
    keeps only their cases.
    """
    timelines = _timelines(
        nats_url, progress=progress, user=user, password=password, settings=settings
    )
    return period_exceptions(
        timelines, figures, context=context, evidence=evidence, associations=associations
    )


def _timelines(
    nats_url: str,
    *,
    progress: bool | None,
    user: str | None,
    password: str | None,
    settings: Any,
    tap: Any = None,
) -> Iterator[Any]:
    from audit.timeline import case_timelines, case_timelines_from_stream

    tapped = {"tap": tap} if tap is not None else {}
    if settings is not None:
        return case_timelines(
            settings, stores=True, stream=True, nats_url=nats_url, progress=progress, **tapped
        )
    return case_timelines_from_stream(
        nats_url, progress=progress, user=user, password=password, **tapped
    )


def figures_and_exceptions(
    nats_url: str,
    *,
    start: date,
    end: date,
    packs: Mapping[str, Any] | None = None,
    granularity: str = "month",
    as_of: datetime | None = None,
    progress: bool | None = None,
    user: str | None = None,
    password: str | None = None,
    settings: Any = None,
    context: Any = None,
    evidence: EvidenceTimelines | None = None,
) -> tuple[Figures, Iterator[Any]]:
    """The figures and the compliance exceptions of the period from one read of the
    stream: the same as `compute_figures` over `stream_events`, then
    `compliance_exceptions`, which read it twice.

    The timelines' pass feeds each event it reads to the figures; the case timelines
    are grouped (audit.timeline.group_by_case) only once every entry has been read,
    so the figures are whole before the first timeline comes out, and the checks,
    which need the figures' cohort, run on the timelines after it."""
    from itertools import chain

    from audit.figures import finish_figures, start_figures

    reading = start_figures(start=start, end=end, granularity=granularity, as_of=as_of, packs=packs)
    timelines = _timelines(
        nats_url,
        progress=progress,
        user=user,
        password=password,
        settings=settings,
        tap=reading.read_event,
    )
    first = next(timelines, None)  # by then every event has been read (see above)
    figures = finish_figures(reading, packs=packs)
    found = period_exceptions(
        chain([first] if first is not None else [], timelines),
        figures,
        context=context,
        evidence=evidence,
    )
    return figures, found


def period_exceptions(
    timelines: Iterable[Any],
    figures: Figures,
    *,
    context: Any = None,
    evidence: EvidenceTimelines | None = None,
    associations: set[str] | None = None,
) -> Iterator[Any]:
    """The exceptions of the figures' period among the cases' timelines (see
    `compliance_exceptions`)."""
    from dataclasses import replace

    from audit.compliance import CheckContext, run_checks, truncated_at

    moment = figures.as_of or figures.period.last_moment
    start = figures.period.start_at
    context = replace(context or CheckContext(), now=moment)
    for whole in timelines:
        if associations is not None and whole.association_id not in associations:
            continue
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
