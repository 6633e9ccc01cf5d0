"""Intake as a real process: HTTP and request/reply submissions, bad input, delivery rules."""

from __future__ import annotations

import asyncio
import json

import httpx
import nats
import pytest

from khidma.processes import ServiceProcess
from shared.events import (
    Vote,
    encode_event,
)
from shared.roles import FRONT_DESK, VERIFIER
from shared.subjects import event_subject, submission_subject
from tests import builders, personal_data
from tests.auth import ISSUER, TestIssuer, as_adapter, as_role, as_staff, bearer
from tests.helpers import stream_messages_sync, wait_for

pytestmark = pytest.mark.integration

SUBMISSION = {
    "association_id": "sidr",
    "channel": "website",
    "channel_ref": "form-42",
    "service_code": "seedlings",
    "applicant": {"national_id": "1000000008", "name": "علي", "phone": "0500000000"},
    "fields": {"planting_site": "وادي حنيفة", "seedling_count": 20},
    "documents": [{"code": "national_id_card", "number": "1000000008", "expires_on": "2030-01-01"}],
    "attestation": {"attested": True, "method": "one_time_code"},
}


# The channel adapter of the tests (every channel it submits on here, every seed
# association), and the staff who read and act on cases.
ADAPTER = as_adapter(["website", "phone", "branch_office"])
STAFF = as_staff()
OFFICER = as_role(FRONT_DESK, subject="officer-1", name="Officer One")


@pytest.fixture
def intake(nats_server, tmp_path):
    process = ServiceProcess("intake", nats_server.url, tmp_path / "data").start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def keyring(intake):
    """The keyring intake seals with (its data folder's), as a consumer opens it."""
    ring = personal_data.keyring_of(intake.data_dir)
    try:
        yield ring
    finally:
        ring.close()


def store_position(intake: ServiceProcess) -> int:
    return int(httpx.get(f"{intake.url}/ready").json()["store_position"])


def test_a_submission_creates_a_case_and_publishes_request_received(intake, nats_server, keyring):
    response = httpx.post(f"{intake.url}/submissions", json=SUBMISSION, headers=ADAPTER)
    assert response.status_code == 201
    case = response.json()
    messages = wait_for(
        lambda: stream_messages_sync(nats_server.url, "khidma.*.*.RequestReceived"),
        what="RequestReceived on the stream",
    )
    (event,) = [m["event"] for m in messages]
    assert event["case_id"] == case["case_id"]
    assert event["case_ref"] == case["case_ref"]
    assert personal_data.opened_payload(event["payload"], keyring)["applicant"]["name"] == "علي"
    assert event["payload"]["channel_ref"] == "form-42"
    # The adapter that submitted it, as its token names it.
    assert event["actor"] == {
        "kind": "adapter", "id": "adapter-tests", "name": "adapter-tests", "role": "channel:website"
    }


