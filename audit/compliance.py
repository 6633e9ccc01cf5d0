"""Policy compliance: every case against the policy, each exception with its proof.

A check is one small function registered with `@check("code", ar=..., en=...)`:
it takes a CaseTimeline (and, if it asks for it, the CheckContext: the policy
packs, the audit's moment, the grace period) and yields ComplianceException
objects (use `exception` to build one). `run_checks(timelines)` runs every
registered check on every case.

Each exception carries `proven_at`, the moment it became certain: the event
that proves it (the late decision, the delivery without approval) or, for what
only the passing of time proves (a referral left open past the window, a survey
invitation still missing after the grace period), the moment that time ran out.
A report over a period lists the exceptions proven in the period.

Checks that need a service's store (a referral's closure is only in the
committee store, a survey invitation only in the surveys store, the roles'
history only in the identity store) declare it (`needs_stores`) and stay
silent on a timeline built without that store, so a stream-only audit raises
no false alarm; `checks_not_run` names them, so a report can say which checks
it could not run.

The committee's own claims (its recorded deadline, `within_window`, quorum) are
not trusted when the association's policy pack is known: the window and the
quorum are recomputed from the pack, as the committee service computes them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from audit.personal import is_unknown
from audit.timeline import CaseTimeline, Fact, TimelineEntry
from shared.policy import Policies, UnknownPolicyVersion

#: Events recorded this recently may not have been followed up yet (an invitation
#: is sent a moment after a delivery): not an exception on a live system.
DEFAULT_GRACE = timedelta(minutes=5)


@dataclass(frozen=True)
class CheckContext:
    """What a check may know beyond the case: the policy, the audit's moment, the grace."""

    #: association id -> shared.policy.PolicyPack
    packs: Mapping[str, Any] = field(default_factory=dict)
    #: the moment of the audit (the `--as-of` moment, or the clock when it started)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    grace: timedelta = DEFAULT_GRACE
    #: who held which role where and when, replayed from the identity store
    #: (audit.roles.RoleHistory); None when that store was not read
    roles: Any = None

    def pack(self, association_id: str) -> Any:
        return self.packs.get(association_id)

    @cached_property
    def policies(self) -> Policies:
        """The packs as policy histories, made once for every check of every case."""
        return Policies.of(self.packs)


CheckFunction = Callable[..., Iterable["ComplianceException"]]


@dataclass(frozen=True)
class ComplianceException:
    check: str
    case_id: str
    case_ref: str
    association_id: str
    message: dict[str, str]  # {"ar": ..., "en": ...}
    event_ids: list[str] = field(default_factory=list)
    #: when the exception became certain (see the module's docstring); None when unknown
    proven_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document["proven_at"] = self.proven_at.isoformat() if self.proven_at else None
        return document


@dataclass(frozen=True)
class Check:
    code: str
    title: dict[str, str]
    function: CheckFunction
    #: the services whose store the check reads; silent without them
    needs_stores: tuple[str, ...] = ()
    #: True when the check compares with the policy packs; silent without them
    needs_packs: bool = False

    def run(
        self, timeline: CaseTimeline, context: CheckContext | None = None
    ) -> Iterable[ComplianceException]:
        if _takes_context(self.function):
            return self.function(timeline, context or CheckContext())
        return self.function(timeline)


def _takes_context(function: CheckFunction) -> bool:
    return len(inspect.signature(function).parameters) >= 2


REGISTRY: dict[str, Check] = {}


def check(
    code: str,
    *,
    ar: str,
    en: str,
    needs_stores: Iterable[str] = (),
    needs_packs: bool = False,
) -> Callable[[CheckFunction], CheckFunction]:
    """Registers a check under `code` with its title in Arabic and English.

    The function takes the timeline, or the timeline and the CheckContext.
    """

    def register(function: CheckFunction) -> CheckFunction:
        REGISTRY[code] = Check(
            code, {"ar": ar, "en": en}, function, tuple(needs_stores), needs_packs
        )
        return function

    return register


