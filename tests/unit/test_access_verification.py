"""Verification's routes as every kind of caller, and the reads it logs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.utils import get_topic

from services.verification.integration import data_verified
from services.verification.members import Member, legacy_member_id, member_id
from shared.access_log import CASE_FILE, MEMBER_RECORD, Access
from shared.events import Applicant, Attestation, Document, RequestReceived
from shared.roles import ADMIN, AUDITOR, FRONT_DESK, VERIFIER
from tests import builders
from tests.access_matrix import Route, assert_every_route_declared, check_matrix
from tests.auth import as_role, as_roles
from tests.in_process import InProcessService

pytestmark = pytest.mark.unit

Start = Callable[..., Awaitable[InProcessService]]
MEMBER = "1000000008"
ENTRY = {"name": "عضو", "joined_on": "2020-01-01", "status": "good", "status_since": "2020-01-01"}


async def test_every_verification_route_declares_its_role_and_refuses_every_other_caller(
    in_process: Start,
) -> None:
    verification = await in_process("verification")
    received = builders.request_received()
    await verification.deliver(received)
    await verification.settle()
    case = received.case_id
    routes = [
        Route("GET", "/verifications", "/verifications", ("verifier",), lists=True),
        Route("GET", f"/verifications/{case}", "/verifications/{case_id}", ("verifier", "auditor")),
        Route("GET", f"/verifications/{case}/file", "/verifications/{case_id}/file", ("verifier",)),
        Route(
            "POST",
            f"/verifications/{case}/confirmation",
            "/verifications/{case_id}/confirmation",
            ("verifier",),
            json={},
        ),
        Route(
            "POST",
            "/members/import",
            "/members/import",
            ("admin",),
            params={"association_id": "sidr"},
        ),
        Route(
            "PUT",
            f"/members/sidr/{MEMBER}",
            "/members/{association_id}/{national_id}",
            ("admin",),
            json=ENTRY,
        ),
        Route(
            "GET",
            f"/members/sidr/{MEMBER}",
            "/members/{association_id}/{national_id}",
            ("admin", "verifier"),
        ),
    ]
    assert_every_route_declared(verification.api, routes)
    assert await check_matrix(verification.client, routes) == []


async def test_the_queue_shows_only_the_associations_where_the_caller_verifies(
    in_process: Start,
) -> None:
    verification = await in_process("verification")
    await verification.deliver(builders.request_received())
    await verification.settle()
    sidr = await verification.client.get("/verifications", headers=as_role("verifier", "sidr"))
    elsewhere = await verification.client.get(
        "/verifications", headers=as_role("verifier", "health-coop")
    )
    assert [d["association_id"] for d in sidr.json()] == ["sidr"]
    assert elsewhere.status_code == 200 and elsewhere.json() == []


async def test_every_read_of_a_member_record_is_logged_with_who_and_which_record(
    in_process: Start,
) -> None:
    verification = await in_process("verification")
    admin = as_role("admin", "sidr", subject="admin-1")
    assert (
        await verification.client.put(f"/members/sidr/{MEMBER}", json=ENTRY, headers=admin)
    ).status_code == 200

    def reads() -> list[Access]:
        app = verification.app
        logged = app.read_notifications(0, 1000, ["shared.access_log:Access.Recorded"])
        return [app.repository.get(n.originator_id) for n in logged]

    assert reads() == []  # registering is not reading
    reader = as_role("verifier", "sidr", subject="verifier-9", name="Verifier Nine")
    shown = await verification.client.get(f"/members/sidr/{MEMBER}", headers=reader)
    assert shown.status_code == 200 and shown.json()["name"] == "عضو"
    [read] = reads()
    assert read.actor == {
        "kind": "officer",
        "id": "verifier-9",
        "name": "Verifier Nine",
        "role": "verifier",
    }
    assert (read.association_id, read.what) == ("sidr", MEMBER_RECORD)
    assert read.record_id == str(member_of(verification, MEMBER))
    assert MEMBER not in read.record_id  # the log names the record, not the person
    # ... by an id that derives from the blind index, not from the number
    assert read.record_id != str(legacy_member_id("sidr", MEMBER))
    refused = await verification.client.get(
        f"/members/sidr/{MEMBER}", headers=as_role("verifier", "health-coop")
    )
    assert refused.status_code == 403 and len(reads()) == 1  # a refused read is not a read


AISHA = "1012345672"
AISHA_ENTRY = {
    "name": "Aisha",
    "joined_on": "2020-01-01",
    "status": "good",
    "status_since": "2020-01-01",
}


def received(association_id: str = "sidr", **overrides: Any) -> RequestReceived:
    given: dict[str, Any] = {
        "association_id": association_id,
        "service_code": "volunteering",
        "applicant": Applicant(national_id=AISHA, name="Aisha", phone="0501234567"),
        "fields": {"availability": "weekends"},
        "documents": [Document(code="national_id_card", number=AISHA)],
        "attestation": Attestation(attested=True),
    }
    return builders.request_received(**{**given, **overrides})


async def opened(service: InProcessService, *events: RequestReceived) -> None:
    await service.deliver(*events)
    await service.settle()


def access_log(service: InProcessService) -> list[Any]:
    """The reads recorded in verification's own store, oldest first."""
    app = service.app
    notifications = app.read_notifications(0, 10_000, topics=[get_topic(Access.Recorded)])
    return [app.mapper.to_domain_event(n) for n in notifications]