def test_the_request_on_the_stream_and_intakes_files_hold_the_applicants_data_only_sealed(
    intake, nats_server, keyring, tmp_path
):
    applicant = {
        "national_id": "1098765437",
        "name": "عائشة بنت سعيد القحطاني",
        "phone": "0551234567",
        "email": "aisha.qahtani@example.org",
    }
    site = "مزرعة القحطاني في وادي حنيفة"
    body = {
        **SUBMISSION,
        "applicant": applicant,
        "fields": {"planting_site": site, "seedling_count": 20},
        "documents": [{"code": "national_id_card", "number": applicant["national_id"],
                       "expires_on": "2030-01-01"}],
    }
    case = httpx.post(f"{intake.url}/submissions", json=body, headers=ADAPTER).json()
    (message,) = wait_for(
        lambda: stream_messages_sync(nats_server.url, "khidma.*.*.RequestReceived"),
        what="RequestReceived on the stream",
    )
    secrets = [*applicant.values(), "+966551234567", site]
    assert personal_data.plaintext_in(message["data"], secrets) == []
    payload = message["event"]["payload"]
    assert payload["subject_index"] == keyring.subject_index("sidr", applicant["national_id"])
    assert payload["personal_key"] == keyring.key_for("sidr", applicant["national_id"])
    for name in personal_data.PERSONAL_FIELDS:
        assert payload[name]["sealed"] == "v1" and payload[name]["key"] == payload["personal_key"]
    opened = personal_data.opened_payload(payload, keyring)
    assert opened["applicant"]["email"] == applicant["email"] and opened["fields"]["planting_site"] == site
    # The file the case file reads, and the read model, and the log.
    file = httpx.get(f"{intake.url}/cases/{case['case_ref']}/file", headers=STAFF).json()
    assert file["applicant"]["name"] == applicant["name"]
    wait_for(
        lambda: httpx.get(f"{intake.url}/cases/{case['case_ref']}", headers=STAFF).status_code == 200,
        what="the case in the read model",
    )
    intake.stop()
    # Intake's data folder (store, read model, keyring, log) and the stream's store.
    assert {"intake.sqlite", "intake-views.sqlite", "intake.log"} <= {
        p.name for p in intake.data_dir.iterdir()
    }
    assert personal_data.plaintext_in_files(tmp_path, secrets) == []


def test_the_same_channel_reference_twice_is_one_request(intake, nats_server):
    first = httpx.post(f"{intake.url}/submissions", json=SUBMISSION, headers=ADAPTER).json()
    again = httpx.post(f"{intake.url}/submissions", json=SUBMISSION, headers=ADAPTER)
    assert again.status_code == 200
    # The secret code was given once, in the answer that opened the case.
    assert first["access_code"]
    assert again.json() == {**first, "duplicate": True, "access_code": None}
    assert first["case_ref"].startswith("SDR-") and first["status"] == "received"
    other_applicant = {**SUBMISSION, "channel": "phone", "applicant": {"national_id": "2", "name": "B"}}
    other_channel = httpx.post(f"{intake.url}/submissions", json=other_applicant, headers=ADAPTER)
    assert other_channel.status_code == 201
    wait_for(
        lambda: len(stream_messages_sync(nats_server.url, "khidma.*.*.RequestReceived")) == 2,
        what="two requests on the stream",
    )


def test_the_same_channel_reference_for_another_applicant_or_service_is_a_conflict_that_reveals_nothing(
    intake, nats_server
):
    first = httpx.post(f"{intake.url}/submissions", json=SUBMISSION, headers=ADAPTER).json()
    before = store_position(intake)
    someone_else = {**SUBMISSION, "applicant": {"national_id": "1000000016", "name": "سارة"}}
    another_service = {**SUBMISSION, "service_code": "volunteering"}
    for body in (someone_else, another_service):
        response = httpx.post(f"{intake.url}/submissions", json=body, headers=ADAPTER)
        assert response.status_code == 409, response.text
        refusal = response.json()
        assert refusal["error"] == "channel_ref_conflict"
        assert refusal["message"]["en"] and refusal["message"]["ar"]
        # Nothing of the other request: neither its id, its reference nor its applicant.
        for secret in (first["case_id"], first["case_ref"], "1000000008", "علي"):
            assert secret not in response.text
    assert store_position(intake) == before

    async def over_nats() -> dict:
        connection = await nats.connect(intake.nats_url)
        try:
            body = {k: v for k, v in someone_else.items() if k not in ("association_id", "channel")}
            reply = await connection.request(
                submission_subject("sidr", "website"), json.dumps(body).encode(), timeout=5,
                headers=ADAPTER,
            )
            return json.loads(reply.data)
        finally:
            await connection.close()

    refused = asyncio.run(over_nats())
    assert refused["ok"] is False and refused["error"] == "channel_ref_conflict"
    assert first["case_ref"] not in json.dumps(refused)
    assert store_position(intake) == before
    # The same request again is still one request.
    again = httpx.post(f"{intake.url}/submissions", json=SUBMISSION, headers=ADAPTER)
    assert again.status_code == 200 and again.json()["case_id"] == first["case_id"]