def exception(
    code: str,
    timeline: CaseTimeline,
    ar: str,
    en: str,
    event_ids: Iterable[str | None],
    *,
    proven_at: datetime | None = None,
) -> ComplianceException:
    """An exception of the case; the first of `event_ids` is the event that proves it
    (its moment is `proven_at` unless given: see the module's docstring)."""
    ids = [e for e in dict.fromkeys(event_ids) if e]
    if proven_at is None and ids:
        proven_at = min(
            (e.occurred_at for e in timeline.entries if e.event_id == ids[0]), default=None
        )
    return ComplianceException(
        check=code,
        case_id=timeline.case_id,
        case_ref=timeline.case_ref,
        association_id=timeline.association_id,
        message={"ar": ar, "en": en},
        event_ids=ids,
        proven_at=proven_at,
    )


def run_checks(
    timelines: Iterable[CaseTimeline],
    checks: Iterable[str] | None = None,
    *,
    context: CheckContext | None = None,
) -> Iterator[ComplianceException]:
    """Every exception of every case, case by case, check by check."""
    selected = [REGISTRY[code] for code in checks] if checks else list(REGISTRY.values())
    context = context or CheckContext()
    for timeline in timelines:
        for registered in selected:
            yield from registered.run(timeline, context)


def checks_not_run(
    stores_read: Iterable[str],
    *,
    packs: Mapping[str, Any] | None = None,
    checks: Iterable[str] | None = None,
) -> list[str]:
    """The checks that cannot run: a store they need was not read, or no policy pack was loaded."""
    read = set(stores_read)
    selected = [REGISTRY[code] for code in checks] if checks else list(REGISTRY.values())
    return [
        registered.code
        for registered in selected
        if not set(registered.needs_stores) <= read or (registered.needs_packs and not packs)
    ]


def truncated_at(timeline: CaseTimeline, at: datetime) -> CaseTimeline | None:
    """The case as its history stood at `at` (None when it had not begun)."""
    entries = [e for e in timeline.entries if e.occurred_at <= at]
    if not entries:
        return None
    return CaseTimeline(timeline.case_id, entries, timeline.stores_read, timeline.stream_read)


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
                "delivered_without_approval",
                timeline,
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
    """The decision must follow a DataVerified of the latest request revision received before it.

    After verification found discrepancies the applicant corrects the data and the
    request is published again with the next revision: a decision on the earlier
    revision's verification was taken on data that was never verified.
    """
    requests = timeline.facts("RequestReceived")
    verifications = timeline.facts("DataVerified")
    for decision in timeline.facts("CommitteeDecided"):
        before = [v for v in verifications if v.occurred_at <= decision.occurred_at]
        if not before:
            yield exception(
                "decision_without_verification",
                timeline,
                "قررت اللجنة قبل أن يتحقق الموظف من البيانات.",
                "The committee decided before the data was verified.",
                [decision.event_id],
            )
            continue
        received = [r for r in requests if r.occurred_at <= decision.occurred_at]
        if not received:
            continue
        latest = max(received, key=lambda r: (revision_of(r), r.occurred_at))
        wanted = revision_of(latest)
        if any(revision_of(v) == wanted for v in before):
            continue
        verified = max(revision_of(v) for v in before)
        yield exception(
            "decision_without_verification",
            timeline,
            f"قررت اللجنة على تحقق النسخة {verified} من الطلب، ولم يُتحقق من النسخة {wanted} "
            "التي صحّح فيها مقدم الطلب بياناته قبل القرار.",
            f"The committee decided on the verification of revision {verified} of the request; "
            f"revision {wanted}, the applicant's corrected data, was not verified before the decision.",
            [decision.event_id, latest.event_id, *(v.event_id for v in before)],
        )


def revision_of(fact: Fact) -> int:
    """The request revision a RequestReceived carries or a DataVerified verified (1 before revisions)."""
    try:
        return int(fact.data.get("revision") or 1)
    except (TypeError, ValueError):
        return 1


def _attestation_problem(attestation: Any) -> tuple[str, str] | None:
    if attestation is NOT_JUDGED:
        return None
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


NOT_JUDGED: Any = object()


