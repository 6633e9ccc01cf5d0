"""Policy versions as the board approves them (issue 15): loading and validating an
association's versions, the version in force at a moment, adoption recorded once,
and a case judged by the version it was received under — in the committee, in
intake, in verification and in the audit."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import ProcessingEvent
from eventsourcing.persistence import Tracking

from audit.asof import state_at
from audit.compliance import CheckContext, run_checks
from audit.figures import compute_figures
from audit.policy_versions import adoptions, policy_diff, versions_in_force
from audit.replay import StoredRecord, StreamRecord
from audit.timeline import CaseTimeline, entry_from_stream
from services.committee.application import CommitteeApplication
from services.committee.integration import committee_decided
from services.intake.application import IntakeApplication
from services.intake.integration import TRANSLATORS as INTAKE_TRANSLATORS
from services.verification.application import VerificationApplication
from shared.clock import FrozenClock
from shared.events import (
    POLICY_VERSIONS_SCHEMA_VERSION,
    SCHEMA_VERSION,
    RequestReceived,
    decode_event,
    encode_event,
)
from shared.personal import Sealer
from shared.policy import Policies, UnknownPolicyVersion
from shared.policy_adoption import AdoptedVersionChanged
from shared.policy_loader import DEFAULT_POLICIES_DIR, PolicyError, load_packs
from shared.store import open_application
from shared.submissions import Submission
from tests import builders, personal_data
from tests.policy_versions import (
    CHANGE_AT,
    CHANGE_DAY,
    V1_QUORUM,
    V1_WINDOW,
    V2_QUORUM,
    V2_WINDOW,
    two_versions,
    version_text,
)

pytestmark = pytest.mark.unit

BEFORE_CHANGE = CHANGE_AT - timedelta(days=3)
AFTER_CHANGE = CHANGE_AT + timedelta(days=1)
PRESENT = ["chair", "member-2", "member-3", "member-4"]
ACTOR = {"kind": "adapter", "id": "test"}


@pytest.fixture
def policies(tmp_path: Path) -> Policies:
    return load_packs(two_versions(tmp_path / "policies"))


# Loading ------------------------------------------------------------------------------


def test_an_associations_versions_are_loaded_side_by_side_in_their_order(
    policies: Policies,
) -> None:
    history = policies.history("sidr")
    assert history is not None
    assert [pack.number for pack in history.versions] == [1, 2]
    first, second = history.versions
    assert first.version.takes_effect is None  # version 1: since always
    assert second.version.takes_effect == CHANGE_AT
    assert second.board_approval is not None and second.board_approval.hijri == "1446-08-20"
    assert second.board_approval.meeting == "12"
    assert history.in_force(BEFORE_CHANGE).decision_window_days == V1_WINDOW
    assert history.in_force(CHANGE_AT).decision_window_days == V2_WINDOW
    assert history.in_force(AFTER_CHANGE).committee.quorum == V2_QUORUM
    # The other associations keep their one pack.
    assert [pack.number for pack in policies.histories["elites"].versions] == [1]


def test_as_a_mapping_the_policies_give_the_version_in_force_at_their_clock(
    policies: Policies,
) -> None:
    clock = FrozenClock(BEFORE_CHANGE)
    bound = policies.bound_to(clock.now)
    assert bound["sidr"].number == 1
    clock.advance(timedelta(days=5))
    assert bound["sidr"].number == 2 and bound.get("sidr") is not None
    assert sorted(bound) == sorted(load_packs(DEFAULT_POLICIES_DIR))


def test_a_case_naming_a_version_is_governed_by_it_and_an_older_one_by_its_receipt(
    policies: Policies,
) -> None:
    assert policies.governing("sidr", 1, AFTER_CHANGE).number == 1  # type: ignore[union-attr]
    assert policies.governing("sidr", None, BEFORE_CHANGE).number == 1  # type: ignore[union-attr]
    assert policies.governing("sidr", None, AFTER_CHANGE).number == 2  # type: ignore[union-attr]
    assert policies.governing("nowhere", 1, AFTER_CHANGE) is None
    with pytest.raises(UnknownPolicyVersion) as unknown:
        policies.governing("sidr", 3, AFTER_CHANGE)
    assert "version 3" in unknown.value.en and "الإصدار 3" in unknown.value.ar


def write_versions(folder: Path, **files: str) -> Path:
    versions = folder / "sidr"
    versions.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (versions / f"{name}.toml").write_text(text, encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    "files, where, problem",
    [
        (
            {
                "v1": version_text(1, window=14),
                "v3": version_text(3, window=10, takes_effect="2025-03-05"),
            },
            "v3.toml: version.number",
            "without a gap",
        ),
        (
            {
                "v1": version_text(1, window=14),
                "v2": version_text(2, window=10, takes_effect="2025-03-05"),
                "v3": version_text(3, window=9, takes_effect="2025-03-01"),
            },
            "v3.toml: version.takes_effect",
            "after the one before it",
        ),
        (
            {"v1": version_text(1, window=14), "v2": version_text(2, window=10)},
            "v2.toml: version.takes_effect",
            "needs the moment it takes effect",
        ),
        (
            {
                "v1": version_text(1, window=14),
                "v2": version_text(2, window=10, takes_effect="2025-03-05", approval=""),
            },
            "v2.toml: board_approval",
            "needs the board's approval",
        ),
        (
            {
                "v1": version_text(1, window=14),
                "v2": version_text(2, window=10, takes_effect="2025-02-01"),
            },
            "v2.toml: version.takes_effect",
            "before the board approved it",
        ),
        (
            {
                "v1": version_text(1, window=14),
                "v2": version_text(2, window=10, takes_effect="2025-03-05").replace(
                    'case_prefix = "SDR"', 'case_prefix = "SDX"'
                ),
            },
            "v2.toml: case_prefix",
            "keep one prefix",
        ),
        (
            {"v1": version_text(1, window=14).replace('"sidr"', '"sidra"', 1)},
            "v1.toml: association_id",
            "folder name",
        ),
    ],
    ids=["gap", "order", "no-moment", "no-approval", "before-approval", "prefix", "folder"],
)
def test_a_broken_history_is_refused_naming_the_file_the_key_and_the_problem(
    tmp_path: Path, files: dict[str, str], where: str, problem: str
) -> None:
    with pytest.raises(PolicyError) as refused:
        load_packs(write_versions(tmp_path, **files))
    assert where in str(refused.value) and problem in str(refused.value)


def test_an_association_with_a_file_and_a_folder_of_versions_is_refused(tmp_path: Path) -> None:
    folder = two_versions(tmp_path / "policies")
    (folder / "sidr.toml").write_text(version_text(1, window=14), encoding="utf-8")
    with pytest.raises(PolicyError, match="both sidr.toml and a folder of versions"):
        load_packs(folder)


# Adoption -------------------------------------------------------------------------------


def sqlite_env(folder: Path, name: str) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(folder / f"{name}.sqlite"),
    }


def test_each_version_is_adopted_once_and_an_adopted_version_edited_since_is_refused(
    tmp_path: Path,
) -> None:
    policies = two_versions(tmp_path / "policies")
    env = sqlite_env(tmp_path, "committee")
    clock = FrozenClock(BEFORE_CHANGE)
    app = CommitteeApplication(env=env, clock=clock, packs=load_packs(policies))
    newly = app.adopt_policies()
    assert ("sidr", 1) in newly and ("sidr", 2) in newly and ("elites", 1) in newly
    adopted = app.adopted_versions("sidr")
    assert sorted(adopted) == [1, 2]
    assert adopted[2]["adopted_at"] == BEFORE_CHANGE and adopted[2]["takes_effect"] == CHANGE_AT
    assert adopted[2]["approval"]["hijri"] == "1446-08-20"
    # A restart sees nothing new.
    again = CommitteeApplication(env=env, clock=clock, packs=load_packs(policies))
    assert again.adopt_policies() == []
    # The board's change written into the adopted file instead of a new version.
    v1 = policies / "sidr" / "v1.toml"
    v1.write_text(v1.read_text(encoding="utf-8").replace("= 14", "= 21", 1), encoding="utf-8")
    edited = CommitteeApplication(env=env, clock=clock, packs=load_packs(policies))
    with pytest.raises(AdoptedVersionChanged) as refused:
        edited.adopt_policies()
    assert "version 1" in refused.value.en and "الإصدار 1" in refused.value.ar


def test_a_service_on_an_edited_adopted_version_does_not_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = two_versions(tmp_path / "policies")
    env = sqlite_env(tmp_path, "intake")
    open_application(IntakeApplication, env, packs=load_packs(policies))
    v2 = policies / "sidr" / "v2.toml"
    v2.write_text(v2.read_text(encoding="utf-8").replace("= 10", "= 12", 1), encoding="utf-8")
    with pytest.raises(SystemExit) as stopped:
        open_application(IntakeApplication, env, packs=load_packs(policies))
    assert stopped.value.code == 2
    assert "not edited" in capsys.readouterr().err


# A case keeps its version ---------------------------------------------------------------

_positions = itertools.count(1)


def handle(app: Any, handler: Any, event: Any) -> None:
    processing = ProcessingEvent(tracking=Tracking("nats:KHIDMA", next(_positions)))
    handler(event, processing)
    app.record_processing(processing)


def received(intake: IntakeApplication, channel_ref: str, national_id: str) -> RequestReceived:
    """A complete request submitted at intake's clock, as intake publishes it."""
    result = intake.submit(
        Submission(
            association_id="sidr",
            channel="website",
            channel_ref=channel_ref,
            service_code="seedlings",
            applicant={"national_id": national_id, "name": "علي"},
            fields={"planting_site": "وادي حنيفة", "seedling_count": 20},
            documents=[
                {"code": "national_id_card", "number": national_id, "expires_on": "2030-01-01"}
            ],
            attestation={"attested": True, "method": "one_time_code"},
        ),
        ACTOR,
    )
    case_id = UUID(result.as_dict()["case_id"])
    for notification in intake.read_notifications(0, 1000, tuple(INTAKE_TRANSLATORS)):
        event = INTAKE_TRANSLATORS[notification.topic](intake.mapper.to_domain_event(notification))
        if event.case_id == case_id and isinstance(event, RequestReceived):
            return event
    raise AssertionError("intake published no RequestReceived")


