"""Compliance checks: each rule fires on a history that breaks it, with the events
that prove it, and stays silent on a clean history. Also: adding a check is one
function.

`CaseHistory` builds a case's history as the services record it: the
integration events (shared.events models, as the stream holds them) and the
domain events of each service's store (topic + state, as the stores hold them).
The integration tests write the same histories to real SQLite stores and a
real nats-server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator
from uuid import UUID, uuid4

import pytest

from audit import compliance
from audit.asof import state_at
from audit.compliance import REGISTRY, check, exception, run_checks
from audit.replay import StoredRecord, StreamRecord
from audit.stores import READABLE, SERVICES
from audit.timeline import CaseTimeline, entry_from_store, entry_from_stream
from shared import events as ev
from shared.subjects import event_subject

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc)
HASH = "a" * 64
SIGNED = {"attested": True, "attested_by": "Applicant", "attested_at": T0.isoformat(),
          "method": "in_person", "data_hash": HASH}


@dataclass
class StoreEvent:
    service: str
    originator_id: UUID
    topic: str
    state: dict[str, Any]


@dataclass
class CaseHistory:
    """One case's history in both forms; each step returns its event id."""

    ref: str = "SDR-1448-000001"
    association_id: str = "sidr"
    case_id: UUID = field(default_factory=uuid4)
    channel: str = "website"
    window_days: int = 14
    published: list[ev.IntegrationEvent] = field(default_factory=list)
    stored: list[StoreEvent] = field(default_factory=list)
    request_id: UUID | None = None

    # -- building blocks --------------------------------------------------------
    def _store(self, service: str, topic: str, when: datetime, /, _originator: UUID | None = None,
               **state: Any) -> None:
        self.stored.append(StoreEvent(service, _originator or self.case_id, topic, {"timestamp": when, **state}))

    def _common(self, event_id: UUID, at: datetime, cause: UUID | None) -> dict[str, Any]:
        return dict(event_id=event_id, occurred_at=at, association_id=self.association_id,
                    case_id=self.case_id, case_ref=self.ref, correlation_id=self.request_id or event_id,
                    causation_id=cause)

    def _publish(self, event: ev.IntegrationEvent, publish: bool) -> None:
        if publish:
            self.published.append(event)

    # -- the policy's steps -----------------------------------------------------
    def received(self, at: datetime = T0, attestation: dict[str, Any] | None = SIGNED,
                 *, publish: bool = True, store: bool = True, revision: int = 1,
                 corrects: UUID | None = None) -> UUID:
        """The request; revision 2, 3 … is the request published again after the applicant
        corrected it (`corrects`: the DataVerified it answers), same correlation id."""
        event_id = uuid4()
        first = self.request_id
        if revision == 1 or first is None:
            self.request_id = event_id
        payload = dict(channel=self.channel, channel_ref=f"ref-{event_id}", service_code="seedlings",
                       applicant={"national_id": "1590932917", "name": "Applicant"},
                       fields={"seedling_count": 40}, documents=[], attestation=attestation, submitted_at=at,
                       revision=revision, corrects=corrects)
        common = self._common(event_id, at, None)
        common.pop("causation_id")
        if revision > 1 and first is not None:
            self._publish(ev.RequestReceived(actor=ev.Actor(kind="adapter", id=f"http:{self.channel}"),
                                             payload=ev.RequestReceivedPayload(**payload), **common), publish)
            if store:
                base = dict(association_id=self.association_id, case_ref=self.ref,
                            actor={"kind": "adapter", "id": "http:website"})
                self._store("intake", "services.intake.domain:Case.Resubmitted", at, event_id=event_id, at=at,
                            causation_id=None, correlation_id=first, **base, **payload)
                self._store("verification", "services.verification.domain:Verification.Opened", at,
                            case_id=self.case_id, request_event_id=event_id, association_id=self.association_id,
                            case_ref=self.ref, revision=revision)
            return event_id
        self._publish(ev.RequestReceived(actor=ev.Actor(kind="adapter", id=f"http:{self.channel}"),
                                         payload=ev.RequestReceivedPayload(**payload), **common), publish)
        if store:
            base = dict(association_id=self.association_id, case_ref=self.ref, actor={"kind": "adapter", "id": "http:website"})
            self._store("intake", "services.intake.domain:Case.Submitted", at,
                        originator_topic="services.intake.domain:Case", case_id=self.case_id,
                        received_event_id=event_id, **base, **{k: v for k, v in payload.items()})
            self._store("intake", "services.intake.domain:Case.Completed", at, event_id=event_id, at=at,
                        **base, **{k: v for k, v in payload.items()})
            self._store("intake", "services.intake.domain:ChannelRef.Registered", at, _originator=uuid4(),
                        case_id=self.case_id, channel=self.channel)
            self._store("committee", "services.committee.domain:CommitteeCase.Registered", at,
                        case_id=self.case_id, association_id=self.association_id, case_ref=self.ref,
                        correlation_id=event_id)
            self._store("committee", "services.committee.domain:CommitteeCase.RequestRecorded", at,
                        request_event_id=event_id, channel=self.channel, window_days=self.window_days,
                        deadline=at + timedelta(days=self.window_days), attestation=attestation,
                        attested=bool(attestation and attestation.get("attested")))
            self._store("surveys", "services.surveys.domain:Survey.Registered", at, case_id=self.case_id,
                        association_id=self.association_id, case_ref=self.ref, channel=self.channel)
            self._store("verification", "services.verification.domain:Verification.Opened", at,
                        case_id=self.case_id, request_event_id=event_id, association_id=self.association_id,
                        case_ref=self.ref)
        return event_id

    def verified(self, at: datetime, outcome: str = "verified", *, publish: bool = True, store: bool = True,
                 revision: int = 1, checks: list[dict[str, Any]] | None = None,
                 override_reason: str | None = None, actor: ev.Actor | None = None) -> UUID:
        """`actor`: the principal recorded (default: an officer of before identities)."""
        event_id = uuid4()
        common = self._common(event_id, at, self.request_id)
        checks = checks or []
        actor = actor or ev.Actor(kind="officer", id="officer-2")
        self._publish(ev.DataVerified(actor=actor,
                                      payload=ev.DataVerifiedPayload(outcome=outcome, checks=checks, officer="officer-2",
                                                                     revision=revision,
                                                                     override_reason=override_reason),
                                      **common), publish)
        if store:
            self._store("verification", "services.verification.domain:Verification.Confirmed", at,
                        **{k: common[k] for k in ("event_id", "causation_id", "association_id", "case_ref", "correlation_id")},
                        outcome=outcome, checks=checks, officer="officer-2", confirmed_at=at, revision=revision,
                        override_reason=override_reason, actor=actor.model_dump(mode="json"))
            self._store("committee", "services.committee.domain:CommitteeCase.VerificationRecorded", at,
                        source_event_id=event_id, outcome=outcome, verified_at=at)
            self._store("intake", "services.intake.domain:Case.VerificationNoted", at,
                        source_event_id=event_id, outcome=outcome)
        return event_id

    def referred(self, at: datetime, *, publish: bool = True, store: bool = True) -> UUID:
        event_id = uuid4()
        common = self._common(event_id, at, self.request_id)
        self._publish(ev.ReferredToResearcher(
            actor=ev.Actor(kind="officer", id="officer-1"),
            payload=ev.ReferredToResearcherPayload(reason="unclear", referred_by="officer-1"), **common), publish)
        if store:
            self._store("intake", "services.intake.domain:Case.ReferredToResearcher", at,
                        **{k: common[k] for k in ("event_id", "causation_id", "association_id", "case_ref", "correlation_id")},
                        at=at, reason="unclear", questions=[], referred_by="officer-1")
            self._store("committee", "services.committee.domain:CommitteeCase.ReferralOpened", at,
                        source_event_id=event_id, reason="unclear", questions=[], referred_by="officer-1")
        return event_id

    def referral_closed(self, at: datetime, referral_id: UUID) -> None:
        self._store("committee", "services.committee.domain:CommitteeCase.ReferralClosed", at,
                    referral_event_id=referral_id, researcher="researcher-1", answers=[], note="ok", closed_at=at)

    def decided(self, at: datetime, decision: str = "approved", cause: UUID | None = None, *,
                members: tuple[str, ...] = ("chair", "member-2", "member-3"), quorum: int = 3,
                recusals: tuple[str, ...] = (), voters: tuple[str, ...] | None = None,
                within_window: bool | None = None, publish: bool = True, store: bool = True,
                window_days: int | None = None, deadline: datetime | None = None,
                voters_as: dict[str, ev.Actor] | None = None, cast_at: datetime | None = None,
                actor: ev.Actor | None = None) -> UUID:
        """The decision as the committee records it; `window_days`, `deadline` and
        `within_window` override what it computes (a committee whose record is wrong).
        `voters_as`: the principal each member's vote records (by member; default none,
        as before identities), cast at `cast_at` (default: `at`); `actor`: the decision's."""
        event_id = uuid4()
        window = self.window_days if window_days is None else window_days
        deadline = deadline or (self._received_at() or at) + timedelta(days=window)
        within = at <= deadline if within_window is None else within_window
        vote = "approve" if decision == "approved" else "reject"
        votes = [{"member": m, "vote": vote} for m in (voters if voters is not None else members)]
        common = self._common(event_id, at, cause or self.request_id)
        body = dict(decision=decision, reasons=["criteria"], votes=votes, window_days=window,
                    within_window=within, deadline=deadline, sitting_id="s-1", members_present=list(members),
                    quorum=quorum, recusals=list(recusals), dissent_notes=[])
        self._publish(ev.CommitteeDecided(actor=actor or ev.Actor(kind="committee", id="committee"),
                                          payload=ev.CommitteeDecidedPayload(**body), **common), publish)
        if store:
            sitting = uuid4()
            for item in votes:
                who = (voters_as or {}).get(item["member"])
                recorded = {"actor": who.model_dump(mode="json")} if who else {}
                self._store("committee", "services.committee.domain:Sitting.VoteCast", cast_at or at,
                            _originator=sitting, case_id=self.case_id, case_ref=self.ref, member=item["member"],
                            vote=item["vote"], cast_at=cast_at or at, **recorded)
            self._store("committee", "services.committee.domain:CommitteeCase.Decided", at,
                        **{k: common[k] for k in ("event_id", "causation_id", "association_id", "case_ref", "correlation_id")},
                        decided_at=at, **body)
            self._store("intake", "services.intake.domain:Case.DecisionNoted", at,
                        source_event_id=event_id, decision=decision)
        return event_id

    def delivered(self, at: datetime, cause: UUID | None = None, *, publish: bool = True, store: bool = True) -> UUID:
        event_id = uuid4()
        common = self._common(event_id, at, cause or self.request_id)
        self._publish(ev.ServiceDelivered(
            actor=ev.Actor(kind="officer", id="officer-1"),
            payload=ev.ServiceDeliveredPayload(service_code="seedlings", delivered="40 seedlings", delivered_by="officer-1"),
            **common), publish)
        if store:
            self._store("intake", "services.intake.domain:Case.ServiceDelivered", at,
                        **{k: common[k] for k in ("event_id", "causation_id", "association_id", "case_ref", "correlation_id")},
                        at=at, service_code="seedlings", delivered="40 seedlings", delivered_by="officer-1")
        return event_id

    def invited(self, at: datetime, cause: UUID, stage: str = "delivered") -> None:
        self._store("surveys", "services.surveys.domain:Survey.Invited", at, association_id=self.association_id,
                    case_ref=self.ref, channel=self.channel, stage=stage, causation_id=cause, token="t", invited_at=at)

    def answered(self, at: datetime, cause: UUID, stage: str = "delivered", *, publish: bool = True, store: bool = True) -> UUID:
        event_id = uuid4()
        common = self._common(event_id, at, cause)
        self._publish(ev.SurveyAnswered(
            actor=ev.Actor(kind="applicant", id="anonymous"),
            payload=ev.SurveyAnsweredPayload(ratings=ev.Ratings(satisfaction=5), stage=stage,
                                             service_code="seedlings", channel=self.channel), **common), publish)
        if store:
            self._store("surveys", "services.surveys.domain:Survey.Answered", at,
                        **{k: common[k] for k in ("event_id", "causation_id", "association_id", "case_ref", "correlation_id")},
                        stage=stage, ratings={"satisfaction": 5}, comment=None, anonymous=True, answered_at=at,
                        service_code="seedlings", channel=self.channel)
        return event_id

    def clean(self, *, outcome: str = "approved", referral: bool = False) -> dict[str, UUID]:
        """A lifecycle that follows the policy."""
        ids = {"request": self.received(T0)}
        if referral:
            ids["referral"] = self.referred(T0 + timedelta(hours=1))
            self.referral_closed(T0 + timedelta(hours=3), ids["referral"])
        ids["verified"] = self.verified(T0 + timedelta(hours=2))
        ids["decision"] = self.decided(T0 + timedelta(days=3), outcome, ids["verified"])
        if outcome == "approved":
            ids["delivered"] = self.delivered(T0 + timedelta(days=4), ids["decision"])
            end = ids["delivered"]
        else:
            end = ids["decision"]
        self.invited(T0 + timedelta(days=4, hours=1), end, "delivered" if outcome == "approved" else "rejected")
        ids["answer"] = self.answered(T0 + timedelta(days=5), end)
        return ids

    def _received_at(self) -> datetime | None:
        for event in self.published:
            if isinstance(event, ev.RequestReceived):
                return event.occurred_at
        return None

    # -- as the audit reads them ------------------------------------------------
    def store_records(self) -> Iterator[StoredRecord]:
        versions: dict[UUID, int] = {}
        for position, item in enumerate(self.stored, start=1):
            versions[item.originator_id] = versions.get(item.originator_id, 0) + 1
            state = {k: (str(v) if isinstance(v, UUID) else v) for k, v in item.state.items()}
            yield StoredRecord(item.service, position, str(item.originator_id), versions[item.originator_id],
                               item.topic, state)

    def stream_records(self) -> Iterator[StreamRecord]:
        for sequence, event in enumerate(self.published, start=1):
            yield StreamRecord(sequence, event_subject(event.association_id, event.case_id, event.event_type), event)

    def timeline(self, *, stores: bool = True, stream: bool = True) -> CaseTimeline:
        entries = []
        if stores:
            entries += [e for e in map(entry_from_store, self.store_records()) if e]
        if stream:
            entries += [e for e in map(entry_from_stream, self.stream_records()) if e]
        return CaseTimeline(str(self.case_id), entries, frozenset(SERVICES if stores else ()), stream)