def _declaration(request: Fact, recorded: list[TimelineEntry]) -> Any:
    """The request's declaration; when it cannot be read (the applicant's data was
    erased, or the audit has no key file), what the committee recorded of it
    (`attested`, not personal); NOT_JUDGED when nothing says."""
    attestation = request.data.get("attestation")
    if not is_unknown(attestation):
        return attestation
    flags = [e.data.get("attested") for e in recorded if isinstance(e.data.get("attested"), bool)]
    if not flags:
        return NOT_JUDGED
    return {"attested": flags[-1], "data_hash": "recorded by the committee"}


@check(
    "file_without_declaration",
    ar="ملف لدى اللجنة دون إقرار مقدم الطلب",
    en="Committee file without the applicant's declaration",
)
def file_without_declaration(timeline: CaseTimeline) -> Iterator[ComplianceException]:
    for request in timeline.facts("RequestReceived"):
        recorded = timeline.store_events("committee", "CommitteeCase.RequestRecorded")
        problem = _attestation_problem(_declaration(request, recorded))
        if problem is None:
            continue
        decided = timeline.facts("CommitteeDecided")
        decisions = [d.event_id for d in decided]
        if decisions or recorded:
            # Proven when the file reached the committee: recorded there, or decided on.
            reached = [e.occurred_at for e in recorded] + [d.occurred_at for d in decided]
            later = [moment for moment in reached if moment >= request.occurred_at]
            yield exception(
                "file_without_declaration",
                timeline,
                "وصل الملف إلى لجنة البحث دون إقرار صحيح: " + problem[0],
                "The file reached the research committee without a valid declaration: "
                + problem[1],
                [request.event_id, *decisions],
                proven_at=min(later) if later else request.occurred_at,
            )


def _first_receipt(timeline: CaseTimeline) -> Fact | None:
    """The request as first received: the committee's window starts there, once (later
    revisions do not move it; services/committee: the first request recorded wins)."""
    requests = timeline.facts("RequestReceived")
    return requests[0] if requests else None


def governing_version(timeline: CaseTimeline) -> int | None:
    """The policy version the case's request names (None: published before versions)."""
    receipt = _first_receipt(timeline)
    number = receipt.data.get("policy_version") if receipt is not None else None
    return int(number) if number is not None else None


def governing_pack(timeline: CaseTimeline, context: CheckContext) -> Any:
    """The version of the association's policy that governed the case: the one its
    request names, else the one in force when it was received; None without a pack,
    or when the audit's policies lack the version (policy_version_unknown says so)."""
    receipt = _first_receipt(timeline)
    try:
        return context.policies.governing(
            timeline.association_id,
            governing_version(timeline),
            receipt.occurred_at if receipt is not None else None,
        )
    except UnknownPolicyVersion:
        return None


@check(
    "policy_version_unknown",
    ar="إصدار سياسة غير معروف",
    en="Unknown policy version",
    needs_packs=True,
)
def policy_version_unknown(
    timeline: CaseTimeline, context: CheckContext
) -> Iterator[ComplianceException]:
    number = governing_version(timeline)
    history = context.policies.history(timeline.association_id)
    if number is None or history is None or history.version(number) is not None:
        return
    known = ", ".join(str(pack.number) for pack in history.versions)
    receipt = _first_receipt(timeline)
    yield exception(
        "policy_version_unknown",
        timeline,
        f"يحكم الطلبَ الإصدار {number} من السياسة، وليس في سياسات المراجعة (لديها {known}): "
        "لم تُراجَع المهلة ولا النصاب.",
        f"The request is governed by version {number} of the policy, which the audit's "
        f"policies do not hold (they hold {known}): its window and quorum were not checked.",
        [receipt.event_id if receipt else None],
    )


def policy_deadline(timeline: CaseTimeline, context: CheckContext) -> tuple[int, datetime] | None:
    """(window days, deadline) from the policy version that governed the case, as the
    committee computes it: the receipt of the request plus that version's decision
    window in whole days (services.committee.domain.decision_deadline); None without
    a pack or a receipt."""
    pack = governing_pack(timeline, context)
    receipt = _first_receipt(timeline)
    if pack is None or receipt is None:
        return None
    days = int(pack.decision_window_days)
    return days, receipt.occurred_at + timedelta(days=days)


