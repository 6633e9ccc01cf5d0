"""What intake tells an adapter or an officer about the associations it serves."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from services.intake import api as intake_api
from shared.auth import verifier_from_environment
from shared.http import create_http_app
from shared.policy_loader import DEFAULT_POLICIES_DIR, load_packs

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def client() -> TestClient:
    # The lifespan (broker, store) never starts: TestClient is not entered.
    runtime = SimpleNamespace(app=SimpleNamespace(packs=load_packs(DEFAULT_POLICIES_DIR)))
    return TestClient(
        create_http_app(
            runtime,
            title="intake",
            include=intake_api.include,
            verifier=verifier_from_environment(),
        )
    )  # type: ignore[arg-type]


def test_the_associations_are_listed_with_the_channels_each_enables(client: TestClient) -> None:
    listed = {a["association_id"]: a for a in client.get("/associations").json()}
    assert set(listed) == {"sidr", "health-coop", "textile-coop", "dumat-bees", "elites"}
    assert "help_request" not in listed["elites"]["channels"]  # seed 004 has six channels
    assert len(listed["elites"]["channels"]) == 6
    assert listed["sidr"]["name"]["ar"] and listed["sidr"]["name"]["en"]
    assert {s["code"] for s in listed["sidr"]["services"]} >= {"seedlings"}


def test_an_association_shows_its_officers_tools_window_committee_and_board_approval(
    client: TestClient,
) -> None:
    pack = client.get("/associations/sidr").json()
    assert pack["tools"] and all(tool["ar"] and tool["en"] for tool in pack["tools"])
    assert pack["decision_window_days"] == 14
    assert pack["committee"]["quorum"] >= 1
    assert pack["board_approval"] is None  # sidr's seed names no board meeting
    approval = client.get("/associations/health-coop").json()["board_approval"]
    assert (approval["meeting"], approval["hijri"]) == ("8", "1442-07-17")
    assert approval["gregorian"] == "2021-03-01"  # the same day, derived
    seedlings = next(s for s in pack["services"] if s["code"] == "seedlings")
    assert seedlings["required_fields"] or seedlings["required_documents"]


def test_an_unknown_association_is_a_bilingual_404_naming_the_known_ones(
    client: TestClient,
) -> None:
    response = client.get("/associations/nowhere")
    assert response.status_code == 404
    body = response.json()
    assert "sidr" in body["message"]["en"] and "sidr" in body["message"]["ar"]