def found(history: CaseHistory, *, context: compliance.CheckContext | None = None,
          **sources: bool) -> list[compliance.ComplianceException]:
    return list(run_checks([history.timeline(**sources)], **({"context": context} if context else {})))


SOURCES = [dict(stores=True, stream=True), dict(stores=True, stream=False), dict(stores=False, stream=True)]


@pytest.mark.parametrize("sources", SOURCES, ids=["both", "stores", "stream"])
@pytest.mark.parametrize("outcome,referral", [("approved", False), ("rejected", False), ("approved", True)])
def test_a_clean_history_raises_no_exception(sources: dict[str, bool], outcome: str, referral: bool) -> None:
    history = CaseHistory()
    history.clean(outcome=outcome, referral=referral)
    assert found(history, **sources) == []


def only(history: CaseHistory, code: str, **sources: bool) -> compliance.ComplianceException:
    exceptions = found(history, **(sources or dict(stores=True, stream=True)))
    assert [e.check for e in exceptions] == [code], exceptions
    item = exceptions[0]
    assert item.case_id == str(history.case_id) and item.case_ref == history.ref
    assert item.association_id == "sidr"
    assert item.message["ar"] and item.message["en"]
    return item


@pytest.mark.parametrize("sources", SOURCES, ids=["both", "stores", "stream"])
def test_delivered_without_an_approved_decision(sources: dict[str, bool]) -> None:
    history = CaseHistory()
    history.received(T0)
    verified = history.verified(T0 + timedelta(hours=1))
    decision = history.decided(T0 + timedelta(days=1), "rejected", verified)
    delivered = history.delivered(T0 + timedelta(days=2), decision)
    history.invited(T0 + timedelta(days=2), delivered)
    item = only(history, "delivered_without_approval", **sources)
    assert item.event_ids == [str(delivered), str(decision)]