@check(
    "decision_after_window",
    ar="قرار بعد المهلة",
    en="Decision after the window",
)
def decision_after_window(
    timeline: CaseTimeline, context: CheckContext
) -> Iterator[ComplianceException]:
    policy = policy_deadline(timeline, context)
    for decision in timeline.facts("CommitteeDecided"):
        claimed_within = decision.data.get("within_window")
        days: int | None
        due: datetime | None
        if policy is not None:
            days, due = policy
        else:  # no pack for this association: the committee's record is all there is
            days = decision.data.get("window_days")
            due = _as_time(decision.data["deadline"]) if decision.data.get("deadline") else None
        late = claimed_within is False or (due is not None and decision.occurred_at > due)
        if not late:
            continue
        ar = f"صدر القرار بعد مهلة اللجنة ({days} يومًا)."
        en = f"The decision came after the committee's window ({days} days)."
        if claimed_within is True:
            ar += " وقد سجّلته اللجنة على أنه ضمن المهلة."
            en += " The committee recorded it as within the window."
        receipt = _first_receipt(timeline)
        yield exception(
            "decision_after_window",
            timeline,
            ar,
            en,
            [decision.event_id, receipt.event_id if receipt and policy else None],
        )


@check(
    "window_differs_from_policy",
    ar="مهلة القرار المسجلة تخالف السياسة",
    en="Recorded decision window differs from the policy",
    needs_packs=True,
)
def window_differs_from_policy(
    timeline: CaseTimeline, context: CheckContext
) -> Iterator[ComplianceException]:
    policy = policy_deadline(timeline, context)
    if policy is None:
        return
    days, due = policy
    receipt = _first_receipt(timeline)
    for decision in timeline.facts("CommitteeDecided"):
        recorded_days = decision.data.get("window_days")
        recorded_due = (
            _as_time(decision.data["deadline"]) if decision.data.get("deadline") else None
        )
        wrong_days = recorded_days is not None and int(recorded_days) != days
        # A second's tolerance: the two come from the same instant through JSON.
        wrong_due = recorded_due is not None and abs((recorded_due - due).total_seconds()) > 1
        if not (wrong_days or wrong_due):
            continue
        shown = recorded_due.isoformat() if recorded_due else "—"
        yield exception(
            "window_differs_from_policy",
            timeline,
            f"سجّلت اللجنة مهلة {recorded_days} يومًا تنتهي في {shown}، والسياسة تحدد {days} يومًا "
            f"من استلام الطلب تنتهي في {due.isoformat()}.",
            f"The committee recorded a window of {recorded_days} days ending {shown}; the policy "
            f"gives {days} days from the receipt of the request, ending {due.isoformat()}.",
            [decision.event_id, receipt.event_id if receipt else None],
        )


@check(
    "referral_never_closed",
    ar="إحالة إلى الباحث الاجتماعي لم تُغلق",
    en="Referral to the social researcher never closed",
    needs_stores=("committee",),
)
def referral_never_closed(
    timeline: CaseTimeline, context: CheckContext
) -> Iterator[ComplianceException]:
    if not timeline.has_store("committee"):
        return
    closed = {
        str(e.data.get("referral_event_id"))
        for e in timeline.store_events("committee", "CommitteeCase.ReferralClosed")
    }
    decisions = timeline.facts("CommitteeDecided")
    policy = policy_deadline(timeline, context)
    window = policy[0] if policy else _window_days(timeline)
    for referral in timeline.facts("ReferredToResearcher"):
        if referral.event_id in closed:
            continue
        # The audit's moment, not the wall clock: an audit as of a past day, or a
        # test, sees the referral's age as of then.
        overdue = (context.now - referral.occurred_at).days > window
        if decisions or overdue:
            # Proven by the decision taken with the referral open, or else when the
            # window ran out (the first moment `overdue` holds).
            decided = next(
                (d.occurred_at for d in decisions if d.occurred_at >= referral.occurred_at), None
            )
            proven_at = (
                (decided or referral.occurred_at)
                if decisions
                else (referral.occurred_at + timedelta(days=window + 1))
            )
            yield exception(
                "referral_never_closed",
                timeline,
                "أُحيل مقدم الطلب إلى الباحث الاجتماعي ولم تُغلق الإحالة"
                + (" قبل القرار." if decisions else f" خلال {window} يومًا."),
                "The applicant was referred to the social researcher and the referral was never closed"
                + (" before the decision." if decisions else f" within {window} days."),
                [referral.event_id, *(d.event_id for d in decisions)],
                proven_at=proven_at,
            )