def decided_on_day_12(
    committee: CommitteeApplication, clock: FrozenClock, request: RequestReceived
) -> Any:
    handle(committee, committee.on_request_received, request)
    verified = builders.data_verified(request, occurred_at=request.occurred_at + timedelta(hours=2))
    handle(committee, committee.on_data_verified, verified)
    clock._now = request.occurred_at + timedelta(days=12)
    sitting = committee.convene(association_id="sidr", members_present=PRESENT)
    sitting_id = UUID(sitting["sitting_id"])
    for member in PRESENT:
        committee.vote(sitting_id, request.case_id, member=member, vote="approve")
    committee.decide(sitting_id, request.case_id, decision="approved", reasons=["eligible"])
    [decision] = [
        committee_decided(committee.mapper.to_domain_event(n))
        for n in committee.read_notifications(0, 10_000)
        if n.topic.endswith("CommitteeCase.Decided")
        and committee.mapper.to_domain_event(n).originator_id == request.case_id
    ]
    return decision


@pytest.fixture
def system(policies: Policies) -> tuple[FrozenClock, IntakeApplication, CommitteeApplication]:
    clock = FrozenClock(BEFORE_CHANGE)
    popo = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    intake = IntakeApplication(env=popo, clock=clock, packs=policies)
    committee = CommitteeApplication(env=popo, clock=clock, packs=policies)
    return clock, intake, committee