def test_delivered_before_the_approval_is_an_exception_too() -> None:
    history = CaseHistory()
    history.received(T0)
    verified = history.verified(T0 + timedelta(hours=1))
    delivered = history.delivered(T0 + timedelta(days=1))
    decision = history.decided(T0 + timedelta(days=2), "approved", verified)
    history.invited(T0 + timedelta(days=2), delivered)
    assert only(history, "delivered_without_approval").event_ids == [str(delivered), str(decision)]


@pytest.mark.parametrize("sources", SOURCES, ids=["both", "stores", "stream"])
def test_decision_without_verification(sources: dict[str, bool]) -> None:
    history = CaseHistory()
    request = history.received(T0)
    decision = history.decided(T0 + timedelta(days=1), "rejected", request)
    history.invited(T0 + timedelta(days=1), decision, "rejected")
    history.verified(T0 + timedelta(days=2))  # too late
    assert only(history, "decision_without_verification", **sources).event_ids == [str(decision)]


@pytest.mark.parametrize(
    "attestation",
    [None, {**SIGNED, "attested": False}, {**SIGNED, "data_hash": None}],
    ids=["missing", "unsigned", "no-data-hash"],
)
@pytest.mark.parametrize("sources", SOURCES, ids=["both", "stores", "stream"])
def test_committee_file_without_the_declaration(attestation: dict[str, Any] | None, sources: dict[str, bool]) -> None:
    history = CaseHistory()
    request = history.received(T0, attestation)
    verified = history.verified(T0 + timedelta(hours=1))
    decision = history.decided(T0 + timedelta(days=1), "rejected", verified)
    history.invited(T0 + timedelta(days=1), decision, "rejected")
    item = only(history, "file_without_declaration", **sources)
    assert item.event_ids == [str(request), str(decision)]


