"""Surveys' access: every route as every kind of caller, and what each role sees.

The survey and its answer are public (the token the applicant was sent is
their proof); the invitations are the surveys officer's, and only of the
associations they hold the role in; the results are the surveys officer's and
the auditor's, narrowed the same way. No route shows a token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import uuid4

import pytest

from shared.events import Applicant, RequestReceived
from shared.roles import AUDITOR, FRONT_DESK, SURVEYS_OFFICER
from tests import builders
from tests.access_matrix import Route, assert_every_route_declared, check_matrix
from tests.auth import as_role, as_roles
from tests.in_process import InProcessService

pytestmark = pytest.mark.unit

Start = Callable[..., Awaitable[InProcessService]]


def received(association_id: str, service_code: str) -> RequestReceived:
    return builders.request_received(
        association_id=association_id,
        case_ref=f"T-{uuid4().hex[:8]}",
        service_code=service_code,
        applicant=Applicant(national_id="1000000008", name="Applicant", phone="0500000001"),
    )


async def invited(surveys: InProcessService, association_id: str, service_code: str) -> str:
    """A delivered request of the association, whose applicant is invited; its case id."""
    request = received(association_id, service_code)
    await surveys.deliver(request, builders.service_delivered(request))
    await surveys.settle()
    return str(request.case_id)


def token_of(surveys: InProcessService, case_id: str) -> str:
    from uuid import UUID

    return str(surveys.app.repository.get(UUID(case_id)).token)


async def test_every_surveys_route_as_every_kind_of_caller(in_process: Start) -> None:
    surveys = await in_process("surveys")
    case_id = await invited(surveys, "sidr", "seedlings")
    token = token_of(surveys, case_id)
    answer = {"ratings": {"satisfaction": 4}}
    routes = [
        Route("GET", f"/surveys/{token}", "/surveys/{token}", ()),
        Route("POST", "/surveys/no-such-token/answers", "/surveys/{token}/answers", (), json=answer),
        Route(
            "GET", f"/surveys/by-case/{case_id}", "/surveys/by-case/{case_id}", (SURVEYS_OFFICER,)
        ),
        # The lists name their association here: without one, a caller holding the
        # role in another association gets that one's (the next tests).
        Route(
            "GET",
            "/results",
            "/results",
            (SURVEYS_OFFICER, AUDITOR),
            params={"association_id": "sidr"},
        ),
        Route(
            "GET",
            "/surveys",
            "/surveys",
            (SURVEYS_OFFICER,),
            params={"association_id": "sidr"},
        ),
    ]
    assert_every_route_declared(surveys.api, routes)
    assert await check_matrix(surveys.client, routes) == []
    # The public survey still works: the token was the applicant's proof all along.
    form = await surveys.client.get(f"/surveys/{token}")
    assert form.status_code == 200
    answered = await surveys.client.post(f"/surveys/{token}/answers", json=answer)
    assert answered.status_code == 202


async def test_the_invitation_of_a_case_is_for_the_surveys_officer_of_its_association(
    in_process: Start,
) -> None:
    surveys = await in_process("surveys")
    case_id = await invited(surveys, "sidr", "seedlings")
    token = token_of(surveys, case_id)

    ours = await surveys.client.get(
        f"/surveys/by-case/{case_id}", headers=as_role(SURVEYS_OFFICER, "sidr")
    )
    assert ours.status_code == 200
    assert ours.json()["case_id"] == case_id and ours.json()["association_id"] == "sidr"
    # Never the token: it answers the survey in the applicant's name.
    assert "token" not in ours.json() and token not in ours.text

    theirs = await surveys.client.get(
        f"/surveys/by-case/{case_id}", headers=as_role(SURVEYS_OFFICER, "health-coop")
    )
    assert theirs.status_code == 403
    assert theirs.json()["error"] == "forbidden"

    # An unknown case is 404 for a surveys officer; an outsider learns nothing (403).
    unknown = uuid4()
    officer = await surveys.client.get(
        f"/surveys/by-case/{unknown}", headers=as_role(SURVEYS_OFFICER, "health-coop")
    )
    assert officer.status_code == 404
    outsider = await surveys.client.get(
        f"/surveys/by-case/{unknown}", headers=as_role(FRONT_DESK, "sidr")
    )
    assert outsider.status_code == 403


async def test_the_invitations_and_results_list_only_the_associations_held(
    in_process: Start,
) -> None:
    surveys = await in_process("surveys")
    sidr = await invited(surveys, "sidr", "seedlings")
    health = await invited(surveys, "health-coop", "medical-support")
    for case_id in (sidr, health):
        answer = {"ratings": {"satisfaction": 5}}
        posted = await surveys.client.post(
            f"/surveys/{token_of(surveys, case_id)}/answers", json=answer
        )
        assert posted.status_code == 202
    await surveys.settle()

    async def listed(headers: dict[str, str], **params: str) -> list[str]:
        response = await surveys.client.get("/surveys", headers=headers, params=params)
        assert response.status_code == 200, response.text
        assert all("token" not in doc for doc in response.json())
        return sorted(doc["case_id"] for doc in response.json())

    assert await listed(as_role(SURVEYS_OFFICER, "sidr")) == [sidr]
    assert await listed(as_role(SURVEYS_OFFICER, "health-coop")) == [health]
    both = as_roles({"sidr": [SURVEYS_OFFICER], "health-coop": [SURVEYS_OFFICER]}, subject="s2")
    assert await listed(both) == sorted([sidr, health])
    assert await listed(both, association_id="health-coop") == [health]
    assert await listed(both, answered="true", association_id="sidr") == [sidr]
    not_held = await surveys.client.get(
        "/surveys", headers=as_role(SURVEYS_OFFICER, "sidr"), params={"association_id": "elites"}
    )
    assert not_held.status_code == 403

    async def associations_in_results(headers: dict[str, str]) -> list[str]:
        response = await surveys.client.get("/results", headers=headers)
        assert response.status_code == 200, response.text
        return [row["association_id"] for row in response.json()["by_association_id"]]

    # Each group is suppressed (one answer), but it is listed only where the role is held.
    assert await associations_in_results(as_role(AUDITOR, "health-coop")) == ["health-coop"]
    assert await associations_in_results(as_role(SURVEYS_OFFICER, "sidr")) == ["sidr"]
    mixed = as_roles({"sidr": [SURVEYS_OFFICER], "health-coop": [AUDITOR]}, subject="s3")
    assert sorted(await associations_in_results(mixed)) == ["health-coop", "sidr"]
