"""Verification's routes as every kind of caller, and the reads it logs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from services.verification.members import member_id
from shared.access_log import MEMBER_RECORD, Access
from tests import builders
from tests.access_matrix import Route, assert_every_route_declared, check_matrix
from tests.auth import as_role
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
    assert (await verification.client.put(f"/members/sidr/{MEMBER}", json=ENTRY, headers=admin)).status_code == 200

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
        "kind": "officer", "id": "verifier-9", "name": "Verifier Nine", "role": "verifier"
    }
    assert (read.association_id, read.what) == ("sidr", MEMBER_RECORD)
    assert read.record_id == str(member_id("sidr", MEMBER))
    assert MEMBER not in read.record_id  # the log names the record, not the person
    refused = await verification.client.get(
        f"/members/sidr/{MEMBER}", headers=as_role("verifier", "health-coop")
    )
    assert refused.status_code == 403 and len(reads()) == 1  # a refused read is not a read