@pytest.mark.parametrize("sources", SOURCES, ids=["both", "stores", "stream"])
def test_decision_after_the_window(sources: dict[str, bool]) -> None:
    history = CaseHistory()
    history.received(T0)
    verified = history.verified(T0 + timedelta(hours=1))
    decision = history.decided(T0 + timedelta(days=20), "rejected", verified)
    history.invited(T0 + timedelta(days=20), decision, "rejected")
    assert only(history, "decision_after_window", **sources).event_ids == [str(decision)]


def test_a_decision_flagged_late_by_the_committee_is_after_the_window() -> None:
    history = CaseHistory()
    history.received(T0)
    verified = history.verified(T0 + timedelta(hours=1))
    decision = history.decided(T0 + timedelta(days=2), "rejected", verified, within_window=False)
    history.invited(T0 + timedelta(days=2), decision, "rejected")
    assert only(history, "decision_after_window").event_ids == [str(decision)]


@pytest.mark.parametrize("sources", SOURCES[:2], ids=["both", "stores"])
def test_referral_never_closed(sources: dict[str, bool]) -> None:
    history = CaseHistory()
    history.received(T0)
    referral = history.referred(T0 + timedelta(hours=1))
    verified = history.verified(T0 + timedelta(hours=2))
    decision = history.decided(T0 + timedelta(days=1), "rejected", verified)
    history.invited(T0 + timedelta(days=1), decision, "rejected")
    assert only(history, "referral_never_closed", **sources).event_ids == [str(referral), str(decision)]
    # The closure is only in the committee's store: a stream-only audit cannot tell.
    assert found(history, stores=False, stream=True) == []


def test_an_open_referral_older_than_the_window_is_never_closed_even_undecided() -> None:
    history = CaseHistory()
    history.received(T0)
    referral = history.referred(T0 + timedelta(hours=1))
    assert only(history, "referral_never_closed").event_ids == [str(referral)]
    recent = CaseHistory()
    recent.received(datetime.now(timezone.utc))
    recent.referred(datetime.now(timezone.utc))
    assert found(recent) == []


@pytest.mark.parametrize("outcome", ["approved", "rejected"])
def test_no_survey_invitation_after_delivery_or_rejection(outcome: str) -> None:
    history = CaseHistory()
    history.received(T0)
    verified = history.verified(T0 + timedelta(hours=1))
    decision = history.decided(T0 + timedelta(days=1), outcome, verified)
    end = history.delivered(T0 + timedelta(days=2), decision) if outcome == "approved" else decision
    assert only(history, "no_survey_invitation").event_ids == [str(end)]
    assert found(history, stores=False, stream=True) == []


@pytest.mark.parametrize(
    "members,recusals,voters",
    [(("chair", "member-2"), (), ("chair", "member-2")),
     (("chair", "member-2", "member-3"), ("member-3",), ("chair", "member-2"))],
    ids=["too-few-present", "too-few-after-recusal"],
)
@pytest.mark.parametrize("sources", SOURCES, ids=["both", "stores", "stream"])
def test_votes_below_quorum(members: tuple[str, ...], recusals: tuple[str, ...], voters: tuple[str, ...],
                            sources: dict[str, bool]) -> None:
    history = CaseHistory()
    history.received(T0)
    verified = history.verified(T0 + timedelta(hours=1))
    decision = history.decided(T0 + timedelta(days=1), "rejected", verified, members=members,
                               recusals=recusals, voters=voters)
    history.invited(T0 + timedelta(days=1), decision, "rejected")
    assert only(history, "votes_below_quorum", **sources).event_ids == [str(decision)]


