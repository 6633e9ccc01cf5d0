"""The privacy service's access: every route as every kind of caller.

Every route is the privacy officer's, of the association in its path: no
token, a bad token, another role, or the role in another association is
refused (401/403, in the bilingual shape) before anything is read or erased.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import uuid4

import pytest

from shared.roles import AUDITOR, PRIVACY_OFFICER
from tests.access_matrix import Route, assert_every_route_declared, check_matrix
from tests.auth import as_role
from tests.in_process import InProcessService
from tests.unit.test_privacy_service import ERASURE, NATIONAL_ID, request_of

pytestmark = pytest.mark.unit

Start = Callable[..., Awaitable[InProcessService]]
OFFICER = (PRIVACY_OFFICER,)


async def test_every_privacy_route_as_every_kind_of_caller(in_process: Start) -> None:
    privacy = await in_process("privacy")
    request = request_of(privacy)
    await privacy.deliver(request)
    case = f"/associations/sidr/cases/{request.case_id}"
    routes = [
        Route(
            "POST",
            "/associations/sidr/erasures",
            "/associations/{association_id}/erasures",
            OFFICER,
            json={"national_id": NATIONAL_ID, **ERASURE},
        ),
        Route("GET", "/associations/sidr/erasures", "/associations/{association_id}/erasures", OFFICER),
        Route(
            "GET",
            f"/associations/sidr/erasures/{uuid4()}",
            "/associations/{association_id}/erasures/{erasure_id}",
            OFFICER,
        ),
        Route(
            "POST",
            f"{case}/hold",
            "/associations/{association_id}/cases/{case_id}/hold",
            OFFICER,
            json={"reason": "court order"},
        ),
        Route(
            "POST",
            f"{case}/hold/release",
            "/associations/{association_id}/cases/{case_id}/hold/release",
            OFFICER,
            json={"reason": "lifted"},
        ),
        Route("GET", "/associations/sidr/holds", "/associations/{association_id}/holds", OFFICER),
    ]
    assert_every_route_declared(privacy.api, routes)
    assert await check_matrix(privacy.client, routes) == []


async def test_the_auditor_and_another_associations_officer_erase_nothing(
    in_process: Start,
) -> None:
    privacy = await in_process("privacy")
    request = request_of(privacy)
    await privacy.deliver(request)
    body = {"national_id": NATIONAL_ID, **ERASURE}
    for headers in (as_role(AUDITOR, "sidr"), as_role(PRIVACY_OFFICER, "health-coop")):
        response = await privacy.client.post(
            "/associations/sidr/erasures", json=body, headers=headers
        )
        assert response.status_code == 403
        assert response.json()["message"]["ar"]
    assert privacy.app.keyring.key(str(request.payload.personal_key)) is not None
    # The other association's officer erases in their own association: not this person.
    theirs = await privacy.client.post(
        "/associations/health-coop/erasures",
        json=body,
        headers=as_role(PRIVACY_OFFICER, "health-coop"),
    )
    assert theirs.status_code == 201 and theirs.json()["key_ids"] == []
    assert privacy.app.keyring.key(str(request.payload.personal_key)) is not None
