"""`python -m audit report`: the command's arguments and its run."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from audit.compliance import DEFAULT_GRACE
from audit.figures import Figures, Period, compute_figures, count_erasures
from audit.personal import keyring_erasures
from audit.replay import StreamUnavailable
from audit.report.build import figures_and_exceptions, stream_events, write_report
from audit.report.exceptions import MAX_LISTED, EvidenceTimelines
from shared.dates import from_hijri


def parse_day(text: str) -> date:
    """YYYY-MM-DD: Gregorian, or Hijri when the year is before 1700 (e.g. 1448-05-01)."""
    try:
        year, month, day = (int(part) for part in text.split("-"))
        return from_hijri(year, month, day) if year < 1700 else date(year, month, day)
    except (ValueError, OverflowError) as error:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a date YYYY-MM-DD (Gregorian, or Hijri before 1700) / تاريخ غير صالح: {error}"
        ) from None


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
        type=moment_argument,
        default=None,
        help="the report as the records stood at this moment (ISO moment, or a day: its end, "
        "Riyadh), at the latest the end of the period; also the checks' clock (default: now)",
    )
    moment.add_argument(
        "--hijri",
        dest="as_of",
        type=hijri_argument,
        help="--as-of a Hijri day, Umm al-Qura (1448-06-11): the end of that day",
    )
    parser.set_defaults(handler=run_report_command)


def moment_type(parse: Callable[[str], datetime]) -> Callable[[str], datetime]:
    """An argparse type: the moment `parse` reads, or a usage error in both languages."""

    def argument(text: str) -> datetime:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(
                f"'{text}' is not an ISO moment or day / لحظة غير صالحة: {error}"
            ) from None

    return argument


def moment_argument(text: str) -> datetime:
    from audit.asof import parse_moment

    return moment_type(parse_moment)(text)


def hijri_argument(text: str) -> datetime:
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
    # The report's moment: the clock unless --as-of, never after the period's end.
    as_of = getattr(args, "as_of", None) or datetime.now(UTC)
    refusal = _refusal(args, settings, as_of)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    packs = load_packs(settings.policies_dir)
    credentials = {"user": settings.nats_user, "password": settings.nats_password}
    started = time.perf_counter()
    try:
        evidence = EvidenceTimelines(args.max_listed)
        figures, exceptions, not_run = _figures_and_exceptions(
            args, settings, packs, as_of, evidence, credentials
        )
        count_erasures(figures, keyring_erasures(settings))
        files = write_report(
            figures,
            exceptions,
            out_dir=args.out,
            lang=args.lang,
            packs=packs,
            api_base=args.api_base or "",
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
        f"{'no' if files.exceptions_total is None else files.exceptions_total} exceptions, "
        f"{elapsed:.1f}s" + (f"; checks not run: {', '.join(not_run)}" if not_run else ""),
        file=sys.stderr,
    )
    return 0


def _refusal(args: argparse.Namespace, settings: Any, as_of: datetime) -> str | None:
    """Why the command cannot run as asked, in English and Arabic; None when it can."""
    if not settings.nats_url:
        return (
            "KHIDMA_NATS_URL is needed to read the KHIDMA stream / "
            "يلزم ضبط KHIDMA_NATS_URL لقراءة سجل الأحداث"
        )
    if args.end < args.start:
        return f"--to {args.end} is before --from {args.start} / تاريخ النهاية قبل تاريخ البداية"
    try:
        Period(args.start, args.end).moment(as_of)
    except ValueError:
        return (
            f"the report's moment {as_of.isoformat()} (--as-of, or now) is before the period "
            f"starts ({args.start}) / لحظة التقرير قبل بداية الفترة"
        )
    return None


def _figures_and_exceptions(
    args: argparse.Namespace,
    settings: Any,
    packs: Mapping[str, Any],
    as_of: datetime,
    evidence: EvidenceTimelines,
    credentials: Mapping[str, Any],
) -> tuple[Figures, Iterable[Any] | None, list[str]]:
    """The figures, the compliance exceptions to report (None with --no-compliance) and
    the checks that cannot run; with the checks, from one read of the stream."""
    period = {"start": args.start, "end": args.end, "packs": packs, "granularity": args.by}
    if args.no_compliance:
        figures = compute_figures(
            stream_events(settings.nats_url, progress=args.progress, **credentials),
            **period,
            as_of=as_of,
        )
        return figures, None, []
    from audit.compliance import CheckContext, checks_not_run
    from audit.replay import available_services
    from audit.roles import load_role_history, stores_read

    # The stores hold what the stream does not (a referral's closure, a survey
    # invitation, who held which role when): read them too whenever they can be read.
    stores = available_services(settings)
    roles = load_role_history(settings)
    context = CheckContext(packs=packs, grace=timedelta(minutes=args.grace_minutes), roles=roles)
    figures, exceptions = figures_and_exceptions(
        settings.nats_url,
        **period,
        as_of=as_of,
        progress=args.progress,
        settings=settings if stores else None,
        context=context,
        evidence=evidence,
        **credentials,
    )
    return figures, exceptions, checks_not_run(stores_read(stores, roles), packs=packs)