@pytest.mark.parametrize("sources", SOURCES, ids=["both", "stores", "stream"])
def test_a_vote_by_a_recused_member(sources: dict[str, bool]) -> None:
    history = CaseHistory()
    history.received(T0)
    verified = history.verified(T0 + timedelta(hours=1))
    members = ("chair", "member-2", "member-3", "member-4")
    decision = history.decided(T0 + timedelta(days=1), "rejected", verified, members=members,
                               recusals=("member-4",), voters=members)
    history.invited(T0 + timedelta(days=1), decision, "rejected")
    item = only(history, "vote_by_recused_member", **sources)
    assert item.event_ids == [str(decision)] and "member-4" in item.message["en"]


@pytest.mark.parametrize("sources", SOURCES, ids=["both", "stores", "stream"])
def test_every_verification_override_is_listed_with_its_reason(sources: dict[str, bool]) -> None:
    history = CaseHistory()
    history.received(T0)
    failed_id = {"name": "national_id_check_digit", "passed": False, "detail": "bad digit"}
    verified = history.verified(T0 + timedelta(hours=1), checks=[failed_id, {"name": "phone", "passed": True}],
                                override_reason="trust me")
    decision = history.decided(T0 + timedelta(days=1), "approved", verified)
    history.invited(T0 + timedelta(days=1), decision, "approved")
    item = only(history, "verification_override", **sources)
    assert item.event_ids == [str(verified)]
    assert "trust me" in item.message["en"] and "trust me" in item.message["ar"]
    assert "national_id_check_digit" in item.message["en"] and "phone" not in item.message["en"]


def test_every_rule_of_the_issue_is_registered() -> None:
    assert set(REGISTRY) >= {
        "delivered_without_approval", "decision_without_verification", "file_without_declaration",
        "decision_after_window", "referral_never_closed", "no_survey_invitation",
        "votes_below_quorum", "vote_by_recused_member",
    }
    for registered in REGISTRY.values():
        assert registered.title["ar"] and registered.title["en"]


def test_adding_a_check_is_one_function() -> None:
    try:
        @check("answered_without_invitation_text", ar="اختبار", en="test")
        def channel_missing(timeline: CaseTimeline) -> Iterator[compliance.ComplianceException]:
            for answer in timeline.facts("SurveyAnswered"):
                if answer.data.get("satisfaction") is None and answer.data["ratings"]["satisfaction"] >= 5:
                    yield exception("answered_without_invitation_text", timeline, "رضا تام", "fully satisfied",
                                    [answer.event_id])

        history = CaseHistory()
        ids = history.clean()
        exceptions = found(history)
        assert [(e.check, e.event_ids) for e in exceptions] == [("answered_without_invitation_text", [str(ids["answer"])])]
    finally:
        REGISTRY.pop("answered_without_invitation_text", None)


def test_the_timeline_says_who_through_which_channel_when_and_what_caused_it() -> None:
    history = CaseHistory()
    ids = history.clean(referral=True)
    timeline = history.timeline()
    assert timeline.case_ref == history.ref and timeline.channel == "website"
    decided = [e for e in timeline.entries if e.event_type == "CommitteeDecided"]
    assert {e.source for e in decided} == {"store", "stream"}
    for entry in decided:
        assert entry.caused_by and entry.caused_by["event_id"] == str(ids["verified"])
        assert entry.caused_by["event_type"] == "DataVerified"
        assert entry.actor == {"kind": "committee", "id": "committee"}
    described = timeline.describe()
    first = described["events"][0]
    assert first["when"]["hijri"] and first["when"]["gregorian"] and first["channel"] == "website"
    votes = [e for e in timeline.entries if e.name == "Sitting.VoteCast"]
    assert [v.actor["id"] for v in votes] == ["chair", "member-2", "member-3"]
    # index aggregates (ChannelRef) are not part of a case's timeline
    assert not [e for e in timeline.entries if e.name.startswith("ChannelRef")]


@pytest.mark.parametrize("sources", SOURCES, ids=["both", "stores", "stream"])
def test_state_as_of_a_moment_before_and_after_the_decision(sources: dict[str, bool]) -> None:
    history = CaseHistory()
    history.clean()
    timeline = history.timeline(**sources)
    assert state_at(timeline, T0 - timedelta(seconds=1)) is None
    before = state_at(timeline, T0 + timedelta(days=2))
    assert before is not None
    assert (before.status, before.verification_outcome, before.decision, before.delivered) == (
        "verified", "verified", None, False)
    after = state_at(timeline, T0 + timedelta(days=3, seconds=1))
    assert after is not None and (after.status, after.decision, after.delivered) == ("approved", "approved", False)
    end = state_at(timeline, T0 + timedelta(days=6))
    assert end is not None and end.status == "delivered" and end.delivered
    assert end.survey == "answered"


# --- the policy's own window and quorum, not the committee's claims ---------------------


@pytest.fixture(scope="module")
def packs() -> dict[str, Any]:
    from audit.settings import AuditSettings
    from shared.policy_loader import load_packs

    loaded = load_packs(AuditSettings().policies_dir)
    assert loaded["sidr"].decision_window_days == 14 and loaded["sidr"].committee.quorum == 3
    return loaded


def checked(history: CaseHistory, packs: dict[str, Any], **sources: bool) -> list[tuple[str, list[str]]]:
    context = compliance.CheckContext(packs=packs)
    return [(e.check, e.event_ids) for e in found(history, context=context, **(sources or dict(stores=True, stream=True)))]