def test_a_malformed_submission_is_refused_with_the_field_and_nothing_is_recorded(intake):
    before = store_position(intake)
    broken = {**SUBMISSION, "applicant": {"name": "no id"}, "channel": "carrier-pigeon"}
    response = httpx.post(f"{intake.url}/submissions", json=broken, headers=ADAPTER)
    assert response.status_code == 422
    fields = {tuple(problem["loc"]) for problem in response.json()["detail"]}
    assert ("body", "applicant", "national_id") in fields
    assert ("body", "channel") in fields
    assert store_position(intake) == before


def test_submissions_over_request_reply_get_the_case_or_a_clear_error(intake):
    async def scenario() -> tuple[dict, dict, dict]:
        connection = await nats.connect(intake.nats_url)
        try:
            body = {k: v for k, v in SUBMISSION.items() if k not in ("association_id", "channel")}
            accepted = await connection.request(
                submission_subject("sidr", "phone"), json.dumps(body).encode(), timeout=5,
                headers=ADAPTER,
            )
            duplicate = await connection.request(
                submission_subject("sidr", "phone"), json.dumps(body).encode(), timeout=5,
                headers=ADAPTER,
            )
            refused = await connection.request(
                submission_subject("sidr", "phone"), b'{"channel_ref": ""}', timeout=5,
                headers=ADAPTER,
            )
            return json.loads(accepted.data), json.loads(duplicate.data), json.loads(refused.data)
        finally:
            await connection.close()

    before = store_position(intake)
    accepted, duplicate, refused = asyncio.run(scenario())
    assert accepted["ok"] is True and accepted["case_ref"]
    assert duplicate["case_id"] == accepted["case_id"] and duplicate["duplicate"] is True
    assert refused["ok"] is False
    assert refused["message"]["ar"] and refused["message"]["en"]
    assert {p["field"] for p in refused["problems"]} >= {"channel_ref", "applicant"}
    status = httpx.get(f"{intake.url}/cases/{accepted['case_id']}", headers=STAFF).json()
    assert status["channel"] == "phone"
    # One case: submitted + completed, its channel-reference index, the numbering
    # (started + number taken) and the applicant's open-request index; nothing for the refusal.
    assert store_position(intake) == before + 6


def test_delivery_is_refused_until_the_committee_approves(intake, nats_server):
    case = httpx.post(f"{intake.url}/submissions", json=SUBMISSION, headers=ADAPTER).json()
    refused = httpx.post(
        f"{intake.url}/cases/{case['case_id']}/delivery",
        json={"delivered": "basket"},
        headers=OFFICER,
    )
    assert refused.status_code == 409
    assert refused.json()["error"] == "not_approved"
    assert refused.json()["message"]["ar"]

    received = wait_for(
        lambda: stream_messages_sync(nats_server.url, "khidma.*.*.RequestReceived"),
        what="RequestReceived",
    )[0]["event"]
    decision = builders.committee_decided(
        association_id="sidr",
        case_id=case["case_id"],
        case_ref=case["case_ref"],
        correlation_id=received["correlation_id"],
        decision="approved",
        reasons=["ok"],
        votes=[Vote(member="m1", vote="approve")],
        window_days=14,
        within_window=True,
    )

    async def publish() -> None:
        connection = await nats.connect(nats_server.url)
        await connection.jetstream().publish(
            event_subject("sidr", case["case_id"], "CommitteeDecided"),
            encode_event(decision),
            headers={"Nats-Msg-Id": str(decision.event_id)},
        )
        await connection.close()

    asyncio.run(publish())
    wait_for(
        lambda: httpx.get(f"{intake.url}/cases/{case['case_id']}", headers=STAFF).json()["status"] == "approved",
        what="the approval to reach intake",
    )
    delivered = httpx.post(
        f"{intake.url}/cases/{case['case_id']}/delivery",
        json={"delivered": "basket"},
        headers=OFFICER,
    )
    assert delivered.status_code == 202
    (message,) = wait_for(
        lambda: stream_messages_sync(nats_server.url, "khidma.*.*.ServiceDelivered"),
        what="ServiceDelivered",
    )
    assert message["event"]["causation_id"] == str(decision.event_id)
    # The officer is the caller: their token's subject, as actor and in the payload.
    assert message["event"]["actor"] == {
        "kind": "officer", "id": "officer-1", "name": "Officer One", "role": FRONT_DESK
    }
    assert message["event"]["payload"]["delivered_by"] == "officer-1"


