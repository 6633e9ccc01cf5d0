"""The OpenAPI documents say what the routes really answer, and a path served by
several routes names all their methods."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from tests.in_process import InProcessService

pytestmark = pytest.mark.unit

Start = Callable[..., Awaitable[InProcessService]]


async def test_every_operation_documents_the_refusals_it_may_give(in_process: Start) -> None:
    intake = await in_process("intake")
    document = (await intake.client.get("/openapi.json")).json()
    assert document["components"]["schemas"]["Refusal"]["required"] == ["error", "message"]
    seen = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = set(operation["responses"])
            if "operations" in operation.get("tags", []):
                continue
            seen += 1
            assert {"404", "422"} <= responses, (method, path)
            if method == "post":
                assert {"409", "410"} <= responses, (method, path)
            if "requestBody" in operation:
                assert {"400", "413"} <= responses, (method, path)
            if operation.get("security"):
                assert {"401", "403", "503"} <= responses, (method, path)
    assert seen >= 10
    status = document["paths"]["/cases/{case_ref}/status"]["get"]["responses"]
    assert "Retry-After" in status["429"]["headers"]  # a public, limited route
    assert document["paths"]["/ready"]["get"]["responses"]["503"]


async def test_a_path_of_two_routes_names_both_methods(in_process: Start) -> None:
    verification = await in_process("verification")
    path = "/members/sidr/1000000008"
    options = await verification.client.options(path)
    assert options.status_code == 204
    assert options.headers["allow"] == "GET, OPTIONS, PUT"
    wrong = await verification.client.delete(path)
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, OPTIONS, PUT"
    assert wrong.json()["error"] == "method_not_allowed" and wrong.json()["message"]["ar"]
    # A route's own method still reaches it (the member is not there: 404).
    got = await verification.client.get(path)
    assert got.status_code in (401, 404)