@pytest.mark.parametrize("sources", SOURCES, ids=["both", "stores", "stream"])
def test_a_clean_history_raises_no_exception_against_the_policy_packs(sources: dict[str, bool], packs) -> None:
    history = CaseHistory()
    history.clean(referral=True)
    assert checked(history, packs, **sources) == []


@pytest.mark.parametrize("sources", SOURCES, ids=["both", "stores", "stream"])
def test_a_late_decision_the_committee_recorded_within_its_window_is_flagged(sources: dict[str, bool], packs) -> None:
    history = CaseHistory()
    request = history.received(T0)
    verified = history.verified(T0 + timedelta(hours=1))
    # The committee recorded a 30-day window (the policy says 14) and called day 20 "within".
    decision = history.decided(T0 + timedelta(days=20), "rejected", verified, window_days=30)
    history.invited(T0 + timedelta(days=20), decision, "rejected")
    assert found(history, **sources) == []  # the committee's own claims alone: no alarm
    exceptions = {code: ids for code, ids in checked(history, packs, **sources)}
    assert set(exceptions) == {"decision_after_window", "window_differs_from_policy"}
    assert exceptions["decision_after_window"] == [str(decision), str(request)]
    late = next(e for e in found(history, context=compliance.CheckContext(packs=packs), **sources)
                if e.check == "decision_after_window")
    assert "14 days" in late.message["en"] and "recorded it as within the window" in late.message["en"]
    assert "ضمن المهلة" in late.message["ar"]


def test_a_decision_within_the_policy_window_but_a_wrong_recorded_deadline_is_flagged(packs) -> None:
    history = CaseHistory()
    history.received(T0)
    verified = history.verified(T0 + timedelta(hours=1))
    decision = history.decided(T0 + timedelta(days=3), "rejected", verified,
                               deadline=T0 + timedelta(days=14, hours=5))
    history.invited(T0 + timedelta(days=3), decision, "rejected")
    assert [code for code, _ in checked(history, packs)] == ["window_differs_from_policy"]


def test_the_window_runs_from_the_first_revision_not_from_the_correction(packs) -> None:
    history = CaseHistory()
    history.received(T0)
    asked = history.verified(T0 + timedelta(hours=1), "discrepancies")
    history.received(T0 + timedelta(days=10), revision=2, corrects=asked)
    verified = history.verified(T0 + timedelta(days=11), revision=2)
    # day 16: within 14 days of the correction, not of the request's receipt
    decision = history.decided(T0 + timedelta(days=16), "rejected", verified,
                               within_window=True, deadline=T0 + timedelta(days=24))
    history.invited(T0 + timedelta(days=16), decision, "rejected")
    assert "decision_after_window" in [code for code, _ in checked(history, packs)]


@pytest.mark.parametrize("sources", SOURCES, ids=["both", "stores", "stream"])
def test_votes_below_the_policys_quorum_are_flagged_whatever_quorum_was_recorded(sources: dict[str, bool], packs) -> None:
    history = CaseHistory()
    history.received(T0)
    verified = history.verified(T0 + timedelta(hours=1))
    members = ("chair", "member-2")
    decision = history.decided(T0 + timedelta(days=1), "rejected", verified, members=members, quorum=2)
    history.invited(T0 + timedelta(days=1), decision, "rejected")
    assert found(history, **sources) == []  # two present, "quorum 2" recorded: looks fine
    assert checked(history, packs, **sources) == [
        ("votes_below_quorum", [str(decision)]), ("quorum_differs_from_policy", [str(decision)])]


def test_the_checks_that_cannot_run_are_named() -> None:
    assert compliance.checks_not_run(READABLE, packs={"sidr": object()}) == []
    # Without the identity store, who held which role when is unknown.
    assert compliance.checks_not_run(SERVICES, packs={"sidr": object()}) == ["acted_without_role"]
    assert compliance.checks_not_run((), packs={"sidr": object()}) == [
        "referral_never_closed", "no_survey_invitation", "acted_without_role", "held_by_dead_letter"]
    assert set(compliance.checks_not_run(("committee", "surveys", "identity"), packs={})) == {
        "policy_version_unknown", "window_differs_from_policy", "quorum_differs_from_policy",
        "held_by_dead_letter"}


# --- a live system: the audit's moment and a grace period -----------------------------


def test_the_referral_check_reads_the_audits_moment_not_the_wall_clock() -> None:
    history = CaseHistory()
    history.received(T0)
    referral = history.referred(T0 + timedelta(hours=1))
    early = compliance.CheckContext(now=T0 + timedelta(days=5))
    assert found(history, context=early) == []
    late = compliance.CheckContext(now=T0 + timedelta(days=16))
    assert [(e.check, e.event_ids) for e in found(history, context=late)] == [
        ("referral_never_closed", [str(referral)])]


@pytest.mark.parametrize("outcome", ["approved", "rejected"])
def test_an_invitation_is_not_missing_within_the_grace_period(outcome: str) -> None:
    history = CaseHistory()
    history.received(T0)
    verified = history.verified(T0 + timedelta(hours=1))
    decided_at = T0 + timedelta(days=1)
    decision = history.decided(decided_at, outcome, verified)
    end_at = decided_at + timedelta(hours=1) if outcome == "approved" else decided_at
    end = history.delivered(end_at, decision) if outcome == "approved" else decision
    soon = compliance.CheckContext(now=end_at + timedelta(minutes=2), grace=timedelta(minutes=5))
    assert found(history, context=soon) == []
    later = compliance.CheckContext(now=end_at + timedelta(minutes=6), grace=timedelta(minutes=5))
    assert [(e.check, e.event_ids) for e in found(history, context=later)] == [
        ("no_survey_invitation", [str(end)])]


