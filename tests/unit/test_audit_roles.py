"""Roles are history in the audit: the identity store replayed answers who held which
role where and when; compliance lists an action by someone who did not hold the
role it needs at that moment, and every verification override with its reason;
the access log is read back; the audit API is the auditor's.

The identity store is written by the identity application itself (grant, then
revoke, on a SQLite file, at a frozen clock); the cases are
tests.unit.test_audit_compliance.CaseHistory stories.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.domain import Aggregate, event
from fastapi.testclient import TestClient

from audit import compliance
from audit.access import access_reads
from audit.api import create_app
from audit.cli import main as audit_main
from audit.compliance import CheckContext, checks_not_run, run_checks
from audit.roles import RoleHistory, load_role_history, stores_read
from audit.settings import AuditSettings
from audit.stores import SERVICES, store_env
from audit.tamper import ALTERED, verify_store
from services.identity.application import IdentityApplication
from services.identity.domain import user_id
from services.identity.tokens import TokenPolicy
from shared import events as ev
from shared.access_log import CASE_FILE, MEMBER_RECORD
from shared.clock import FrozenClock
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs
from shared.roles import AUDITOR, COMMITTEE_MEMBER, FRONT_DESK, VERIFIER
from shared.store import ServiceApplication, open_application
from tests.auth import ASSOCIATIONS, as_role, as_roles
from tests.unit.test_audit_compliance import T0, CaseHistory

pytestmark = pytest.mark.unit

PACKS = load_packs(DEFAULT_POLICIES_DIR)
D = timedelta(days=1)
H = timedelta(hours=1)
GRANTED = T0 - 10 * D
REVOKED = T0 + 12 * H  # omar's committee seat ends half a day into the case


@pytest.fixture
def settings(tmp_path: Path) -> AuditSettings:
    return AuditSettings(data_dir=tmp_path / "data")


def identity_store(settings: AuditSettings) -> dict[str, str]:
    """The identity service's store as its application writes it: omar is a committee
    member of sidr from GRANTED until REVOKED; vera a verifier of sidr throughout.
    Returns their ids (a token's subject)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    clock = FrozenClock(GRANTED)
    env = {**store_env("identity", settings), "CREATE_TABLE": "y"}
    app = open_application(
        IdentityApplication,
        env,
        clock=clock,
        packs=PACKS,
        key_file=settings.data_dir / "identity-keys.json",
        tokens=TokenPolicy(issuer="http://id.test", audience="khidma"),
    )
    try:
        app.register_user("omar", "Omar", by="admin", password="a long enough passphrase")
        app.grant("omar", COMMITTEE_MEMBER, "sidr", by="admin")
        app.register_user(
            "vera", "Vera", by="admin", password="a long enough passphrase",
            roles={"sidr": [VERIFIER]},
        )
        clock.advance(REVOKED - GRANTED)
        app.revoke("omar", COMMITTEE_MEMBER, "sidr", by="admin", reason="term ended")
    finally:
        app.close()
    return {"omar": str(user_id("omar")), "vera": str(user_id("vera"))}


def member(subject: str, name: str = "Omar") -> ev.Actor:
    return ev.Actor(kind="committee", id=subject, name=name, role=COMMITTEE_MEMBER)


def verifier(subject: str, role: str = VERIFIER) -> ev.Actor:
    return ev.Actor(kind="officer", id=subject, name="Vera", role=role)


def judged(history: CaseHistory, roles: RoleHistory | None, **sources: bool) -> list[Any]:
    context = CheckContext(roles=roles)
    timeline = history.timeline(**(sources or {"stores": True, "stream": True}))
    return list(run_checks([timeline], ["acted_without_role"], context=context))


# --- the role history ----------------------------------------------------------------


def test_the_identity_store_replayed_says_who_held_which_role_when(settings) -> None:
    ids = identity_store(settings)
    history = load_role_history(settings)
    assert history is not None
    for who in (ids["omar"], "omar"):  # by the token's subject, or by the user name
        assert history.held(who, COMMITTEE_MEMBER, "sidr", GRANTED + H) is True
        assert history.held(who, COMMITTEE_MEMBER, "sidr", REVOKED + H) is False
        assert history.held(who, COMMITTEE_MEMBER, "sidr", GRANTED - H) is False
        assert history.held(who, COMMITTEE_MEMBER, "elites", GRANTED + H) is False
    (period,) = history.holder("omar").periods
    assert (period.until, period.revoked_by, period.reason) == (REVOKED, "admin", "term ended")
    assert history.held(ids["vera"], VERIFIER, "sidr", REVOKED + 30 * D) is True
    assert history.held("someone-else", VERIFIER, "sidr", T0) is None  # not this store's


def test_the_roles_command_answers_by_replay(settings, capsys) -> None:
    identity_store(settings)
    base = ["--data-dir", str(settings.data_dir), "roles"]
    at_vote = (T0 + D).isoformat()
    assert audit_main([*base, "omar", "--role", COMMITTEE_MEMBER, "--association", "sidr",
                       "--at", at_vote, "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["held"] is False
    assert audit_main([*base, "omar", "--role", COMMITTEE_MEMBER, "--association", "sidr",
                       "--at", (T0 - D).isoformat()]) == 0
    assert "held" in capsys.readouterr().out
    assert audit_main(base) == 0
    listing = capsys.readouterr().out
    assert "omar" in listing and "term ended" in listing and "vera" in listing
    assert "argon2" not in listing  # never a password hash


def test_without_an_identity_store_there_is_no_history(settings) -> None:
    assert load_role_history(settings) is None


# --- the check: an action by someone who did not hold the role ------------------------


@pytest.mark.parametrize("sources", [dict(stores=True, stream=True), dict(stores=True, stream=False)],
                         ids=["both", "stores"])
def test_a_vote_cast_after_the_members_role_was_revoked_is_an_exception(settings, sources) -> None:
    ids = identity_store(settings)
    roles = load_role_history(settings)
    history = CaseHistory()
    history.received(T0)
    verified = history.verified(T0 + H)
    decision = history.decided(T0 + D, "approved", verified,
                               voters_as={"member-2": member(ids["omar"])})
    history.invited(T0 + 2 * D, decision)
    (item,) = judged(history, roles, **sources)
    assert item.check == "acted_without_role" and item.case_ref == history.ref
    assert item.event_ids == [str(decision)]  # the decision the vote went into
    assert item.proven_at == T0 + D
    assert "Omar" in item.message["en"] and ids["omar"] in item.message["en"]
    assert COMMITTEE_MEMBER in item.message["en"] and "revoked on" in item.message["en"]
    assert "سُحب" in item.message["ar"]


def test_a_vote_cast_while_the_role_was_held_is_not(settings) -> None:
    ids = identity_store(settings)
    roles = load_role_history(settings)
    history = CaseHistory()
    history.received(T0)
    decision = history.decided(T0 + D, "approved", history.verified(T0 + H),
                               voters_as={"member-2": member(ids["omar"])}, cast_at=T0 + 2 * H)
    history.invited(T0 + 2 * D, decision)
    assert judged(history, roles) == []


def test_an_actor_with_no_role_recorded_or_unknown_to_the_store_is_not_judged(settings) -> None:
    identity_store(settings)
    roles = load_role_history(settings)
    history = CaseHistory()
    history.clean()  # every actor as recorded before identities: kind and id only
    assert judged(history, roles) == []
    other = CaseHistory()
    other.received(T0)
    # another trusted issuer's subject: the identity store has no history of it
    other.verified(T0 + H, actor=verifier("keycloak-7f3a"))
    assert judged(other, roles) == []


def test_an_action_in_a_role_it_is_not_taken_in_is_an_exception(settings) -> None:
    ids = identity_store(settings)
    roles = load_role_history(settings)
    history = CaseHistory()
    history.received(T0)
    fine = history.verified(T0 + H, actor=verifier(ids["vera"]))
    assert judged(history, roles) == []
    # vera confirms as front_desk: a role she never held, and not the verifier's
    wrong = history.verified(T0 + 2 * H, actor=verifier(ids["vera"], role=FRONT_DESK))
    (item,) = judged(history, roles)
    assert item.event_ids == [str(wrong)] and str(fine) not in item.event_ids
    assert "did not hold" in item.message["en"]


def test_without_the_identity_store_the_check_is_named_as_not_run(settings) -> None:
    ids = {"omar": str(user_id("omar"))}
    history = CaseHistory()
    history.received(T0)
    history.decided(T0 + D, "approved", history.verified(T0 + H),
                    voters_as={"member-2": member(ids["omar"])})
    assert judged(history, None) == []  # silent: nothing to judge against
    assert "acted_without_role" in checks_not_run(stores_read(SERVICES, None), packs=PACKS)
    identity_store(settings)
    roles = load_role_history(settings)
    assert "acted_without_role" not in checks_not_run(stores_read(SERVICES, roles), packs=PACKS)
    assert [e.check for e in judged(history, roles)] == ["acted_without_role"]


def test_the_compliance_command_reads_the_identity_store(settings, capsys) -> None:
    from tests.integration.test_audit_replay import write_stores

    ids = identity_store(settings)
    late_vote = CaseHistory(ref="SDR-1448-000001")
    late_vote.received(T0)
    decision = late_vote.decided(T0 + D, "approved", late_vote.verified(T0 + H),
                                 voters_as={"member-2": member(ids["omar"])})
    late_vote.delivered(T0 + 2 * D, decision)
    write_stores(settings, [late_vote])
    code = audit_main(["--data-dir", str(settings.data_dir), "compliance", "--source", "stores",
                       "--check", "acted_without_role", "--json"])
    found = json.loads(capsys.readouterr().out)
    assert code == 1 and [(e["check"], e["case_ref"]) for e in found] == [
        ("acted_without_role", late_vote.ref)]


# --- every override, with its reason -------------------------------------------------------


def test_an_override_is_listed_with_its_reason_and_the_officer_who_made_it(settings) -> None:
    ids = identity_store(settings)
    history = CaseHistory()
    history.received(T0)
    failed = {"name": "national_id_check_digit", "passed": False, "detail": "bad digit"}
    overridden = history.verified(T0 + H, checks=[failed], override_reason="trust me",
                                  actor=verifier(ids["vera"]))
    decision = history.decided(T0 + D, "approved", overridden)
    history.invited(T0 + D, decision, "approved")
    context = CheckContext(packs=PACKS, roles=load_role_history(settings))
    found = list(run_checks([history.timeline()], context=context))
    assert [e.check for e in found] == ["verification_override"]  # vera was a verifier then
    (item,) = found
    assert item.event_ids == [str(overridden)]
    assert "trust me" in item.message["en"] and "trust me" in item.message["ar"]
    assert "national_id_check_digit" in item.message["en"]
    assert f"Vera ({ids['vera']})" in item.message["en"]  # the principal, not a body field


# --- the access log ------------------------------------------------------------------------


class Reader(ServiceApplication):
    """A service's store, holding only what the access log writes."""


class Ledger(Aggregate):
    @event("Opened")
    def __init__(self, title: str) -> None:
        self.title = title


def log_reads(settings: AuditSettings, service: str, clock: FrozenClock,
              reads: list[tuple[timedelta, dict[str, Any], str, str, str]]) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    env = {**store_env(service, settings), "CREATE_TABLE": "y"}
    app = open_application(type(service, (Reader,), {"name": service}), env, clock=clock)
    try:
        app.save(Ledger("something else in the store"))
        for after, actor, association_id, what, record_id in reads:
            clock.advance(after)
            app.record_access(actor, association_id, what, record_id)
    finally:
        app.close()


def reader(subject: str, name: str, role: str) -> dict[str, Any]:
    return {"kind": "officer", "id": subject, "name": name, "role": role}


@pytest.fixture
def access_logs(settings: AuditSettings) -> dict[str, Any]:
    case, other = str(uuid4()), str(uuid4())
    vera = reader("u-vera", "Vera", VERIFIER)
    desk = reader("u-desk", "Desk", FRONT_DESK)
    log_reads(settings, "verification", FrozenClock(T0), [
        (H, vera, "sidr", CASE_FILE, case),
        (2 * D, vera, "sidr", MEMBER_RECORD, "member-1"),
    ])
    log_reads(settings, "intake", FrozenClock(T0), [
        (2 * H, desk, "sidr", CASE_FILE, case),
        (3 * D, desk, "elites", CASE_FILE, other),
    ])
    return {"case": case, "other": other}


def test_the_access_log_lists_who_read_what_when(settings, access_logs) -> None:
    reads = list(access_reads(settings))
    assert [(r.service, r.at, r.actor["name"], r.what) for r in reads] == [
        ("verification", T0 + H, "Vera", CASE_FILE),
        ("intake", T0 + 2 * H, "Desk", CASE_FILE),
        ("verification", T0 + H + 2 * D, "Vera", MEMBER_RECORD),
        ("intake", T0 + 2 * H + 3 * D, "Desk", CASE_FILE),
    ]
    of_case = list(access_reads(settings, record_id=access_logs["case"]))
    assert [(r.service, r.actor["id"]) for r in of_case] == [("verification", "u-vera"), ("intake", "u-desk")]
    assert [r.what for r in access_reads(settings, who="Vera")] == [CASE_FILE, MEMBER_RECORD]
    within = list(access_reads(settings, start=T0 + timedelta(minutes=90), end=T0 + 2 * D))
    assert [r.service for r in within] == ["intake"]


def test_the_access_command(settings, access_logs, capsys) -> None:
    base = ["--data-dir", str(settings.data_dir), "access"]
    assert audit_main([*base, "--case", access_logs["case"], "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["service"], r["actor"]["name"], r["what"]) for r in listed] == [
        ("verification", "Vera", CASE_FILE), ("intake", "Desk", CASE_FILE)]
    assert listed[0]["when"]["hijri"] and listed[0]["at"] == (T0 + H).isoformat()
    day = (T0 + 3 * D).date().isoformat()
    assert audit_main([*base, "--from", day, "--to", day, "--json"]) == 0
    assert [r["record_id"] for r in json.loads(capsys.readouterr().out)] == [access_logs["other"]]
    assert audit_main([*base]) == 0
    text = capsys.readouterr().out
    assert "Vera (u-vera)" in text and "4 " in text


def test_verify_covers_the_access_log(settings, access_logs) -> None:
    import sqlite3

    env = store_env("verification", settings)
    assert verify_store(env, service="verification").ok
    path = settings.sqlite_path("verification")
    with sqlite3.connect(path) as connection:  # someone erases who read the case file
        connection.execute("UPDATE stored_events SET state = ? WHERE rowid = 2", (b'{"who":"nobody"}',))
    result = verify_store(env, service="verification")
    assert not result.ok
    assert (result.first_break.kind, result.first_break.notification_id) == (ALTERED, 2)


# --- the audit API is the auditor's ---------------------------------------------------


def test_the_audit_api_needs_the_auditor_role(settings, access_logs) -> None:
    ids = identity_store(settings)
    history = CaseHistory()
    history.received(T0)
    decision = history.decided(T0 + D, "approved", history.verified(T0 + H),
                               voters_as={"member-2": member(ids["omar"])})
    history.invited(T0 + 3 * D, history.delivered(T0 + 2 * D, decision))
    from tests.integration.test_audit_replay import write_stores

    write_stores(settings, [history])
    client = TestClient(create_app(settings))
    assert client.get("/health").status_code == 200  # open
    for path in ("/compliance", f"/cases/{history.ref}/timeline", "/asof", "/crosscheck", "/access"):
        refused = client.get(path)
        assert refused.status_code == 401, path
        assert refused.json()["error"] == "token_missing" and refused.json()["message"]["ar"]
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        wrong = client.get(path, headers=as_role(FRONT_DESK, "sidr"))
        assert wrong.status_code == 403 and wrong.json()["error"] == "forbidden", path
    auditor = as_role(AUDITOR, "sidr")
    answered = client.get("/compliance", headers=auditor)
    assert answered.status_code == 200
    assert "acted_without_role" not in answered.json()["checks_not_run"]
    assert [e["check"] for e in answered.json()["exceptions"]] == ["acted_without_role"]
    assert client.get(f"/cases/{history.ref}/timeline", headers=auditor).status_code == 200
    assert client.get("/asof", headers=auditor).status_code == 200
    reads = client.get("/access", headers=auditor, params={"case": access_logs["case"]})
    assert reads.status_code == 200 and len(reads.json()["reads"]) == 2
    # An auditor of another association: not this case, nor sidr's reads.
    elites = as_role(AUDITOR, "elites")
    assert client.get(f"/cases/{history.ref}/timeline", headers=elites).status_code == 403
    assert client.get(f"/cases/{uuid4()}/timeline", headers=elites).status_code == 404
    assert client.get("/compliance", headers=elites).json()["exceptions"] == []
    assert [r["association_id"] for r in client.get("/access", headers=elites).json()["reads"]] == ["elites"]
    everywhere = as_roles({a: [AUDITOR] for a in ASSOCIATIONS}, subject="auditor-1")
    assert len(client.get("/access", headers=everywhere).json()["reads"]) == 4


def test_every_new_check_has_its_titles() -> None:
    for code in ("acted_without_role", "verification_override"):
        title = compliance.REGISTRY[code].title
        assert title["ar"] and title["en"]
    assert compliance.REGISTRY["acted_without_role"].needs_stores == ("identity",)
