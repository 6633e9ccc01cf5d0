"""Surveys' routes as every kind of caller: the applicant's pages need no token."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from tests import builders
from tests.access_matrix import Route, assert_every_route_declared, check_matrix
from tests.auth import as_role
from tests.in_process import InProcessService

pytestmark = pytest.mark.unit

Start = Callable[..., Awaitable[InProcessService]]


async def test_every_surveys_route_declares_its_role_and_refuses_every_other_caller(
    in_process: Start,
) -> None:
    surveys = await in_process("surveys")
    received = builders.request_received()
    await surveys.deliver(received, builders.committee_decided(after=received, decision="rejected"))
    await surveys.settle()
    case = received.case_id
    routes = [
        Route("GET", "/surveys", "/surveys", ("surveys_officer",), lists=True),
        Route("GET", f"/surveys/by-case/{case}", "/surveys/by-case/{case_id}", ("surveys_officer",)),
        Route("GET", "/results", "/results", ("surveys_officer", "auditor"), params={"association_id": "sidr"}),
        # The applicant's own pages: the survey's token is the proof, no sign-in.
        Route("GET", "/surveys/unknown-token", "/surveys/{token}", ()),
        Route(
            "POST",
            "/surveys/unknown-token/answers",
            "/surveys/{token}/answers",
            (),
            json={"ratings": {"satisfaction": 4}},
        ),
    ]
    assert_every_route_declared(surveys.api, routes)
    assert await check_matrix(surveys.client, routes) == []


async def test_the_results_of_an_association_are_refused_to_another_associations_reader(
    in_process: Start,
) -> None:
    surveys = await in_process("surveys")
    own = await surveys.client.get(
        "/results", params={"association_id": "sidr"}, headers=as_role("auditor", "sidr")
    )
    assert own.status_code == 200 and own.json()["association_id"] == "sidr"
    elsewhere = await surveys.client.get(
        "/results", params={"association_id": "sidr"}, headers=as_role("auditor", "health-coop")
    )
    assert elsewhere.status_code == 403