def test_a_recorded_event_not_yet_published_is_not_missing_within_the_grace_period() -> None:
    from audit.crosscheck import MISSING_FROM_STREAM, CrossCheckTotals, crosscheck

    history = CaseHistory()
    history.received(T0)
    lost = history.verified(T0 + timedelta(hours=1), publish=False)
    soon = CrossCheckTotals()
    assert list(crosscheck(history.store_records(), history.stream_records(), soon,
                           now=T0 + timedelta(hours=1, minutes=2), grace=timedelta(minutes=5))) == []
    assert soon.within_grace == 1
    later = [(d.kind, d.event_id) for d in crosscheck(history.store_records(), history.stream_records(),
                                                       now=T0 + timedelta(hours=1, minutes=6),
                                                       grace=timedelta(minutes=5))]
    assert later == [(MISSING_FROM_STREAM, str(lost))]


# --- a request published again with the next revision ------------------------------------


def corrected(history: CaseHistory, *, verify_correction: bool) -> dict[str, UUID]:
    """Revision 1 has discrepancies; the applicant corrects it (revision 2)."""
    ids = {"request": history.received(T0)}
    ids["discrepancies"] = history.verified(T0 + timedelta(hours=1), "discrepancies")
    ids["revision2"] = history.received(T0 + timedelta(days=1), revision=2, corrects=ids["discrepancies"])
    if verify_correction:
        ids["verified"] = history.verified(T0 + timedelta(days=1, hours=2), revision=2)
    ids["decision"] = history.decided(T0 + timedelta(days=2), "rejected", ids.get("verified", ids["discrepancies"]))
    history.invited(T0 + timedelta(days=2, minutes=1), ids["decision"], "rejected")
    return ids


@pytest.mark.parametrize("sources", SOURCES, ids=["both", "stores", "stream"])
def test_a_decision_on_the_corrected_revisions_verification_is_clean(sources: dict[str, bool], packs) -> None:
    history = CaseHistory()
    corrected(history, verify_correction=True)
    assert checked(history, packs, **sources) == []


@pytest.mark.parametrize("sources", SOURCES, ids=["both", "stores", "stream"])
def test_a_decision_on_a_stale_verification_is_an_exception(sources: dict[str, bool]) -> None:
    history = CaseHistory()
    ids = corrected(history, verify_correction=False)
    item = only(history, "decision_without_verification", **sources)
    assert item.event_ids == [str(ids["decision"]), str(ids["revision2"]), str(ids["discrepancies"])]
    assert "revision 2" in item.message["en"] and "النسخة 2" in item.message["ar"]


def test_the_timeline_shows_each_revision() -> None:
    history = CaseHistory()
    ids = corrected(history, verify_correction=True)
    events = history.timeline().describe()["events"]
    revisions = {(e["event_id"], e["source"]): e["revision"] for e in events if e["revision"] is not None}
    for source in ("store", "stream"):
        assert revisions[(str(ids["request"]), source)] == 1
        assert revisions[(str(ids["discrepancies"]), source)] == 1
        assert revisions[(str(ids["revision2"]), source)] == 2
        assert revisions[(str(ids["verified"]), source)] == 2
    assert all(e["revision"] is None for e in events if e["event_type"] == "CommitteeDecided")


@pytest.mark.parametrize("sources", SOURCES, ids=["both", "stores", "stream"])
def test_state_as_of_a_corrected_request_waits_for_verification_again(sources: dict[str, bool]) -> None:
    history = CaseHistory()
    corrected(history, verify_correction=True)
    timeline = history.timeline(**sources)
    asked = state_at(timeline, T0 + timedelta(hours=2))
    assert asked is not None and (asked.status, asked.verification_outcome, asked.revision) == (
        "verified", "discrepancies", 1)
    waiting = state_at(timeline, T0 + timedelta(days=1, hours=1))
    assert waiting is not None and (waiting.status, waiting.verification_outcome, waiting.revision) == (
        "received", None, 2)
    verified = state_at(timeline, T0 + timedelta(days=1, hours=3))
    assert verified is not None and (verified.status, verified.verification_outcome) == ("verified", "verified")


def test_a_case_with_several_revisions_cross_checks_clean() -> None:
    from audit.crosscheck import CrossCheckTotals, crosscheck

    history = CaseHistory()
    corrected(history, verify_correction=True)
    totals = CrossCheckTotals()
    assert list(crosscheck(history.store_records(), history.stream_records(), totals)) == []
    assert totals.store_events == totals.stream_events == 5