def test_an_unknown_case_is_a_bilingual_404(intake):
    response = httpx.get(f"{intake.url}/cases/SID-NOPE", headers=STAFF)
    assert response.status_code == 404
    assert response.json()["message"]["ar"]


def test_submissions_outside_the_pack_are_422_with_a_bilingual_message(intake, nats_server):
    before = store_position(intake)
    cases = [
        ({"association_id": "nowhere"}, "unknown_association"),
        ({"channel": "branch_office"}, "channel_not_enabled"),
        ({"service_code": "food-basket"}, "unknown_service"),
    ]
    for override, code in cases:
        response = httpx.post(f"{intake.url}/submissions", json={**SUBMISSION, **override}, headers=ADAPTER)
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["error"] == code and body["message"]["ar"] and body["message"]["en"]
    assert "enabled_channels" in httpx.post(
        f"{intake.url}/submissions", json={**SUBMISSION, "channel": "branch_office"}, headers=ADAPTER
    ).json()

    async def over_nats() -> dict:
        connection = await nats.connect(intake.nats_url)
        try:
            body = {k: v for k, v in SUBMISSION.items() if k not in ("association_id", "channel")}
            reply = await connection.request(
                submission_subject("sidr", "branch_office"), json.dumps(body).encode(), timeout=5,
                headers=ADAPTER,
            )
            return json.loads(reply.data)
        finally:
            await connection.close()

    refused = asyncio.run(over_nats())
    assert refused["ok"] is False and refused["error"] == "channel_not_enabled"
    assert refused["message"]["ar"]
    assert store_position(intake) == before
    assert stream_messages_sync(nats_server.url, "khidma.>") == []


def test_an_incomplete_request_reaches_the_stream_only_once_completed(intake, nats_server, keyring):
    partial = {**SUBMISSION, "documents": [], "attestation": None,
               "fields": {"planting_site": "وادي حنيفة"}}
    response = httpx.post(f"{intake.url}/submissions", json=partial, headers=ADAPTER)
    assert response.status_code == 201
    case = response.json()
    assert case["status"] == "incomplete" and case["complete"] is False
    assert {(m["kind"], m["code"]) for m in case["missing"]} == {
        ("field", "seedling_count"), ("document", "national_id_card"), ("attestation", "declaration"),
    }
    status = wait_for(
        lambda: (d := httpx.get(f"{intake.url}/cases/{case['case_ref']}", headers=STAFF).json()).get("missing") and d,
        what="the incomplete case in the read model",
    )
    assert status["status"] == "incomplete" and status["status_label"]["ar"]
    assert status["submitted_at_display"]["hijri"].startswith("14")
    assert status["history"][0]["at_display"]["ar"] and status["history"][0]["label"]["ar"]

    more = httpx.post(
        f"{intake.url}/cases/{case['case_id']}/information",
        json={"fields": {"seedling_count": 20}, "documents": SUBMISSION["documents"]},
        headers=OFFICER,
    )
    assert more.status_code == 200
    assert [m["code"] for m in more.json()["missing"]] == ["declaration"]
    done = httpx.post(
        f"{intake.url}/cases/{case['case_id']}/information",
        json={"attestation": {"attested": True, "method": "in_person", "attested_by": "علي"}},
        headers=OFFICER,
    )
    assert done.json()["status"] == "received" and done.json()["missing"] == []
    (message,) = wait_for(
        lambda: stream_messages_sync(nats_server.url, "khidma.*.*.RequestReceived"),
        what="RequestReceived after completion",
    )
    payload = personal_data.opened_payload(message["event"]["payload"], keyring)
    assert payload["attestation"]["data_hash"] and payload["documents"][0]["code"] == "national_id_card"
    assert payload["submitted_at"] is not None
    received = wait_for(
        lambda: (d := httpx.get(f"{intake.url}/cases/{case['case_id']}", headers=STAFF).json())["status"] == "received" and d,
        what="the completed case in the read model",
    )
    assert received["received_at_display"]["en"]
    again = httpx.post(
        f"{intake.url}/cases/{case['case_id']}/information", json={"fields": {"seedling_count": 1}}, headers=OFFICER
    )
    assert again.status_code == 409 and again.json()["error"] == "already_complete"