@check(
    "no_survey_invitation",
    ar="لا دعوة لقياس الرضا بعد التسليم أو الرفض",
    en="No survey invitation after delivery or rejection",
    needs_stores=("surveys",),
)
def no_survey_invitation(
    timeline: CaseTimeline, context: CheckContext
) -> Iterator[ComplianceException]:
    if not timeline.has_store("surveys"):
        return
    invited = timeline.store_events("surveys", "Survey.Invited")
    ends = list(timeline.facts("ServiceDelivered")) + [
        d for d in timeline.facts("CommitteeDecided") if d.data.get("decision") == "rejected"
    ]
    # The invitation follows the delivery or the rejection a moment later, once the
    # surveys service has consumed the event: a recent end is not yet an exception.
    settled = [end for end in ends if end.occurred_at <= context.now - context.grace]
    if settled and not invited:
        yield exception(
            "no_survey_invitation",
            timeline,
            "لم تُرسل دعوة قياس الرضا بعد تسليم الخدمة أو رفض الطلب.",
            "No satisfaction survey invitation followed the delivery or the rejection.",
            [end.event_id for end in settled],
            # no invitation once the grace after the first delivery or rejection ran out
            proven_at=min(end.occurred_at for end in settled) + context.grace,
        )


@check(
    "votes_below_quorum",
    ar="تصويت دون النصاب",
    en="Votes below quorum",
)
def votes_below_quorum(
    timeline: CaseTimeline, context: CheckContext
) -> Iterator[ComplianceException]:
    pack = governing_pack(timeline, context)
    for decision in timeline.facts("CommitteeDecided"):
        recorded = decision.data.get("quorum")
        present = list(dict.fromkeys(decision.data.get("members_present") or []))
        if recorded is None and not present:
            continue  # not decided in a sitting: nothing recorded to count
        # The policy's quorum, not the one the committee wrote down.
        quorum = int(pack.committee.quorum) if pack is not None else recorded
        if not quorum:
            continue
        recused = set(decision.data.get("recusals") or [])
        able = [m for m in present if m not in recused]
        if len(present) < quorum or len(able) < quorum:
            yield exception(
                "votes_below_quorum",
                timeline,
                f"قررت اللجنة بحضور {len(able)} عضوًا يحق لهم التصويت والنصاب {quorum}.",
                f"The committee decided with {len(able)} voting members present; the quorum is {quorum}.",
                [decision.event_id],
            )


@check(
    "quorum_differs_from_policy",
    ar="النصاب المسجل يخالف السياسة",
    en="Recorded quorum differs from the policy",
    needs_packs=True,
)
def quorum_differs_from_policy(
    timeline: CaseTimeline, context: CheckContext
) -> Iterator[ComplianceException]:
    pack = governing_pack(timeline, context)
    if pack is None:
        return
    quorum = int(pack.committee.quorum)
    for decision in timeline.facts("CommitteeDecided"):
        recorded = decision.data.get("quorum")
        if recorded is None or int(recorded) == quorum:
            continue
        yield exception(
            "quorum_differs_from_policy",
            timeline,
            f"سجّلت اللجنة نصابًا قدره {recorded} والسياسة تحدده بـ {quorum}.",
            f"The committee recorded a quorum of {recorded}; the policy sets it at {quorum}.",
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
                    "vote_by_recused_member",
                    timeline,
                    f"صوّت العضو {member} وقد تنحّى عن هذه الحالة.",
                    f"Member {member} voted although recused from this case.",
                    [decision.event_id],
                )