def member_of(service: InProcessService, national_id: str, association_id: str = "sidr") -> UUID:
    """A member's id: from the blind index of the national id in the service's keyring."""
    index = service.app.subject_keys.subject_index(association_id, national_id)
    return member_id(association_id, index)


def stored_events(service: InProcessService, originator_id: UUID) -> list[Any]:
    return list(service.app.events.get(originator_id))


async def test_an_unknown_case_is_404_only_to_one_who_holds_the_role_somewhere(
    in_process: Start,
) -> None:
    verification = await in_process("verification")
    unknown = uuid4()
    for path in (f"/verifications/{unknown}", f"/verifications/{unknown}/file"):
        as_verifier = await verification.client.get(path, headers=as_role(VERIFIER, "elites"))
        assert as_verifier.status_code == 404, path
        assert as_verifier.json()["error"] == "verification_not_found"
        outsider = await verification.client.get(path, headers=as_role(FRONT_DESK))
        assert outsider.status_code == 403, path
    confirm = await verification.client.post(
        f"/verifications/{unknown}/confirmation", json={}, headers=as_role(VERIFIER, "elites")
    )
    assert confirm.status_code == 404
    assert access_log(verification) == []


async def test_another_associations_verifier_cannot_confirm_or_read_the_case(
    in_process: Start,
) -> None:
    verification = await in_process("verification")
    request = received()
    await opened(verification, request)
    elsewhere = as_role(VERIFIER, "health-coop")
    for response in (
        await verification.client.get(f"/verifications/{request.case_id}", headers=elsewhere),
        await verification.client.get(f"/verifications/{request.case_id}/file", headers=elsewhere),
        await verification.client.post(
            f"/verifications/{request.case_id}/confirmation", json={}, headers=elsewhere
        ),
    ):
        assert response.status_code == 403
        assert response.json()["error"] == "forbidden"
    assert verification.app.repository.get(request.case_id).status == "pending"
    assert access_log(verification) == []
    # The auditor of the case's association reads the verification, not the case file.
    auditor = as_role(AUDITOR)
    shown = await verification.client.get(f"/verifications/{request.case_id}", headers=auditor)
    assert shown.status_code == 200
    file = await verification.client.get(f"/verifications/{request.case_id}/file", headers=auditor)
    assert file.status_code == 403


# The queue -------------------------------------------------------------------------------


async def test_the_queue_lists_only_the_associations_where_the_caller_is_a_verifier(
    in_process: Start,
) -> None:
    verification = await in_process("verification")
    sidr_first = received(occurred_at=datetime(2025, 3, 1, 9, tzinfo=UTC))
    health = received("health-coop", occurred_at=datetime(2025, 3, 2, 9, tzinfo=UTC))
    sidr_second = received(
        case_ref="SDR-1446-000777", occurred_at=datetime(2025, 3, 3, 9, tzinfo=UTC)
    )
    elites = received("elites", occurred_at=datetime(2025, 3, 4, 9, tzinfo=UTC))
    await opened(verification, sidr_first, health, sidr_second, elites)

    async def listed(headers: dict[str, str], **params: Any) -> list[str] | int:
        response = await verification.client.get("/verifications", params=params, headers=headers)
        if response.status_code != 200:
            return response.status_code
        return [doc["case_id"] for doc in response.json()]

    sidr_only = as_role(VERIFIER)
    assert await listed(sidr_only) == [str(sidr_first.case_id), str(sidr_second.case_id)]
    # A verifier of sidr who is the auditor of elites sees only sidr's queue.
    mixed = as_roles({"sidr": [VERIFIER], "elites": [AUDITOR]}, subject="mixed-1")
    assert await listed(mixed) == [str(sidr_first.case_id), str(sidr_second.case_id)]

    both = as_roles({"sidr": [VERIFIER], "health-coop": [VERIFIER]}, subject="both-1")
    merged = [str(sidr_first.case_id), str(health.case_id), str(sidr_second.case_id)]
    assert await listed(both) == merged
    assert await listed(both, limit=2) == merged[:2]
    assert await listed(both, limit=2, offset=1) == merged[1:]
    assert await listed(both, status="confirmed") == []
    # One association of the caller's, or one case by its reference (as typed).
    assert await listed(both, association_id="health-coop") == [str(health.case_id)]
    assert await listed(both, case_ref="sdr-1446-000777") == [str(sidr_second.case_id)]
    assert await listed(both, association_id="elites") == 403
    assert await listed(mixed, association_id="elites") == 403