def test_the_eligibility_preview_creates_nothing(intake, nats_server):
    before = store_position(intake)
    response = httpx.post(
        f"{intake.url}/eligibility",
        json={"association_id": "elites", "service_code": "scholarship", "fields": {"gpa": 4.0}},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["eligible"] is False and body["reasons"][0]["ar"]
    assert body["service"]["code"] == "scholarship"
    assert httpx.post(
        f"{intake.url}/eligibility",
        json={"association_id": "elites", "service_code": "scholarship",
              "fields": {"gpa": 4.9, "field_of_study": "CS"}},
    ).json()["eligible"] is True
    unknown = httpx.post(
        f"{intake.url}/eligibility", json={"association_id": "elites", "service_code": "x"}
    )
    assert unknown.status_code == 422 and unknown.json()["error"] == "unknown_service"
    assert store_position(intake) == before
    assert stream_messages_sync(nats_server.url, "khidma.>") == []


def test_a_second_request_for_the_same_service_is_linked(intake, nats_server):
    first = httpx.post(f"{intake.url}/submissions", json=SUBMISSION, headers=ADAPTER).json()
    linked = httpx.post(
        f"{intake.url}/submissions", json={**SUBMISSION, "channel": "phone", "channel_ref": "call-9"}, headers=ADAPTER
    )
    assert linked.status_code == 200
    assert linked.json()["duplicate"] is True and linked.json()["linked"] is True
    assert linked.json()["case_id"] == first["case_id"]
    doc = wait_for(
        lambda: (d := httpx.get(f"{intake.url}/cases/{first['case_id']}", headers=STAFF).json())["linked_channels"] and d,
        what="the linked channel in the read model",
    )
    assert doc["linked_channels"][0]["channel"] == "phone"
    assert len(stream_messages_sync(nats_server.url, "khidma.*.*.RequestReceived")) == 1


def test_an_incomplete_case_can_be_referred(intake, nats_server):
    case = httpx.post(f"{intake.url}/submissions", json={**SUBMISSION, "documents": []}, headers=ADAPTER).json()
    assert case["status"] == "incomplete"
    referred = httpx.post(
        f"{intake.url}/cases/{case['case_id']}/referral",
        json={"reason": "the procedures are unclear", "questions": ["which ID?"]},
        headers=OFFICER,
    )
    assert referred.status_code == 202
    (message,) = wait_for(
        lambda: stream_messages_sync(nats_server.url, "khidma.*.*.ReferredToResearcher"),
        what="ReferredToResearcher",
    )
    assert message["event"]["case_ref"] == case["case_ref"]
    assert message["event"]["actor"]["id"] == "officer-1"
    assert message["event"]["payload"]["referred_by"] == "officer-1"
    assert stream_messages_sync(nats_server.url, "khidma.*.*.RequestReceived") == []


def test_a_broken_policy_pack_stops_intake_with_exit_code_2(nats_server, tmp_path):
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "sidr.toml").write_text('association_id = "sidr"\ncase_prefix = "sdr"\n', encoding="utf-8")
    process = ServiceProcess(
        "intake", nats_server.url, tmp_path / "data", env={"KHIDMA_POLICIES_DIR": str(policies)}
    )
    with pytest.raises(RuntimeError) as failed:
        process.start(timeout=20)
    assert "sidr.toml" in str(failed.value) and "case_prefix" in str(failed.value)
    assert process.process is not None and process.process.returncode == 2