@check(
    "verification_override",
    ar="تجاوز نتيجة التحقق",
    en="A verification override",
)
def verification_override(timeline: CaseTimeline) -> Iterator[ComplianceException]:
    """Every override is listed with its reason: a check that failed and was passed
    over by an officer is for the board to see, whatever the reason given."""
    for verification in timeline.facts("DataVerified"):
        reason = verification.data.get("override_reason")
        if not reason:
            continue
        failed = [
            str(c.get("name"))
            for c in verification.data.get("checks") or []
            if isinstance(c, Mapping) and not c.get("passed", True)
        ]
        officer = _who(verification.actor) or verification.data.get("officer") or "?"
        overridden = "، ".join(failed) or "—"
        overridden_en = ", ".join(failed) or "—"
        said_ar, said_en = _words(reason)
        yield exception(
            "verification_override",
            timeline,
            f"تجاوز الموظف {officer} نتيجة التحقق (الفحوص غير المستوفاة: {overridden}) "
            f"بالسبب: «{said_ar}».",
            f"Officer {officer} overrode the verification (checks not met: {overridden_en}) "
            f"with the reason: “{said_en}”.",
            [verification.event_id],
        )


def _words(value: Any) -> tuple[str, str]:
    """Staff's words as the board reads them, in Arabic and English: as written, or
    what stands for them once they cannot be read (erased, sealed without the key)."""
    if is_unknown(value) and isinstance(value, Mapping) and "ar" in value:
        return str(value["ar"]), str(value["en"])
    if is_unknown(value):
        return "مُشفَّر", "sealed"
    return str(value), str(value)


def _who(actor: Mapping[str, Any] | None) -> str | None:
    """The actor as the board reads it: the name, and the id when it differs."""
    if not actor or not actor.get("id"):
        return None
    name, subject = actor.get("name"), str(actor["id"])
    return f"{name} ({subject})" if name and name != subject else subject


# The roles each action may be taken in (the routes' table, docs/decisions.md):
# an actor recorded in another role acted outside what the action allows. An
# event not listed is judged only on whether its actor held the role recorded.
ROLES_OF_ACTION: dict[str, frozenset[str]] = {
    "DataVerified": frozenset({"verifier"}),
    "ReferredToResearcher": frozenset({"front_desk"}),
    "CommitteeDecided": frozenset({"committee_chair"}),
    "ServiceDelivered": frozenset({"front_desk"}),
    "CommitteeCase.ReferralClosed": frozenset({"researcher"}),
    "Sitting.VoteCast": frozenset({"committee_member", "committee_chair"}),
    "Sitting.MemberRecused": frozenset({"committee_member", "committee_chair"}),
}
CHANNEL_ROLE = "channel:"
# RequestReceived: the front desk, or an adapter in the request's channel.
ROLES_OF_ACTION_BY_CHANNEL = frozenset({"RequestReceived"})


def _action_allows(entry: Any, role: str) -> bool:
    if entry.event_type in ROLES_OF_ACTION_BY_CHANNEL:
        channel = entry.data.get("channel") or entry.channel
        return role == "front_desk" or role == f"{CHANNEL_ROLE}{channel}"
    allowed = ROLES_OF_ACTION.get(entry.event_type) or ROLES_OF_ACTION.get(entry.name)
    return allowed is None or role in allowed