# The recorded officer ----------------------------------------------------------------------


async def test_a_body_naming_another_officer_does_not_change_the_recorded_officer(
    in_process: Start,
) -> None:
    verification = await in_process("verification")
    request = received()
    await opened(verification, request)
    headers = as_role(VERIFIER, subject="verifier-amal", name="Amal Al-Harbi")

    response = await verification.client.post(
        f"/verifications/{request.case_id}/confirmation",
        json={"officer": "verifier-someone-else"},
        headers=headers,
    )
    assert response.status_code == 202, response.text
    await verification.settle()

    principal = {
        "kind": "officer",
        "id": "verifier-amal",
        "name": "Amal Al-Harbi",
        "role": VERIFIER,
    }
    confirmed = stored_events(verification, request.case_id)[-1]
    assert confirmed.officer == "verifier-amal"
    assert confirmed.actor == principal
    published = data_verified(confirmed)
    assert published.actor.model_dump(mode="json") == principal
    assert published.payload.officer == "verifier-amal"
    doc = (
        await verification.client.get(f"/verifications/{request.case_id}", headers=headers)
    ).json()
    assert doc["officer"] == "verifier-amal" and doc["actor"] == principal
    assert "verifier-someone-else" not in str(stored_events(verification, request.case_id))


async def test_an_override_records_the_caller_too(in_process: Start) -> None:
    verification = await in_process("verification")
    request = received()
    await opened(verification, request)
    response = await verification.client.post(
        f"/verifications/{request.case_id}/confirmation",
        json={"officer": "chair-1", "outcome": "ineligible", "reason": "Applicant is deceased"},
        headers=as_role(VERIFIER, subject="verifier-9"),
    )
    assert response.status_code == 202, response.text
    confirmed = stored_events(verification, request.case_id)[-1]
    assert confirmed.override_reason == "Applicant is deceased"
    assert (confirmed.officer, confirmed.actor["id"], confirmed.actor["role"]) == (
        "verifier-9",
        "verifier-9",
        VERIFIER,
    )


async def test_registry_changes_record_the_administrator_not_anyone_named_in_the_body(
    in_process: Start,
) -> None:
    verification = await in_process("verification")
    admin = as_role(ADMIN, subject="admin-noura", name="Noura")
    put = await verification.client.put(f"/members/sidr/{AISHA}", json=AISHA_ENTRY, headers=admin)
    assert put.status_code == 200, put.text
    csv = (
        "national_id,name,joined_on,status,status_since\n"
        f"{AISHA},Aisha,2020-01-01,suspended,2025-02-15\n"
    )
    imported = await verification.client.post(
        "/members/import",
        params={"association_id": "sidr"},
        content=csv.encode(),
        headers=as_role(ADMIN, subject="admin-omar"),
    )
    assert imported.status_code == 200, imported.text
    assert imported.json()["updated"] == 1

    registered, suspended = stored_events(verification, member_of(verification, AISHA))
    assert isinstance(registered, Member.Registered)
    assert registered.actor == {
        "kind": "officer",
        "id": "admin-noura",
        "name": "Noura",
        "role": ADMIN,
    }
    assert isinstance(suspended, Member.StandingChanged)
    assert suspended.actor["id"] == "admin-omar" and suspended.actor["role"] == ADMIN

    # A body field naming someone is not a registry field: refused, nothing recorded.
    named = await verification.client.put(
        f"/members/sidr/{AISHA}", json={**AISHA_ENTRY, "added_by": "someone"}, headers=admin
    )
    assert named.status_code == 422
    assert len(stored_events(verification, member_of(verification, AISHA))) == 2


