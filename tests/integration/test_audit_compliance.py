"""Compliance against real stores and a real stream: one case per violation, each
found on its own case with the events that prove it; the clean cases raise nothing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Callable

import pytest

from audit.compliance import CheckContext, run_checks
from audit.roles import load_role_history
from audit.settings import AuditSettings
from audit.timeline import case_timelines, case_timelines_from_stream
from khidma.nats_server import NatsServer
from services.identity.domain import user_id
from shared.events import Actor
from tests.integration.test_audit_replay import publish, write_stores
from tests.unit.test_audit_compliance import SIGNED, T0, CaseHistory
from tests.unit.test_audit_roles import identity_store

pytestmark = pytest.mark.integration
H = timedelta(hours=1)
D = timedelta(days=1)


def delivered_without_approval(h: CaseHistory) -> list[str]:
    h.received(T0)
    decision = h.decided(T0 + D, "rejected", h.verified(T0 + H))
    delivered = h.delivered(T0 + 2 * D, decision)
    h.invited(T0 + 2 * D, delivered)
    return [str(delivered), str(decision)]


def decision_without_verification(h: CaseHistory) -> list[str]:
    decision = h.decided(T0 + D, "rejected", h.received(T0))
    h.invited(T0 + D, decision, "rejected")
    return [str(decision)]


def file_without_declaration(h: CaseHistory) -> list[str]:
    request = h.received(T0, {**SIGNED, "attested": False})
    decision = h.decided(T0 + D, "rejected", h.verified(T0 + H))
    h.invited(T0 + D, decision, "rejected")
    return [str(request), str(decision)]


def decision_after_window(h: CaseHistory) -> list[str]:
    h.received(T0)
    decision = h.decided(T0 + 15 * D, "rejected", h.verified(T0 + H))
    h.invited(T0 + 15 * D, decision, "rejected")
    return [str(decision)]


def referral_never_closed(h: CaseHistory) -> list[str]:
    h.received(T0)
    referral = h.referred(T0 + H)
    decision = h.decided(T0 + D, "rejected", h.verified(T0 + 2 * H))
    h.invited(T0 + D, decision, "rejected")
    return [str(referral), str(decision)]


def no_survey_invitation(h: CaseHistory) -> list[str]:
    h.received(T0)
    decision = h.decided(T0 + D, "approved", h.verified(T0 + H))
    return [str(h.delivered(T0 + 2 * D, decision))]


def votes_below_quorum(h: CaseHistory) -> list[str]:
    h.received(T0)
    decision = h.decided(T0 + D, "rejected", h.verified(T0 + H), members=("chair", "member-2"))
    h.invited(T0 + D, decision, "rejected")
    return [str(decision)]


def vote_by_recused_member(h: CaseHistory) -> list[str]:
    h.received(T0)
    members = ("chair", "member-2", "member-3", "member-4")
    decision = h.decided(T0 + D, "rejected", h.verified(T0 + H), members=members, recusals=("member-2",))
    h.invited(T0 + D, decision, "rejected")
    return [str(decision)]


def acted_without_role(h: CaseHistory) -> list[str]:
    """omar's vote, a day after his committee seat was revoked (tests.unit.test_audit_roles's
    identity store: the audit finds it there, written by the identity application)."""
    h.received(T0)
    omar = Actor(kind="committee", id=str(user_id("omar")), name="Omar", role="committee_member")
    decision = h.decided(T0 + D, "rejected", h.verified(T0 + H), voters_as={"member-2": omar})
    h.invited(T0 + D, decision, "rejected")
    return [str(decision)]


VIOLATIONS: dict[str, Callable[[CaseHistory], list[str]]] = {
    f.__name__: f for f in (
        delivered_without_approval, decision_without_verification, file_without_declaration,
        decision_after_window, referral_never_closed, no_survey_invitation, votes_below_quorum,
        vote_by_recused_member, acted_without_role,
    )
}
# What a stream-only audit can see: the closure and the invitation are only in the stores,
# and so is each member's vote.
STORE_ONLY = {"referral_never_closed", "no_survey_invitation", "acted_without_role"}


def test_each_violation_is_found_on_its_case_and_clean_cases_raise_nothing(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    histories: list[CaseHistory] = []
    expected: dict[tuple[str, str], list[str]] = {}
    for number, (code, build) in enumerate(VIOLATIONS.items(), start=1):
        history = CaseHistory(ref=f"SDR-1448-{number:06d}")
        expected[(code, str(history.case_id))] = build(history)
        histories.append(history)
    clean = []
    for number, (outcome, referral) in enumerate(
        [("approved", False), ("rejected", False), ("approved", True)], start=100
    ):
        history = CaseHistory(ref=f"SDR-1448-{number:06d}")
        history.clean(outcome=outcome, referral=referral)
        clean.append(history)
    settings = AuditSettings(data_dir=tmp_path / "data", nats_url=nats_server.url)
    write_stores(settings, histories + clean)
    identity_store(settings)
    publish(nats_server.url, histories + clean)
    context = CheckContext(roles=load_role_history(settings))

    both = {(e.check, e.case_id): e.event_ids
            for e in run_checks(case_timelines(settings, stream=True), context=context)}
    assert both == expected
    stores = {(e.check, e.case_id): e.event_ids for e in run_checks(case_timelines(settings), context=context)}
    assert stores == expected
    stream = {(e.check, e.case_id): e.event_ids
              for e in run_checks(case_timelines_from_stream(str(settings.nats_url)), context=context)}
    assert stream == {key: ids for key, ids in expected.items() if key[0] not in STORE_ONLY}


def test_the_compliance_command_audits_as_of_a_moment_with_the_policys_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from audit.cli import main as audit_main

    referred = CaseHistory(ref="SDR-1448-000001")
    referred.received(T0)
    referred.referred(T0 + H)
    late = CaseHistory(ref="SDR-1448-000002")
    late.received(T0)
    # the committee recorded a 30-day window and called day 20 within it; the policy says 14
    decision = late.decided(T0 + 20 * D, "rejected", late.verified(T0 + H), window_days=30)
    late.invited(T0 + 20 * D, decision, "rejected")
    settings = AuditSettings(data_dir=tmp_path / "data")
    write_stores(settings, [referred, late])

    def audit(*argv: str) -> set[tuple[str, str]]:
        code = audit_main(["--data-dir", str(settings.data_dir), "compliance", "--source", "stores", "--json", *argv])
        found = json.loads(capsys.readouterr().out)
        assert code == (1 if found else 0)
        return {(e["check"], e["case_ref"]) for e in found}

    # ten days in: the referral is young and the decision not yet taken
    assert audit("--as-of", (T0 + 10 * D).isoformat()) == set()
    # a month in: the referral is overdue and the decision was late by the policy
    assert audit("--as-of", (T0 + 30 * D).isoformat()) == {
        ("referral_never_closed", referred.ref), ("decision_after_window", late.ref),
        ("window_differs_from_policy", late.ref)}