def test_the_read_model_is_rebuilt_from_the_store(nats_server, tmp_path):
    data = tmp_path / "data"
    process = ServiceProcess("intake", nats_server.url, data).start()
    try:
        case = httpx.post(f"{process.url}/submissions", json={**SUBMISSION, "documents": []}, headers=ADAPTER).json()
        before = wait_for(
            lambda: (d := httpx.get(f"{process.url}/cases/{case['case_ref']}", headers=STAFF).json()).get("missing") and d,
            what="the case in the read model",
        )
    finally:
        process.stop()
    for path in data.glob("intake-views.sqlite*"):
        path.unlink()
    process = ServiceProcess("intake", nats_server.url, data).start()
    try:
        after = httpx.get(f"{process.url}/cases/{case['case_ref']}", headers=STAFF).json()
    finally:
        process.stop()
    assert after == before


def test_a_submission_over_nats_needs_the_adapters_token_and_records_nothing_without_it(intake):
    body = {k: v for k, v in SUBMISSION.items() if k not in ("association_id", "channel")}
    forger = TestIssuer(issuer=ISSUER.issuer, kid=ISSUER.kid)  # the issuer's name, not its key
    callers = {
        "none": None,
        "not a bearer token": {"Authorization": "Basic YWRtaW46YWRtaW4="},
        "garbage": {"Authorization": "Bearer not-a-jwt"},
        "bad signature": bearer(forger.token("adapter-x", {"sidr": ["channel:website"]})),
        "expired": bearer(ISSUER.token("adapter-x", {"sidr": ["channel:website"]}, lifetime=-120)),
        "another channel": as_adapter(["phone"], ["sidr"]),
        "another association": as_adapter(["website"], ["health-coop"]),
        "a verifier": as_role(VERIFIER, "sidr"),
    }

    async def scenario() -> dict[str, dict]:
        connection = await nats.connect(intake.nats_url)
        try:
            replies = {}
            for name, headers in callers.items():
                reply = await connection.request(
                    submission_subject("sidr", "website"), json.dumps(body).encode(),
                    timeout=5, headers=headers,
                )
                replies[name] = json.loads(reply.data)
            return replies
        finally:
            await connection.close()

    before = store_position(intake)
    replies = asyncio.run(scenario())
    expected = {
        "none": ("unauthenticated", "token_missing"),
        "not a bearer token": ("unauthenticated", "token_missing"),
        "garbage": ("unauthenticated", "token_invalid"),
        "bad signature": ("unauthenticated", "token_bad_signature"),
        "expired": ("unauthenticated", "token_expired"),
        "another channel": ("forbidden", "forbidden"),
        "another association": ("forbidden", "forbidden"),
        "a verifier": ("forbidden", "forbidden"),
    }
    for name, (refused, error) in expected.items():
        reply = replies[name]
        assert reply["ok"] is False, (name, reply)
        assert (reply["refused"], reply["error"]) == (refused, error), (name, reply)
        assert reply["message"]["en"] and reply["message"]["ar"], name
    assert store_position(intake) == before
    assert httpx.get(f"{intake.url}/cases", headers=STAFF).json() == []