def test_a_case_received_under_version_1_and_decided_on_day_12_is_within_its_window(
    system: tuple[FrozenClock, IntakeApplication, CommitteeApplication],
) -> None:
    clock, intake, committee = system
    request = received(intake, "form-v1", "1000000008")
    assert request.payload.policy_version == 1
    assert request.schema_version == POLICY_VERSIONS_SCHEMA_VERSION
    # Version 2 (a 10-day window) takes effect three days later; the case keeps 14 days.
    decision = decided_on_day_12(committee, clock, request)
    assert clock.now() > CHANGE_AT
    assert decision.payload.policy_version == 1
    assert decision.payload.window_days == V1_WINDOW and decision.payload.within_window
    assert decision.payload.quorum == V1_QUORUM
    assert decision.schema_version == POLICY_VERSIONS_SCHEMA_VERSION


def test_a_case_received_after_the_change_and_decided_on_day_12_is_late(
    system: tuple[FrozenClock, IntakeApplication, CommitteeApplication],
) -> None:
    clock, intake, committee = system
    clock._now = AFTER_CHANGE
    request = received(intake, "form-v2", "1000000016")
    assert request.payload.policy_version == 2
    decision = decided_on_day_12(committee, clock, request)
    assert decision.payload.policy_version == 2
    assert decision.payload.window_days == V2_WINDOW and not decision.payload.within_window
    assert decision.payload.quorum == V2_QUORUM