def test_an_event_whose_content_differs_on_the_stream_is_reported_by_case() -> None:
    from audit.crosscheck import DIFFERS, CrossCheckTotals, crosscheck

    clean = CaseHistory()
    clean.clean(referral=True)
    totals = CrossCheckTotals()
    assert list(crosscheck(clean.store_records(), clean.stream_records(), totals)) == []
    assert totals.content_not_compared == 0  # every public event's content was compared

    history = CaseHistory(ref="SDR-1448-000002")
    ids = history.clean()
    for index, event in enumerate(history.published):
        if event.event_type == "CommitteeDecided":  # the stream says otherwise than the committee's store
            forged = event.payload.model_copy(update={"reasons": ["forged"], "within_window": False})
            history.published[index] = event.model_copy(update={"payload": forged})
        if event.event_type == "ServiceDelivered":
            history.published[index] = event.model_copy(update={"occurred_at": event.occurred_at + timedelta(days=1)})
    differences = list(crosscheck(history.store_records(), history.stream_records()))
    assert sorted((d.kind, d.case_ref, d.event_id) for d in differences) == sorted([
        (DIFFERS, history.ref, str(ids["decision"])), (DIFFERS, history.ref, str(ids["delivered"]))])
    decided = next(d for d in differences if d.event_id == str(ids["decision"]))
    assert "payload.reasons" in decided.detail and "payload.within_window" in decided.detail
    assert decided.message["ar"] and decided.message["en"]
    delivered = next(d for d in differences if d.event_id == str(ids["delivered"]))
    assert delivered.detail.startswith("occurred_at")


def test_an_explanation_an_older_version_never_published_is_not_a_difference() -> None:
    """An ineligible confirmation recorded before DataVerified carried `ineligible_reason`:
    today's translator explains the rule, the older outbox published the rule alone."""
    from audit.crosscheck import DIFFERS, CrossCheckTotals, crosscheck

    history = CaseHistory()
    history.received(T0)
    verified = history.verified(T0 + timedelta(hours=1), "ineligible")
    confirmation = next(item for item in history.stored if item.topic.endswith(":Verification.Confirmed"))
    confirmation.state["ineligible_rule"] = "One request may ask for 1 to 500 seedlings."
    index, published = next((i, e) for i, e in enumerate(history.published) if e.event_id == verified)
    with_rule = published.payload.model_copy(update={"ineligible_rule": confirmation.state["ineligible_rule"]})
    history.published[index] = published.model_copy(update={"payload": with_rule})
    totals = CrossCheckTotals()
    assert list(crosscheck(history.store_records(), history.stream_records(), totals)) == []
    assert totals.content_not_compared == 0

    # Today's confirmation records its explanation: a stream copy without it differs.
    confirmation.state["ineligible_reason"] = {"ar": "يصرف من ١ إلى ٥٠٠ شتلة.", "en": "1 to 500 seedlings."}
    differences = list(crosscheck(history.store_records(), history.stream_records()))
    assert [(d.kind, d.event_id) for d in differences] == [(DIFFERS, str(verified))]
    assert differences[0].detail.startswith("payload.ineligible_reason")


def test_a_stream_copy_that_sets_what_the_store_left_at_its_default_differs() -> None:
    from audit.crosscheck import crosscheck

    history = CaseHistory()
    history.clean()
    for index, event in enumerate(history.published):
        if event.event_type == "DataVerified":
            forged = event.payload.model_copy(update={"override_reason": "forged", "revision": 3})
            history.published[index] = event.model_copy(update={"payload": forged})
    (difference,) = crosscheck(history.store_records(), history.stream_records())
    assert difference.kind == "differs" and difference.event_type == "DataVerified"
    assert "override_reason" in difference.detail and "revision" in difference.detail


def test_a_declaration_signed_only_on_the_stream_differs_from_the_unsigned_store() -> None:
    from audit.crosscheck import crosscheck

    history = CaseHistory()
    history.clean()
    completed = next(r for r in history.stored if r.topic.endswith(":Case.Completed"))
    completed.state["attestation"] = None
    (difference,) = crosscheck(history.store_records(), history.stream_records())
    assert difference.event_type == "RequestReceived" and "attestation" in difference.detail


def test_an_event_dated_in_the_future_is_never_excused_as_recent() -> None:
    from audit.crosscheck import CrossCheckTotals, crosscheck

    history = CaseHistory()
    history.clean()
    ghost = history.published[0].model_copy(
        update={"event_id": uuid4(), "occurred_at": datetime(2099, 1, 1, tzinfo=timezone.utc)}
    )
    history.published.append(ghost)
    totals = CrossCheckTotals()
    differences = list(crosscheck(history.store_records(), history.stream_records(), totals))
    assert [(d.kind, d.event_id) for d in differences] == [("missing_from_store", str(ghost.event_id))]
    assert totals.within_grace == 0


@pytest.mark.parametrize(
    ("said", "ar", "en"),
    [
        ({"erased": True, "en": "erased", "ar": "مُحيت"}, "مُحيت", "erased"),
        ({"sealed": True, "en": "sealed", "ar": "مُشفَّر"}, "مُشفَّر", "sealed"),
    ],
    ids=["erased", "sealed-without-the-key-file"],
)
def test_an_override_whose_reason_cannot_be_read_is_listed_saying_so(said: dict, ar: str, en: str) -> None:
    """The reason is sealed under the applicant's key (decision 24): once erased, or
    without the key file, the board reads that, not a dictionary."""
    history = CaseHistory()
    history.received(T0)
    verified = history.verified(T0 + timedelta(hours=1), checks=[{"name": "phone", "passed": False}],
                                override_reason="placeholder", publish=False)
    # As the audit shows it from the store (the stream's copy is sealed the same way).
    [confirmed] = [item for item in history.stored if item.topic.endswith("Verification.Confirmed")]
    confirmed.state["override_reason"] = said
    history.invited(T0 + timedelta(days=1), history.decided(T0 + timedelta(days=1), "approved", verified),
                    "approved")
    item = only(history, "verification_override", stores=True, stream=False)
    assert f"“{en}”" in item.message["en"] and f"«{ar}»" in item.message["ar"]
    assert "{" not in item.message["en"] + item.message["ar"]
