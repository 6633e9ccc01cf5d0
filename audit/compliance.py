"""Policy compliance: every case against the policy, each exception with its proof.

A check is one small function registered with `@check("code", ar=..., en=...)`:
it takes a CaseTimeline and yields ComplianceException objects (use `exception`
to build one). `run_checks(timelines)` runs every registered check on every case.

Checks that need a service's store (a referral's closure is only in the
committee store, a survey invitation only in the surveys store) stay silent on
a timeline built without that store, so a stream-only audit raises no false alarm.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator

from audit.timeline import CaseTimeline, Fact

CheckFunction = Callable[[CaseTimeline], Iterable["ComplianceException"]]


@dataclass(frozen=True)
class ComplianceException:
    check: str
    case_id: str
    case_ref: str
    association_id: str
    message: dict[str, str]  # {"ar": ..., "en": ...}
    event_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Check:
    code: str
    title: dict[str, str]
    run: CheckFunction


REGISTRY: dict[str, Check] = {}


def check(code: str, *, ar: str, en: str) -> Callable[[CheckFunction], CheckFunction]:
    """Registers a check under `code` with its title in Arabic and English."""

    def register(function: CheckFunction) -> CheckFunction:
        REGISTRY[code] = Check(code, {"ar": ar, "en": en}, function)
        return function

    return register


def exception(
    code: str, timeline: CaseTimeline, ar: str, en: str, event_ids: Iterable[str | None]
) -> ComplianceException:
    return ComplianceException(
        check=code,
        case_id=timeline.case_id,
        case_ref=timeline.case_ref,
        association_id=timeline.association_id,
        message={"ar": ar, "en": en},
        event_ids=[e for e in dict.fromkeys(event_ids) if e],
    )


def run_checks(
    timelines: Iterable[CaseTimeline], checks: Iterable[str] | None = None
) -> Iterator[ComplianceException]:
    """Every exception of every case, case by case, check by check."""
    selected = [REGISTRY[code] for code in checks] if checks else list(REGISTRY.values())
    for timeline in timelines:
        for registered in selected:
            yield from registered.run(timeline)


# --- the policy's rules ---------------------------------------------------------


def _approved_before(timeline: CaseTimeline, moment: datetime) -> Fact | None:
    for decision in timeline.facts("CommitteeDecided"):
        if decision.data.get("decision") == "approved" and decision.occurred_at <= moment:
            return decision
    return None


@check(
    "delivered_without_approval",
    ar="تسليم الخدمة دون قرار موافقة من اللجنة",
    en="Service delivered without an approved committee decision",
)
def delivered_without_approval(timeline: CaseTimeline) -> Iterator[ComplianceException]:
    for delivery in timeline.facts("ServiceDelivered"):
        if _approved_before(timeline, delivery.occurred_at) is None:
            others = [d.event_id for d in timeline.facts("CommitteeDecided")]
            yield exception(
                "delivered_without_approval", timeline,
                "سُلّمت الخدمة دون قرار موافقة سابق من لجنة البحث.",
                "The service was delivered without an earlier approval by the research committee.",
                [delivery.event_id, *others],
            )


@check(
    "decision_without_verification",
    ar="قرار دون تحقق من البيانات",
    en="Decision without verification",
)
def decision_without_verification(timeline: CaseTimeline) -> Iterator[ComplianceException]:
    verifications = timeline.facts("DataVerified")
    for decision in timeline.facts("CommitteeDecided"):
        if not any(v.occurred_at <= decision.occurred_at for v in verifications):
            yield exception(
                "decision_without_verification", timeline,
                "قررت اللجنة قبل أن يتحقق الموظف من البيانات.",
                "The committee decided before the data was verified.",
                [decision.event_id],
            )


def _attestation_problem(attestation: Any) -> tuple[str, str] | None:
    if not isinstance(attestation, dict):
        return ("لا يوجد إقرار من مقدم الطلب.", "The applicant's declaration is missing.")
    if not attestation.get("attested"):
        return ("مقدم الطلب لم يوقّع الإقرار.", "The applicant did not sign the declaration.")
    if not attestation.get("data_hash"):
        return (
            "الإقرار لا يحمل بصمة البيانات المقرّ بها.",
            "The declaration does not carry the hash of the data attested.",
        )
    return None


@check(
    "file_without_declaration",
    ar="ملف لدى اللجنة دون إقرار مقدم الطلب",
    en="Committee file without the applicant's declaration",
)
def file_without_declaration(timeline: CaseTimeline) -> Iterator[ComplianceException]:
    for request in timeline.facts("RequestReceived"):
        problem = _attestation_problem(request.data.get("attestation"))
        if problem is None:
            continue
        decisions = [d.event_id for d in timeline.facts("CommitteeDecided")]
        in_committee = decisions or timeline.store_events("committee", "CommitteeCase.RequestRecorded")
        if in_committee:
            yield exception(
                "file_without_declaration", timeline,
                "وصل الملف إلى لجنة البحث دون إقرار صحيح: " + problem[0],
                "The file reached the research committee without a valid declaration: " + problem[1],
                [request.event_id, *decisions],
            )


@check(
    "decision_after_window",
    ar="قرار بعد المهلة",
    en="Decision after the window",
)
def decision_after_window(timeline: CaseTimeline) -> Iterator[ComplianceException]:
    for decision in timeline.facts("CommitteeDecided"):
        deadline = decision.data.get("deadline")
        late = decision.data.get("within_window") is False
        if deadline:
            due = _as_time(deadline)
            late = late or decision.occurred_at > due
        if late:
            days = decision.data.get("window_days")
            yield exception(
                "decision_after_window", timeline,
                f"صدر القرار بعد مهلة اللجنة ({days} يومًا).",
                f"The decision came after the committee's window ({days} days).",
                [decision.event_id],
            )


@check(
    "referral_never_closed",
    ar="إحالة إلى الباحث الاجتماعي لم تُغلق",
    en="Referral to the social researcher never closed",
)
def referral_never_closed(timeline: CaseTimeline) -> Iterator[ComplianceException]:
    if not timeline.has_store("committee"):
        return
    closed = {
        str(e.data.get("referral_event_id"))
        for e in timeline.store_events("committee", "CommitteeCase.ReferralClosed")
    }
    decisions = timeline.facts("CommitteeDecided")
    now = datetime.now(timezone.utc)
    for referral in timeline.facts("ReferredToResearcher"):
        if referral.event_id in closed:
            continue
        window = _window_days(timeline)
        overdue = (now - referral.occurred_at).days > window
        if decisions or overdue:
            yield exception(
                "referral_never_closed", timeline,
                "أُحيل مقدم الطلب إلى الباحث الاجتماعي ولم تُغلق الإحالة"
                + (" قبل القرار." if decisions else f" خلال {window} يومًا."),
                "The applicant was referred to the social researcher and the referral was never closed"
                + (" before the decision." if decisions else f" within {window} days."),
                [referral.event_id, *(d.event_id for d in decisions)],
            )


@check(
    "no_survey_invitation",
    ar="لا دعوة لقياس الرضا بعد التسليم أو الرفض",
    en="No survey invitation after delivery or rejection",
)
def no_survey_invitation(timeline: CaseTimeline) -> Iterator[ComplianceException]:
    if not timeline.has_store("surveys"):
        return
    invited = timeline.store_events("surveys", "Survey.Invited")
    ends = list(timeline.facts("ServiceDelivered")) + [
        d for d in timeline.facts("CommitteeDecided") if d.data.get("decision") == "rejected"
    ]
    if ends and not invited:
        yield exception(
            "no_survey_invitation", timeline,
            "لم تُرسل دعوة قياس الرضا بعد تسليم الخدمة أو رفض الطلب.",
            "No satisfaction survey invitation followed the delivery or the rejection.",
            [end.event_id for end in ends],
        )


@check(
    "votes_below_quorum",
    ar="تصويت دون النصاب",
    en="Votes below quorum",
)
def votes_below_quorum(timeline: CaseTimeline) -> Iterator[ComplianceException]:
    for decision in timeline.facts("CommitteeDecided"):
        quorum = decision.data.get("quorum")
        if not quorum:
            continue
        present = list(dict.fromkeys(decision.data.get("members_present") or []))
        recused = set(decision.data.get("recusals") or [])
        able = [m for m in present if m not in recused]
        if len(present) < quorum or len(able) < quorum:
            yield exception(
                "votes_below_quorum", timeline,
                f"قررت اللجنة بحضور {len(able)} عضوًا يحق لهم التصويت والنصاب {quorum}.",
                f"The committee decided with {len(able)} voting members present; the quorum is {quorum}.",
                [decision.event_id],
            )


@check(
    "vote_by_recused_member",
    ar="تصويت عضو متنحٍّ",
    en="A vote by a recused member",
)
def vote_by_recused_member(timeline: CaseTimeline) -> Iterator[ComplianceException]:
    for decision in timeline.facts("CommitteeDecided"):
        recused = set(decision.data.get("recusals") or [])
        for vote in decision.data.get("votes") or []:
            if vote.get("member") in recused:
                member = vote.get("member")
                yield exception(
                    "vote_by_recused_member", timeline,
                    f"صوّت العضو {member} وقد تنحّى عن هذه الحالة.",
                    f"Member {member} voted although recused from this case.",
                    [decision.event_id],
                )


def _as_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _window_days(timeline: CaseTimeline) -> int:
    for entry in timeline.entries:
        if entry.data.get("window_days"):
            return int(entry.data["window_days"])
    return 14