def test_a_case_of_version_1_is_decided_by_its_quorum_after_version_2_raised_it(
    system: tuple[FrozenClock, IntakeApplication, CommitteeApplication],
) -> None:
    clock, intake, committee = system
    old = received(intake, "form-old", "1000000008")
    handle(committee, committee.on_request_received, old)
    handle(
        committee,
        committee.on_data_verified,
        builders.data_verified(old, occurred_at=old.occurred_at),
    )
    clock._now = AFTER_CHANGE
    new = received(intake, "form-new", "1000000016")
    handle(committee, committee.on_request_received, new)
    handle(
        committee,
        committee.on_data_verified,
        builders.data_verified(new, occurred_at=new.occurred_at),
    )
    sitting_id = UUID(
        committee.convene(association_id="sidr", members_present=PRESENT[:3])["sitting_id"]
    )
    for case in (old, new):
        for member in PRESENT[:3]:
            committee.vote(sitting_id, case.case_id, member=member, vote="approve")
    # Three voters: version 1's quorum (3) is met, version 2's (4) is not.
    committee.decide(sitting_id, old.case_id, decision="approved", reasons=["ok"])
    from shared.errors import Refused

    with pytest.raises(Refused) as refused:
        committee.decide(sitting_id, new.case_id, decision="approved", reasons=["ok"])
    assert refused.value.code == "quorum_not_reached" and "4" in refused.value.en


def test_a_correction_is_judged_by_the_cases_version_not_todays(
    system: tuple[FrozenClock, IntakeApplication, CommitteeApplication],
) -> None:
    clock, intake, _ = system
    request = received(intake, "form-keep", "1000000008")
    clock._now = AFTER_CHANGE
    case = intake.repository.get(request.case_id)
    assert case.policy_version == 1
    assert intake.governing_pack(case).decision_window_days == V1_WINDOW
    assert intake.pack("sidr").decision_window_days == V2_WINDOW


