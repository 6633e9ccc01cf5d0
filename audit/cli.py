"""`python -m audit <command>`: the auditors' command line (read-only).

    python -m audit replay [--source stores|stream|both]
    python -m audit timeline CASE_ID_OR_REF [--source ...]
    python -m audit asof 2026-11-21T12:00:00Z | --hijri 1448-06-11
    python -m audit crosscheck
    python -m audit compliance [--check CODE ...]
    python -m audit access [--case ID_OR_REF] [--who SUBJECT] [--from DAY] [--to DAY]
    python -m audit roles [USER] [--role R --association A --at MOMENT]
    python -m audit verify | checkpoint        (audit.tamper)
    python -m audit report --from ... --to ... [--as-of ... | --hijri ...] (audit.report)
    python -m audit policy versions [--as-of MOMENT | --hijri DAY]
    python -m audit policy diff ASSOCIATION [FROM TO]
    python -m audit export --association A --national-id N [--username U]
                           [--format html|json] [--lang ar|en] [--out FILE]

Settings come from the KHIDMA_* variables (audit.settings.AuditSettings);
--data-dir and --nats-url override them. Every command takes --json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from audit import report as report_module
from audit import tamper as tamper_module
from audit.asof import STATUS_LABELS, parse_moment, states_as_of
from audit.compliance import (
    DEFAULT_GRACE,
    REGISTRY,
    CheckContext,
    checks_not_run,
    run_checks,
    truncated_at,
)
from audit.crosscheck import CrossCheckTotals, crosscheck_system
from audit.personal import opener_for
from audit.replay import StreamUnavailable, available_services, replay_store, replay_stream
from audit.report.cli import hijri_argument, moment_argument, moment_type
from audit.roles import load_role_history, stores_read
from audit.settings import AuditSettings, load_audit_settings
from audit.stores import store_exists
from audit.timeline import CaseTimeline, actor_text, case_timeline, case_timelines, hijri_text
from shared.dates import both_calendars
from shared.event_structs import decode_event_fast
from shared.personal.master import MasterKeyProblem

SOURCES = ("stores", "stream", "both")


def _dump(document: Any) -> None:
    print(json.dumps(document, ensure_ascii=False, indent=2, default=str))


def _sources(args: argparse.Namespace, settings: AuditSettings) -> tuple[bool, bool]:
    source = getattr(args, "source", "stores")
    stores = source in ("stores", "both")
    stream = source in ("stream", "both")
    if stream and not settings.nats_url:
        raise SystemExit(
            "the stream needs KHIDMA_NATS_URL or --nats-url / يلزم ضبط KHIDMA_NATS_URL"
        )
    return stores, stream


def cmd_replay(args: argparse.Namespace, settings: AuditSettings) -> int:
    stores, stream = _sources(args, settings)
    result: dict[str, Any] = {}
    started = time.perf_counter()
    total = 0
    if stores:
        per_service: dict[str, dict[str, Any]] = {}
        for service in available_services(settings):
            topics: Counter[str] = Counter()
            public = 0
            for record in replay_store(service, settings, progress=args.progress):
                topics[record.topic.partition(":")[2]] += 1
                public += record.published_as is not None
                total += 1
            per_service[service] = {
                "events": sum(topics.values()),
                "public_events": public,
                "by_event": dict(topics),
            }
        result["stores"] = per_service
    if stream:
        types: Counter[str] = Counter()
        undecodable = 0
        for item in replay_stream(
            settings.nats_url or "",
            progress=args.progress,
            user=settings.nats_user,
            password=settings.nats_password,
            decode=decode_event_fast,  # only counted by type
        ):
            total += 1
            if item.event is None:
                undecodable += 1
            else:
                types[item.event.event_type] += 1
        result["stream"] = {
            "events": sum(types.values()),
            "undecodable": undecodable,
            "by_event": dict(types),
        }
    elapsed = time.perf_counter() - started
    result["replayed_events"] = total
    result["seconds"] = round(elapsed, 3)
    result["events_per_second"] = round(total / elapsed) if elapsed > 0 else None
    if args.json:
        _dump(result)
        return 0
    print(f"إعادة تشغيل السجل / Replay: {total} events in {elapsed:.2f}s")
    for service, counts in result.get("stores", {}).items():
        print(
            f"  مخزن {service} store: {counts['events']} events, {counts['public_events']} public"
        )
        for name, count in sorted(counts["by_event"].items()):
            print(f"    {name}: {count}")
    if "stream" in result:
        print(
            f"  تدفق KHIDMA stream: {result['stream']['events']} events"
            f" ({result['stream']['undecodable']} undecodable / غير مقروءة)"
        )
        for name, count in sorted(result["stream"]["by_event"].items()):
            print(f"    {name}: {count}")
    return 0


def cmd_timeline(args: argparse.Namespace, settings: AuditSettings) -> int:
    stores, stream = _sources(args, settings)
    opener_for(settings, warn=True)
    timeline = case_timeline(settings, args.case, stores=stores, stream=stream)
    if timeline is None:
        print(f"لا توجد حالة / no case: {args.case}", file=sys.stderr)
        return 1
    document = timeline.describe()
    if args.json:
        _dump(document)
        return 0
    print(
        f"الحالة / Case {timeline.case_ref} ({timeline.case_id}) — {timeline.association_id}, "
        f"القناة / channel: {timeline.channel}, الخدمة / service: {timeline.service_code}"
    )
    for event in document["events"]:
        when = event["when"]
        actor = event["actor"] or {}
        cause = event["caused_by"]
        cause_text = f" ← {cause['event_type']} ({cause['service']})" if cause else ""
        name = event["event_type"] + (
            f" (النسخة / revision {event['revision']})" if event.get("revision") else ""
        )
        print(
            f"  {hijri_text(when)} | {when.get('at', when['gregorian'])} | {event['source']:<6} "
            f"{event['service']:<12} {name:<32} {actor_text(actor)}"
            f" [{event['channel']}]{cause_text}"
        )
    return 0


def cmd_asof(args: argparse.Namespace, settings: AuditSettings) -> int:
    at = args.hijri or args.moment or datetime.now(UTC)
    stores, stream = _sources(args, settings)
    states = states_as_of(
        case_timelines(settings, stores=stores, stream=stream, progress=args.progress), at
    )
    if args.json:
        print(
            "{" + f'"as_of": {json.dumps(both_calendars(at), ensure_ascii=False)}, "cases": [',
            end="",
        )
        for index, state in enumerate(states):
            print(
                ("," if index else "")
                + "\n  "
                + json.dumps(state.to_dict(), ensure_ascii=False, default=str),
                end="",
            )
        print("\n]}")
        return 0
    moment = both_calendars(at)
    print(
        f"الحالات كما كانت في {moment['ar']} / Cases as they stood on {moment['en']} ({moment['at']})"
    )
    count = 0
    for state in states:
        count += 1
        label = STATUS_LABELS.get(state.status, {"ar": state.status, "en": state.status})
        print(
            f"  {state.case_ref:<18} {label['ar']} / {label['en']:<24} "
            f"verification={state.verification_outcome} decision={state.decision} "
            f"delivered={state.delivered} referral_open={state.referral_open} survey={state.survey} "
            f"policy_version={state.policy_version}"
        )
    print(f"  {count} حالة / cases")
    return 0


def cmd_crosscheck(args: argparse.Namespace, settings: AuditSettings) -> int:
    if not settings.nats_url:
        print(
            "the cross-check needs KHIDMA_NATS_URL or --nats-url / يلزم ضبط KHIDMA_NATS_URL",
            file=sys.stderr,
        )
        return 2
    totals = CrossCheckTotals()
    differences = [
        d.to_dict()
        for d in crosscheck_system(
            settings,
            progress=args.progress,
            totals=totals,
            grace=timedelta(minutes=args.grace_minutes),
        )
    ]
    # A message on an event subject that is no event was published by no store.
    agree = not differences and not totals.undecodable_stream
    if args.json:
        _dump({"totals": totals.__dict__, "differences": differences, "agree": agree})
    else:
        print(
            f"المخازن / stores: {totals.store_events} public events; "
            f"التدفق / stream: {totals.stream_events} events"
        )
        if totals.undecodable_stream:
            print(
                f"  {totals.undecodable_stream} رسالة في التدفق ليست حدثًا مقروءًا / message(s) on "
                "the stream that are no readable event (see `replay --source stream`)"
            )
        if totals.within_grace:
            print(
                f"  {totals.within_grace} حدثًا حديثًا لم يُعدّ مفقودًا بعد / recent event(s) not yet counted "
                f"as missing (within {args.grace_minutes:g} minutes)"
            )
        if agree:
            print("  متطابقان / the stores and the stream agree")
        current = None
        for difference in differences:
            if difference["case_id"] != current:
                current = difference["case_id"]
                print(f"  الحالة / case {difference['case_ref']} ({current})")
            print(
                f"    {difference['message']['ar']} / {difference['message']['en']}: "
                f"{difference['event_type']} {difference['event_id']} ({difference['service']}) {difference['detail']}"
            )
    return 0 if agree else 1


def _as_of(args: argparse.Namespace) -> datetime | None:
    moment: datetime | None = getattr(args, "hijri", None) or getattr(args, "as_of", None)
    return moment


def cmd_compliance(args: argparse.Namespace, settings: AuditSettings) -> int:
    from shared.policy_loader import load_packs

    stores, stream = _sources(args, settings)
    at = _as_of(args)
    # The window and the quorum are the policy's, not what the committee recorded;
    # who held which role when is the identity store's history.
    roles = load_role_history(settings)
    context = CheckContext(
        packs=load_packs(settings.policies_dir),
        now=at or datetime.now(UTC),
        grace=timedelta(minutes=args.grace_minutes),
        roles=roles,
    )
    timelines: Iterable[CaseTimeline] = case_timelines(
        settings, stores=stores, stream=stream, progress=args.progress
    )
    if at is not None:
        # The history as it stood then: later events are not yet known.
        timelines = (cut for cut in (truncated_at(t, at) for t in timelines) if cut is not None)
    exceptions = run_checks(timelines, checks=args.checks, context=context)
    skipped = checks_not_run(
        stores_read(available_services(settings) if stores else (), roles),
        packs=context.packs,
        checks=args.checks,
    )
    if skipped:  # on stderr: the JSON on stdout stays a list of exceptions
        print(
            "فحوص لم تُجرَ / checks not run (their store was not read): " + ", ".join(skipped),
            file=sys.stderr,
        )
    found = 0
    counts: Counter[str] = Counter()
    if args.json:
        print("[", end="")
        for item in exceptions:
            print(
                ("," if found else "") + "\n  " + json.dumps(item.to_dict(), ensure_ascii=False),
                end="",
            )
            found += 1
        print("\n]")
        return 1 if found else 0
    for item in exceptions:
        found += 1
        counts[item.check] += 1
        title = REGISTRY[item.check].title
        print(f"{item.case_ref} ({item.case_id}) — {title['ar']} / {title['en']}")
        print(f"    {item.message['ar']}\n    {item.message['en']}")
        print(f"    الأحداث / events: {', '.join(item.event_ids)}")
    if not found:
        print("لا مخالفات للسياسة / no policy exceptions")
    else:
        print(
            f"{found} مخالفة / exceptions: "
            + ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
        )
    return 1 if found else 0


def start_moment(text: str) -> datetime:
    """An ISO moment, or a day: its first moment, Riyadh time (`--from`)."""
    from datetime import date
    from datetime import time as day_time

    from shared.dates import RIYADH

    text = text.strip()
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), day_time(0), RIYADH).astimezone(UTC)
    return parse_moment(text)


start_argument = moment_type(start_moment)


def cmd_access(args: argparse.Namespace, settings: AuditSettings) -> int:
    """Who read which case file or member record, and when (the services' access logs)."""
    from audit.access import access_reads
    from audit.timeline import resolve_case_id

    record_id = None
    if args.case:
        record_id = resolve_case_id(settings, args.case) or args.case
    start, end = args.start, args.end
    reads = access_reads(
        settings,
        record_id=record_id,
        who=args.who,
        association_id=args.association,
        start=start,
        end=end,
    )
    count = 0
    if args.json:
        print("[", end="")
        for read in reads:
            document = json.dumps(read.to_dict(), ensure_ascii=False, default=str)
            print(("," if count else "") + "\n  " + document, end="")
            count += 1
        print("\n]")
        return 0
    for read in reads:
        count += 1
        actor = read.actor
        who = actor.get("name") or actor.get("id")
        if actor.get("name") and actor.get("id") != actor.get("name"):
            who = f"{who} ({actor.get('id')})"
        print(
            f"{hijri_text(read.to_dict()['when'])} | {read.at.isoformat()} | {read.service:<12} "
            f"{who} [{actor.get('role')}] ← {read.what} {read.record_id} ({read.association_id})"
        )
    print(f"{count} قراءة مسجلة / logged reads")
    return 0


def cmd_roles(args: argparse.Namespace, settings: AuditSettings) -> int:
    """The identity store's role history, replayed; with --role, --association and
    --at: did the user hold that role there at that moment?"""
    from audit.roles import load_role_history

    history = load_role_history(settings)
    if history is None:
        print(
            "لا يمكن قراءة مخزن الهوية / the identity store cannot be read "
            f"({settings.sqlite_path('identity') if settings.store == 'sqlite' else 'postgres'})",
            file=sys.stderr,
        )
        return 2
    holders = list(history)
    if args.user:
        holder = history.holder(args.user)
        if holder is None:
            print(f"لا يوجد مستخدم / no such user: {args.user}", file=sys.stderr)
            return 1
        holders = [holder]
    if args.role or args.association or args.at:
        if not (args.user and args.role and args.association):
            print("--role and --association need a USER (and --at, default now)", file=sys.stderr)
            return 2
        at = args.at or datetime.now(UTC)
        held = bool(history.held(args.user, args.role, args.association, at))
        answer = {
            "user": holders[0].as_dict(),
            "role": args.role,
            "association_id": args.association,
            "at": both_calendars(at),
            "held": held,
        }
        if args.json:
            _dump(answer)
        else:
            print(
                f"{holders[0].name}: {args.role} @ {args.association}, {at.isoformat()} — "
                + ("نعم، كان يحمله / held" if held else "لا، لم يكن يحمله / not held")
            )
        return 0 if held else 1
    if args.json:
        _dump([holder.as_dict() for holder in holders])
        return 0
    for holder in holders:
        disabled = (
            f", معطّل / disabled {holder.disabled_at.isoformat()}" if holder.disabled_at else ""
        )
        print(f"{holder.name} ({holder.kind} {holder.id}) — {holder.display_name}{disabled}")
        for period in holder.periods:
            until = (
                f" → {period.until.isoformat()} ({period.revoked_by}"
                + (f": {period.reason}" if period.reason else "")
                + ")"
                if period.until
                else " → …"
            )
            print(f"    {period.role} @ {period.association_id}: {period.since.isoformat()}{until}")
    return 0


def cmd_policy_versions(args: argparse.Namespace, settings: AuditSettings) -> int:
    """The version of each association's policy in force at a moment (default now)."""
    from audit.policy_versions import ADOPTING_SERVICE, adoptions, versions_in_force
    from shared.policy_loader import load_packs

    # Read by the report's argument types: a bad moment is refused before anything runs.
    at = args.hijri or args.as_of or datetime.now(UTC)
    adopted = (
        adoptions(replay_store(ADOPTING_SERVICE, settings))
        if store_exists(ADOPTING_SERVICE, settings)
        else None
    )
    rows = versions_in_force(load_packs(settings.policies_dir), at, adopted)
    moment = both_calendars(at)
    if args.json:
        print(json.dumps({"as_of": moment, "associations": rows}, ensure_ascii=False, indent=2))
        return 0
    print(
        f"السياسة النافذة في {moment['ar']} / The policy in force on {moment['en']} ({moment['at']})"
    )
    if adopted is None:
        print(
            "  (لم يُقرأ مخزن الاستقبال: حسب تواريخ النفاذ / intake's store not read: by the moments versions take effect)"
        )
    for row in rows:
        approval = row["approval"]
        approved = f" — {approval['as_written']} ({approval['hijri']} هـ)" if approval else ""
        print(
            f"  {row['association_id']:<14} الإصدار / version {row['version']} "
            f"(من / of {row['versions']}){approved}: "
            f"مهلة / window {row['decision_window_days']}, نصاب / quorum {row['quorum']}"
        )
    return 0


def cmd_policy_diff(args: argparse.Namespace, settings: AuditSettings) -> int:
    """What changed between two versions of an association's policy, in both languages."""
    from audit.policy_versions import policy_diff
    from shared.policy_loader import load_packs

    history = load_packs(settings.policies_dir).history(args.association)
    if history is None:
        print(
            f"لا توجد سياسة للجمعية {args.association} / no policy for {args.association}",
            file=sys.stderr,
        )
        return 2
    first = args.before if args.before is not None else max(1, history.latest.number - 1)
    second = args.after if args.after is not None else history.latest.number
    before, after = history.version(first), history.version(second)
    if before is None or after is None:
        known = [pack.number for pack in history.versions]
        print(
            f"الإصداران {first} و{second} ليسا كلاهما من إصدارات {args.association} {known} / "
            f"versions {first} and {second} are not both among {args.association}'s {known}",
            file=sys.stderr,
        )
        return 2
    changes = policy_diff(before, after)
    if args.json:
        document = {
            "association_id": args.association,
            "from": first,
            "to": second,
            "changes": [change.to_dict() for change in changes],
        }
        print(json.dumps(document, ensure_ascii=False, indent=2, default=str))
        return 0
    print(
        f"{args.association}: ما تغيّر من الإصدار {first} إلى الإصدار {second} / "
        f"what changed from version {first} to version {second}"
    )
    if not changes:
        print("  لا فرق / no difference")
    for change in changes:
        print(f"  {change.text('ar')}\n  {change.text('en')}")
    return 0


def cmd_export(args: argparse.Namespace, settings: AuditSettings) -> int:
    """A data subject's access export (audit.export), logged as a read."""
    import getpass

    from audit.export import log_export, render_export_html, subject_export
    from shared.errors import Refused

    try:
        export = subject_export(
            settings, args.association, args.national_id, username=args.username
        )
    except Refused as refusal:
        print(f"{refusal.en}\n{refusal.ar}", file=sys.stderr)
        return 2
    log_export(settings, {"kind": "operator", "id": getpass.getuser()}, export)
    if args.format == "html":
        text = render_export_html(export, lang=args.lang)
    else:
        text = json.dumps(export.to_dict(), ensure_ascii=False, indent=2, default=str)
    if args.out is None:
        print(text)
        return 0
    # Personal data: the file is the reader's alone (0600), never replaced silently.
    import os

    descriptor = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)
    print(args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m audit",
        description="Khidma audit (read-only): replay, timelines, state as of a moment, "
        "cross-check, compliance, tamper evidence, the board report / تدقيق خدمة",
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="overrides KHIDMA_DATA_DIR")
    parser.add_argument("--nats-url", default=None, help="overrides KHIDMA_NATS_URL")
    parser.add_argument(
        "--store", choices=("sqlite", "postgres"), default=None, help="overrides KHIDMA_STORE"
    )
    subparsers = parser.add_subparsers(dest="command", required=True)

    def add(
        name: str, help_text: str, handler: Callable[..., int], *, source: str | None = "stores"
    ) -> argparse.ArgumentParser:
        sub = subparsers.add_parser(name, help=help_text)
        sub.add_argument("--json", action="store_true", help="JSON output")
        sub.add_argument(
            "--progress",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="progress bar on stderr (default: when stderr is a terminal)",
        )
        if source:
            sub.add_argument(
                "--source",
                choices=SOURCES,
                default=source,
                help=f"what to replay (default: {source})",
            )
        sub.set_defaults(func=handler)
        return sub

    add(
        "replay", "replay the stores and/or the stream, with counts / إعادة تشغيل السجل", cmd_replay
    )
    timeline = add(
        "timeline", "one case's full timeline / السجل الزمني لحالة", cmd_timeline, source="both"
    )
    timeline.add_argument("case", help="case id or case reference (e.g. SDR-1448-000001)")
    asof = add("asof", "every case as it stood at a moment / الحالات كما كانت في لحظة", cmd_asof)
    asof.add_argument(
        "moment",
        nargs="?",
        type=moment_argument,
        help="ISO moment (2026-11-21T12:00:00Z) or day (end of day, Riyadh)",
    )
    asof.add_argument(
        "--hijri",
        type=hijri_argument,
        help="a Hijri day, Umm al-Qura (1448-06-11): the end of that day",
    )
    crosscheck = add(
        "crosscheck",
        "stores against the stream / مطابقة المخازن مع التدفق",
        cmd_crosscheck,
        source=None,
    )
    compliance = add(
        "compliance",
        "policy compliance exceptions / مخالفات السياسة",
        cmd_compliance,
        source="both",
    )
    compliance.add_argument(
        "--check",
        action="append",
        dest="checks",
        choices=sorted(REGISTRY),
        help="run only this check (repeatable)",
    )
    compliance.add_argument(
        "--as-of",
        dest="as_of",
        type=moment_argument,
        default=None,
        help="audit the history as it stood at this moment (ISO moment or day); "
        "also the clock of the time-based checks (default: now)",
    )
    compliance.add_argument(
        "--hijri",
        type=hijri_argument,
        help="--as-of a Hijri day, Umm al-Qura (1448-06-11): the end of that day",
    )
    access = add(
        "access",
        "who read which case file or member record, and when / سجل الاطلاع",
        cmd_access,
        source=None,
    )
    access.add_argument("--case", help="only the reads of this case (id or reference)")
    access.add_argument("--who", help="only the reads by this subject (actor id or name)")
    access.add_argument("--association", help="only the reads in this association")
    access.add_argument(
        "--from",
        dest="start",
        type=start_argument,
        help="from this moment (ISO) or day (its start, Riyadh)",
    )
    access.add_argument(
        "--to", dest="end", type=moment_argument, help="up to this moment (ISO) or day (its end)"
    )
    roles = add(
        "roles",
        "who held which role where and when (the identity store) / سجل الأدوار",
        cmd_roles,
        source=None,
    )
    roles.add_argument("user", nargs="?", help="a user name, or a user's id (a token's subject)")
    roles.add_argument("--role", help="with --association and --at: was it held then?")
    roles.add_argument("--association", help="the association of --role")
    roles.add_argument(
        "--at", type=moment_argument, help="the moment (ISO) or day (its end); default now"
    )
    for grace_parser in (compliance, crosscheck):
        grace_parser.add_argument(
            "--grace-minutes",
            type=float,
            default=DEFAULT_GRACE.total_seconds() / 60,
            help="events this recent may not be followed up yet (published, survey invitation sent): "
            f"not reported (default {DEFAULT_GRACE.total_seconds() / 60:g})",
        )

    policy = subparsers.add_parser(
        "policy", help="the policy's versions: in force when, and what changed / إصدارات السياسة"
    )
    policy_commands = policy.add_subparsers(dest="policy_command", required=True)
    versions = policy_commands.add_parser(
        "versions", help="the version in force at a moment / الإصدار النافذ في لحظة"
    )
    versions.add_argument("--json", action="store_true", help="JSON output")
    versions.add_argument(
        "--as-of", dest="as_of", type=moment_argument, default=None, help="ISO moment or day"
    )
    versions.add_argument(
        "--hijri", type=hijri_argument, help="a Hijri day, Umm al-Qura (1448-06-11): its end"
    )
    versions.set_defaults(func=cmd_policy_versions)
    diff = policy_commands.add_parser(
        "diff", help="what changed between two versions / الفرق بين إصدارين"
    )
    diff.add_argument("association", help="the association id")
    diff.add_argument(
        "before",
        nargs="?",
        type=int,
        help="the earlier version (default: the one before the latest)",
    )
    diff.add_argument("after", nargs="?", type=int, help="the later version (default: the latest)")
    diff.add_argument("--json", action="store_true", help="JSON output")
    diff.set_defaults(func=cmd_policy_diff)

    export = add(
        "export",
        "everything held on one person (PDPL access export) / تصدير بيانات صاحب البيانات",
        cmd_export,
        source=None,
    )
    export.add_argument("--association", required=True, help="the person's association")
    export.add_argument("--national-id", dest="national_id", required=True)
    export.add_argument(
        "--username",
        default=None,
        help="the person's staff account, if they have one: its identity records are exported",
    )
    export.add_argument("--format", choices=("json", "html"), default="json")
    export.add_argument(
        "--lang",
        choices=("ar", "en"),
        default="ar",
        help="the HTML's language: Arabic (right to left) or English, the other beside it",
    )
    export.add_argument("--out", type=Path, default=None, help="a new file (0600); else stdout")

    tamper_module.register_commands(subparsers)
    report_module.register_commands(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    if args.nats_url is not None:
        overrides["nats_url"] = args.nats_url
    if args.store is not None:
        overrides["store"] = args.store
    settings = load_audit_settings(**overrides)
    if args.command == "compliance" and args.source != "stores" and not settings.nats_url:
        # Without a broker, the stores alone are the history.
        args.source = "stores"
    if args.command == "timeline" and args.source == "both" and not settings.nats_url:
        args.source = "stores"
    handler = getattr(args, "func", None) or args.handler
    try:
        return int(handler(args, settings) or 0)
    except StreamUnavailable as error:
        # A wrong password or an unreachable server: say so, never hang.
        print(f"{error.message['en']}\n{error.message['ar']}", file=sys.stderr)
        return 2
    except MasterKeyProblem as problem:
        # Another deployment's key file: nothing would open; say so rather than show
        # every personal value as erased.
        print(f"audit: {problem.en}\naudit: {problem.ar}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
