"""Bad input a person or an adapter can send, at intake's real edges: every request
gets a bilingual answer (never a 500, never silence), and nothing is recorded."""

from __future__ import annotations

import asyncio
import json

import httpx
import nats
import pytest

from khidma.processes import ServiceProcess
from shared.subjects import submission_subject
from tests.auth import as_adapter, as_staff

pytestmark = pytest.mark.integration

ADAPTER = as_adapter(["website"])
BODY = {
    "channel_ref": "bad-1",
    "service_code": "seedlings",
    "applicant": {"national_id": "1000000008", "name": "علي"},
    "fields": {"planting_site": "وادي حنيفة", "seedling_count": 20},
}


@pytest.fixture
def intake(nats_server, tmp_path):
    process = ServiceProcess("intake", nats_server.url, tmp_path / "data").start()
    try:
        yield process
    finally:
        process.stop()


def store_position(intake: ServiceProcess) -> int:
    return int(httpx.get(f"{intake.url}/ready").json()["store_position"])


def _raw(body: dict, fields: str) -> bytes:
    """The body as JSON, its `fields` replaced by raw JSON text (tokens json.dumps never writes)."""
    return json.dumps({**body, "fields": "@@"}).replace('"@@"', fields).encode()


def _assert_bilingual_refusal(name: str, reply: dict) -> None:
    assert reply["ok"] is False, name
    assert reply["message"]["en"] and reply["message"]["ar"], name


def test_every_bad_submission_over_nats_gets_a_bilingual_refusal(intake):
    bodies = {
        "deep": _raw(BODY, '{"a": ' + "[" * 20_000 + "]" * 20_000 + "}"),
        "long integer": _raw(BODY, '{"seedling_count": ' + "7" * 5_000 + "}"),
        "NaN": _raw(BODY, '{"planting_site": "x", "seedling_count": NaN}'),
        "infinity": _raw(BODY, '{"planting_site": "x", "seedling_count": Infinity}'),
        "lone surrogate": json.dumps(
            {**BODY, "applicant": {"national_id": "1000000008", "name": "\ud800"}}
        ).encode(),
        "unknown field": json.dumps(
            {**BODY, "fields": {**BODY["fields"], "password": "x"}}
        ).encode(),
        "not JSON": b"\xff\xfe{",
    }

    async def scenario() -> dict[str, dict]:
        connection = await nats.connect(intake.nats_url)
        try:
            replies = {}
            for name, data in bodies.items():
                reply = await connection.request(
                    submission_subject("sidr", "website"), data, timeout=5, headers=ADAPTER
                )
                assert (reply.headers or {}).get("content-type") == "application/json"
                replies[name] = json.loads(reply.data)
            return replies
        finally:
            await connection.close()

    before = store_position(intake)
    replies = asyncio.run(scenario())
    for name, reply in replies.items():
        _assert_bilingual_refusal(name, reply)
    assert "password" in json.dumps(replies["unknown field"], ensure_ascii=False)
    assert store_position(intake) == before


def test_bad_submissions_over_http_are_bilingual_422s(intake):
    full = {"association_id": "sidr", "channel": "website", **BODY}
    bodies = {
        "NaN": _raw(full, '{"planting_site": "x", "seedling_count": NaN}'),
        "lone surrogate": json.dumps(
            {**full, "applicant": {"national_id": "1000000008", "name": "\ud800"}}
        ).encode(),
        "surrogate in a refused body": json.dumps(
            {**full, "channel": "pigeon", "applicant": {"national_id": "1", "name": "\udfff"}}
        ).encode(),
        "unknown field": json.dumps({**full, "fields": {**BODY["fields"], "<script>": 1}}).encode(),
    }
    before = store_position(intake)
    for name, data in bodies.items():
        response = httpx.post(
            f"{intake.url}/submissions",
            content=data,
            headers={**ADAPTER, "content-type": "application/json"},
        )
        assert response.status_code == 422, (name, response.text)
        answer = response.json()
        assert answer["message"]["en"] and answer["message"]["ar"], name
    assert store_position(intake) == before


def test_list_parameters_out_of_bounds_are_a_bilingual_422(intake):
    queries = ["offset=9223372036854775808", "offset=-1", "limit=-1", "limit=0", "limit=1001"]
    for query in queries:
        response = httpx.get(f"{intake.url}/cases?{query}", headers=as_staff())
        assert response.status_code == 422, (query, response.text)
        assert response.json()["message"]["ar"]
    assert httpx.get(f"{intake.url}/cases?limit=1000", headers=as_staff()).status_code == 200