def test_verification_checks_a_request_by_the_version_it_names(
    policies: Policies, tmp_path: Path
) -> None:
    clock = FrozenClock(AFTER_CHANGE)
    verification = VerificationApplication(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"},
        clock=clock,
        packs=policies,
        sealer=Sealer(personal_data.keyring_of(tmp_path)),
    )
    request = builders.request_received(
        occurred_at=BEFORE_CHANGE,
        association_id="sidr",
        policy_version=1,
        fields={"planting_site": "x", "seedling_count": 5},
    )
    handle(verification, verification.on_request_received, request)
    assert verification.repository.get(request.case_id).policy_version == 1
    unknown = builders.request_received(occurred_at=AFTER_CHANGE, policy_version=7)
    with pytest.raises(UnknownPolicyVersion):
        handle(verification, verification.on_request_received, unknown)


# The contract -----------------------------------------------------------------------------


def test_an_event_from_before_versions_still_reads_and_names_no_version() -> None:
    event = builders.request_received(occurred_at=BEFORE_CHANGE)
    wire = encode_event(event).replace(
        f'"schema_version":{POLICY_VERSIONS_SCHEMA_VERSION}'.encode(),
        f'"schema_version":{SCHEMA_VERSION}'.encode(),
    )
    assert b"policy_version" not in wire
    read = decode_event(wire)
    assert isinstance(read, RequestReceived)
    assert read.schema_version == SCHEMA_VERSION and read.payload.policy_version is None


# The audit -----------------------------------------------------------------------------------


def timeline_of(*events: Any) -> CaseTimeline:
    entries = [
        entry_from_stream(StreamRecord(position, "subject", event))
        for position, event in enumerate(events, 1)
    ]
    return CaseTimeline(str(events[0].case_id), [e for e in entries if e], frozenset(), True)


def decided_case(received_at: datetime, version: int | None, within: bool) -> list[Any]:
    request = builders.request_received(
        occurred_at=received_at, association_id="sidr", policy_version=version
    )
    verified = builders.data_verified(request, occurred_at=received_at + timedelta(hours=1))
    decision = builders.committee_decided(
        verified,
        occurred_at=received_at + timedelta(days=12),
        window_days=V1_WINDOW if within else V2_WINDOW,
        within_window=within,
        deadline=received_at + timedelta(days=V1_WINDOW if within else V2_WINDOW),
    )
    return [request, verified, decision]


def late_checks(policies: Policies, events: list[Any]) -> list[str]:
    context = CheckContext(packs=policies, now=events[-1].occurred_at + timedelta(days=30))
    found = run_checks([timeline_of(*events)], ["decision_after_window"], context=context)
    return [exception.check for exception in found]


def test_the_audit_judges_each_case_by_the_version_that_governed_it(policies: Policies) -> None:
    assert late_checks(policies, decided_case(BEFORE_CHANGE, 1, within=True)) == []
    assert late_checks(policies, decided_case(AFTER_CHANGE, 2, within=False)) == [
        "decision_after_window"
    ]
    # An event from before versions: the version in force when it was received.
    assert late_checks(policies, decided_case(BEFORE_CHANGE, None, within=True)) == []


def test_the_board_report_lists_the_versions_in_force_and_the_cases_each_governed(
    policies: Policies,
) -> None:
    events = decided_case(BEFORE_CHANGE, 1, True) + decided_case(AFTER_CHANGE, 2, False)
    events += decided_case(AFTER_CHANGE + timedelta(hours=1), 2, False)
    figures = compute_figures(
        sorted(events, key=lambda e: e.occurred_at),
        start=(BEFORE_CHANGE - timedelta(days=1)).date(),
        end=(AFTER_CHANGE + timedelta(days=20)).date(),
        packs=policies,
    )
    rows = {(row["association_id"], row["version"]): row for row in figures.policy_versions}
    assert rows[("sidr", 1)]["cases"] == 1 and rows[("sidr", 1)]["takes_effect"] is None
    assert rows[("sidr", 2)]["cases"] == 2
    assert rows[("sidr", 2)]["takes_effect"] == CHANGE_AT.isoformat()
    assert rows[("sidr", 2)]["approved_on_hijri"] == "1446-08-20"
    assert figures.to_dict()["policy_versions"] == figures.policy_versions