def test_the_code_in_the_nats_reply_opens_the_applicants_status(intake):
    body = {k: v for k, v in SUBMISSION.items() if k not in ("association_id", "channel")}

    async def submit() -> dict:
        connection = await nats.connect(intake.nats_url)
        try:
            reply = await connection.request(
                submission_subject("sidr", "website"), json.dumps(body).encode(),
                timeout=5, headers=as_adapter(["website"], ["sidr"]),
            )
            return json.loads(reply.data)
        finally:
            await connection.close()

    accepted = asyncio.run(submit())
    assert accepted["ok"] is True and accepted["access_code"]
    status = httpx.get(
        f"{intake.url}/cases/{accepted['case_ref']}/status",
        headers={"X-Case-Code": accepted["access_code"]},
    )
    assert status.status_code == 200, status.text
    assert status.json()["status"] == "received" and status.json()["status_label"]["ar"]
    wrong = httpx.get(
        f"{intake.url}/cases/{accepted['case_ref']}/status", headers={"X-Case-Code": "AAAA-BBBB-CCCC"}
    )
    assert wrong.status_code == 404
    # The adapter's retry gets the same case, and no code this time.
    again = asyncio.run(submit())
    assert again["case_id"] == accepted["case_id"] and again["access_code"] is None


def group_commit_total(intake: ServiceProcess) -> float:
    """How many submissions the group commit gathered so far (its histogram's sum)."""
    text = httpx.get(f"{intake.url}/metrics").text
    lines = [line for line in text.splitlines() if line.startswith("khidma_group_commit_size_sum")]
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


def test_concurrent_submissions_over_http_and_nats_are_each_answered_and_recorded_once(
    intake, nats_server
):
    """Sent together (each twice, as adapters retrying), they are gathered into
    batches: every caller gets its case, the retry the same one, and each request
    reaches the stream once."""
    count = 24

    def body(n: int, channel: str) -> dict:
        national_id = f"20{n:08d}"
        return {
            **SUBMISSION,
            "channel": channel,
            "channel_ref": f"together-{channel}-{n}",
            "applicant": {"national_id": national_id, "name": "علي", "phone": "0500000000"},
            "documents": [
                {"code": "national_id_card", "number": national_id, "expires_on": "2030-01-01"}
            ],
        }

    async def all_at_once() -> tuple[list[httpx.Response], list[dict]]:
        connection = await nats.connect(intake.nats_url)
        try:
            async with httpx.AsyncClient(base_url=intake.url, timeout=30) as client:
                over_http = [
                    client.post("/submissions", json=body(n, "website"), headers=ADAPTER)
                    for n in range(count)
                    for _ in range(2)
                ]
                over_nats = [
                    connection.request(
                        submission_subject("sidr", "phone"),
                        json.dumps(
                            {
                                k: v
                                for k, v in body(count + n, "phone").items()
                                if k not in ("association_id", "channel")
                            }
                        ).encode(),
                        timeout=30,
                        headers=ADAPTER,
                    )
                    for n in range(count)
                    for _ in range(2)
                ]
                http_answers = await asyncio.gather(*over_http)
                nats_answers = await asyncio.gather(*over_nats)
                return list(http_answers), [json.loads(m.data) for m in nats_answers]
        finally:
            await connection.close()

    before = group_commit_total(intake)
    http_answers, nats_answers = asyncio.run(all_at_once())

    assert sorted(r.status_code for r in http_answers) == [200] * count + [201] * count
    answers = [r.json() for r in http_answers] + nats_answers
    assert all(a.get("ok", True) for a in answers), answers
    by_ref: dict[str, set[str]] = {}
    for a, sent in zip(answers, [n for n in range(2 * count) for _ in range(2)], strict=True):
        by_ref.setdefault(str(sent), set()).add(a["case_id"])
    assert all(len(ids) == 1 for ids in by_ref.values())  # a retry is the same case
    assert len({a["case_ref"] for a in answers}) == 2 * count
    assert group_commit_total(intake) - before == 4 * count
    received = wait_for(
        lambda: (
            m
            if len(m := stream_messages_sync(nats_server.url, "khidma.*.*.RequestReceived"))
            >= 2 * count
            else None
        ),
        what="every request on the stream",
    )
    assert len(received) == 2 * count
    assert len({m["event"]["case_id"] for m in received}) == 2 * count