@check(
    "acted_without_role",
    ar="إجراء ممن لم يكن يحمل الدور اللازم حينها",
    en="An action by someone who did not hold the role it needs at that moment",
    needs_stores=("identity",),
)
def acted_without_role(
    timeline: CaseTimeline, context: CheckContext
) -> Iterator[ComplianceException]:
    """Each action whose recorded actor names a role: did that person hold the role, in
    the case's association, when they acted (the identity store's history, replayed)?
    And is it a role the action is taken in? An actor with no role recorded (events
    from before identities were proven, the applicant, the system) is not judged, nor
    is one the identity store does not know (another issuer's subject)."""
    history = context.roles
    if history is None:
        return
    seen: set[Any] = set()
    for entry in timeline.entries:
        actor = entry.actor or {}
        role, subject = actor.get("role"), actor.get("id")
        if not role or not subject:
            continue
        key = entry.event_id or (entry.service, entry.position)
        if key in seen:
            continue
        seen.add(key)
        association_id = entry.association_id or timeline.association_id
        who = _who(actor) or subject
        when = entry.occurred_at.isoformat()
        held = history.held(subject, role, association_id, entry.occurred_at)
        allowed = _action_allows(entry, role)
        if held is not False and allowed:
            continue
        if entry.event_id:
            evidence: list[str | None] = [entry.event_id]
        else:  # an internal event (a vote): the decisions it led to prove it
            evidence = [
                d.event_id
                for d in timeline.facts("CommitteeDecided")
                if d.occurred_at >= entry.occurred_at
            ]
        if held is False:
            ar = (
                f"قام {who} بالإجراء {entry.event_type} في {when} بصفة {role} في {association_id}، "
                "ولم يكن يحمل هذا الدور حينها"
            )
            en = (
                f"{who} took the action {entry.event_type} on {when} as {role} in "
                f"{association_id}, a role they did not hold at that moment"
            )
            ended = _ended_before(history, subject, role, association_id, entry.occurred_at)
            if ended is not None:
                ar += f" (سُحب منه في {ended.until.isoformat()} بواسطة {ended.revoked_by})"
                en += f" (revoked on {ended.until.isoformat()} by {ended.revoked_by})"
            ar += "."
            en += "."
        else:
            ar = (
                f"قام {who} بالإجراء {entry.event_type} في {when} بصفة {role}، "
                "وهذا الإجراء لا يُتخذ بهذا الدور."
            )
            en = (
                f"{who} took the action {entry.event_type} on {when} as {role}, "
                "a role this action is not taken in."
            )
        yield exception(
            "acted_without_role",
            timeline,
            ar,
            en,
            evidence,
            proven_at=entry.occurred_at,
        )


def _ended_before(
    history: Any, subject: str, role: str, association_id: str, moment: datetime
) -> Any:
    """The last period of the role there that ended before the moment, if any."""
    holder = history.holder(subject)
    periods = [
        p
        for p in (holder.periods if holder else [])
        if p.role == role
        and p.association_id == association_id
        and p.until is not None
        and p.until <= moment
    ]
    return max(periods, key=lambda p: p.until) if periods else None


def _as_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _window_days(timeline: CaseTimeline) -> int:
    for entry in timeline.entries:
        if entry.data.get("window_days"):
            return int(entry.data["window_days"])
    return 14


@check(
    "held_by_dead_letter",
    ar="طلب موقوف بسبب رسالة تعذّرت معالجتها",
    en="Case held by a dead letter",
    needs_stores=("intake",),
)
def held_by_dead_letter(
    timeline: CaseTimeline, context: CheckContext
) -> Iterator[ComplianceException]:
    """A case a dead letter still holds (intake's Case.Held, not lifted by its replay).

    It is proven at the audit's moment: the case is stuck as of then, whenever
    the message was set aside, so a board report lists every case still held.
    """
    holds: dict[str, TimelineEntry] = {}
    for entry in timeline.entries:
        if entry.source != "store" or entry.service != "intake":
            continue
        key = str(entry.data.get("key"))
        if entry.name == "Case.Held":
            holds[key] = entry
        elif entry.name == "Case.HoldLifted":
            holds.pop(key, None)
    for key, held in holds.items():
        service, reason = held.data.get("service"), held.data.get("reason")
        yield exception(
            "held_by_dead_letter",
            timeline,
            f"الطلب موقوف منذ {held.occurred_at:%Y-%m-%d %H:%M} UTC: رسالة تخصه نحّتها خدمة "
            f"{service} (الرسالة المنحّاة {key}) ولم تُعَد بعد. السبب: {reason}",
            f"The case has been held since {held.occurred_at:%Y-%m-%d %H:%M} UTC: a message "
            f"about it was set aside by {service} (dead letter {key}) and not replayed yet. "
            f"Reason: {reason}",
            [],
            proven_at=context.now,
        )
