"""Compliance against real stores and a real stream: one case per violation, each
found on its own case with the events that prove it; the clean cases raise nothing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Callable

import pytest

from audit.compliance import run_checks
from audit.settings import AuditSettings
from audit.timeline import case_timelines, case_timelines_from_stream
from khidma.nats_server import NatsServer
from tests.integration.test_audit_replay import publish, write_stores
from tests.unit.test_audit_compliance import SIGNED, T0, CaseHistory

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


VIOLATIONS: dict[str, Callable[[CaseHistory], list[str]]] = {
    f.__name__: f for f in (
        delivered_without_approval, decision_without_verification, file_without_declaration,
        decision_after_window, referral_never_closed, no_survey_invitation, votes_below_quorum,
        vote_by_recused_member,
    )
}
# What a stream-only audit can see: the closure and the invitation are only in the stores.
STORE_ONLY = {"referral_never_closed", "no_survey_invitation"}


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
    publish(nats_server.url, histories + clean)

    both = {(e.check, e.case_id): e.event_ids for e in run_checks(case_timelines(settings, stream=True))}
    assert both == expected
    stores = {(e.check, e.case_id): e.event_ids for e in run_checks(case_timelines(settings))}
    assert stores == expected
    stream = {(e.check, e.case_id): e.event_ids
              for e in run_checks(case_timelines_from_stream(str(settings.nats_url)))}
    assert stream == {key: ids for key, ids in expected.items() if key[0] not in STORE_ONLY}