def adoption_records(association: str, adopted: dict[int, datetime]) -> list[StoredRecord]:
    originator = str(uuid4())
    records = [
        StoredRecord(
            "intake",
            1,
            originator,
            1,
            "shared.policy_adoption:PolicyAdoptions.Started",
            {"association_id": association},
        )
    ]
    for number, at in adopted.items():
        records.append(
            StoredRecord(
                "intake",
                number + 1,
                originator,
                number + 1,
                "shared.policy_adoption:PolicyAdoptions.VersionAdopted",
                {"number": number, "adopted_at": at.isoformat()},
            )
        )
    return records


def test_replay_as_of_a_date_shows_the_version_in_force_then(policies: Policies) -> None:
    # Version 2 was loaded a day after it took effect: until then version 1 governed.
    loaded_late = CHANGE_AT + timedelta(days=1)
    adopted = adoptions(adoption_records("sidr", {1: BEFORE_CHANGE, 2: loaded_late}))
    assert adopted == {"sidr": {1: BEFORE_CHANGE, 2: loaded_late}}

    def in_force(at: datetime) -> int:
        [row] = [
            r for r in versions_in_force(policies, at, adopted) if r["association_id"] == "sidr"
        ]
        return int(row["version"])

    assert in_force(BEFORE_CHANGE) == 1
    assert in_force(CHANGE_AT + timedelta(hours=1)) == 1  # in effect, not yet adopted
    assert in_force(loaded_late + timedelta(minutes=1)) == 2
    # Without the store, by the moments the versions take effect.
    [row] = [
        r for r in versions_in_force(policies, AFTER_CHANGE, None) if r["association_id"] == "sidr"
    ]
    assert row["version"] == 2 and row["decision_window_days"] == V2_WINDOW


def test_the_policy_diff_says_what_changed_in_arabic_and_english(policies: Policies) -> None:
    history = policies.history("sidr")
    assert history is not None
    changes = {change.path: change for change in policy_diff(*history.versions)}
    window = changes["decision_window_days"]
    assert (window.before, window.after) == (V1_WINDOW, V2_WINDOW)
    assert window.text("ar") == "تغيّر — مهلة قرار اللجنة (أيام): 14 ← 10"
    assert window.text("en") == "Changed — Committee's decision window (days): 14 → 10"
    assert changes["committee.quorum"].text("en") == "Changed — Committee quorum: 3 → 4"
    assert changes["version.takes_effect"].kind == "added"
    assert changes["board_approval"].kind == "added"
    assert "number" not in " ".join(changes)
    assert policy_diff(history.versions[0], history.versions[0]) == []


def test_a_removed_channel_and_an_added_requirement_are_named(tmp_path: Path) -> None:
    first = version_text(1, window=14)
    second = version_text(2, window=14, takes_effect=CHANGE_DAY).replace('"phone", ', "", 1)
    second = second.replace(
        '{ name = "planting_site"',
        '{ name = "water_source", label = { ar = "مصدر الماء", en = "Water source" } },\n  { name = "planting_site"',
        1,
    )
    history = load_packs(write_versions(tmp_path, v1=first, v2=second)).history("sidr")
    assert history is not None
    texts = [change.text("en") for change in policy_diff(*history.versions)]
    assert "Removed — Channels: phone" in texts
    assert any(
        text.startswith("Added — Services › seedlings › Required fields › water_source")
        for text in texts
    ), texts


def test_a_case_as_of_a_moment_names_the_version_that_governs_it() -> None:
    events = decided_case(AFTER_CHANGE, 2, within=False)
    state = state_at(timeline_of(*events), AFTER_CHANGE + timedelta(hours=2))
    assert state is not None and state.status == "verified" and state.policy_version == 2
    older = state_at(timeline_of(*decided_case(BEFORE_CHANGE, None, True)), AFTER_CHANGE)
    assert older is not None and older.policy_version is None