# The case file and the access log ----------------------------------------------------------


async def test_the_case_file_shows_every_revision_as_received_beside_its_checks_and_is_logged(
    in_process: Start,
) -> None:
    verification = await in_process("verification")
    first = received(attestation=None, fields={})
    await opened(verification, first)
    headers = as_role(VERIFIER, subject="verifier-amal", name="Amal")
    confirmed = await verification.client.post(
        f"/verifications/{first.case_id}/confirmation", json={}, headers=headers
    )
    assert confirmed.json()["outcome"] == "discrepancies"
    corrected = first.model_copy(
        update={
            "event_id": uuid4(),
            "payload": first.payload.model_copy(
                update={
                    "attestation": Attestation(attested=True),
                    "fields": {"availability": "weekends"},
                    "revision": 2,
                }
            ),
        }
    )
    await opened(verification, corrected)
    assert access_log(verification) == []

    response = await verification.client.get(
        f"/verifications/{first.case_id}/file", headers=headers
    )
    assert response.status_code == 200, response.text
    file = response.json()
    assert (file["case_id"], file["case_ref"], file["association_id"]) == (
        str(first.case_id),
        first.case_ref,
        "sidr",
    )
    assert file["revision"] == 2 and file["status"] == "pending"
    one, two = file["revisions"]
    assert (one["revision"], one["status"], one["outcome"]) == (1, "confirmed", "discrepancies")
    assert one["officer"] == "verifier-amal"
    assert one["received"]["applicant"] == {
        "national_id": AISHA,
        "name": "Aisha",
        "phone": "0501234567",
        "email": None,
    }
    assert one["received"]["attestation"] is None and one["received"]["fields"] == {}
    assert one["received"]["documents"][0]["code"] == "national_id_card"
    assert {c["name"]: c["passed"] for c in one["checks"]}["attestation_signed"] is False
    assert (two["revision"], two["status"], two["suggested_outcome"]) == (2, "pending", "verified")
    assert two["received"]["attestation"]["attested"] is True
    assert two["received"]["fields"] == {"availability": "weekends"}
    assert all(c["passed"] for c in two["checks"])
    assert two["submitted_at_display"]["hijri"]

    (read,) = access_log(verification)
    assert read.actor == {
        "kind": "officer",
        "id": "verifier-amal",
        "name": "Amal",
        "role": VERIFIER,
    }
    assert (read.association_id, read.what, read.record_id) == (
        "sidr",
        CASE_FILE,
        str(first.case_id),
    )
    # Every read is logged; the queue and the verification itself are not case files.
    await verification.client.get(f"/verifications/{first.case_id}/file", headers=headers)
    await verification.client.get(f"/verifications/{first.case_id}", headers=headers)
    await verification.client.get("/verifications", headers=headers)
    assert len(access_log(verification)) == 2


async def test_a_member_record_read_is_logged_by_the_records_id_never_the_national_id(
    in_process: Start,
) -> None:
    verification = await in_process("verification")
    await verification.client.put(
        f"/members/sidr/{AISHA}", json=AISHA_ENTRY, headers=as_role(ADMIN)
    )
    assert access_log(verification) == []

    headers = as_role(VERIFIER, subject="verifier-amal", name="Amal")
    response = await verification.client.get(f"/members/sidr/{AISHA}", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["member_id"] == str(member_of(verification, AISHA))
    assert response.json()["status"] == "good"

    (read,) = access_log(verification)
    assert read.actor == {
        "kind": "officer",
        "id": "verifier-amal",
        "name": "Amal",
        "role": VERIFIER,
    }
    assert (read.association_id, read.what, read.record_id) == (
        "sidr",
        MEMBER_RECORD,
        str(member_of(verification, AISHA)),
    )
    assert AISHA not in str(read.__dict__)

    as_admin = await verification.client.get(f"/members/sidr/{AISHA}", headers=as_role(ADMIN))
    assert as_admin.status_code == 200
    assert [r.actor["role"] for r in access_log(verification)] == [VERIFIER, ADMIN]
    # Nobody's record was read: nothing to log.
    unknown = await verification.client.get("/members/sidr/1000000008", headers=headers)
    assert unknown.status_code == 404
    # Another association's verifier is refused before anything is read.
    refused = await verification.client.get(
        f"/members/sidr/{AISHA}", headers=as_role(VERIFIER, "health-coop")
    )
    assert refused.status_code == 403
    assert len(access_log(verification)) == 2
