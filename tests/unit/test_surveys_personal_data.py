"""Surveys keep the applicant's contact sealed, and an anonymous answer cannot be joined
back to its case or its person (decisions 16 and 24).

Surveys' API in process (its real application, store, read model and keyring on
SQLite files) with its invitation dispatcher writing the logged outbox in the
service's data folder, fed requests sealed as intake publishes them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.utils import get_topic

from services.surveys.dispatcher import InvitationDispatcher
from services.surveys.domain import AnonymousAnswer, Survey
from services.surveys.integration import TRANSLATORS
from services.surveys.outbound import LoggedOutbox, invitation_links, token_of_link
from services.surveys.views import RESULTS
from shared.events import Applicant, RequestReceived, encode_event
from shared.roles import SURVEYS_OFFICER
from tests import builders
from tests.auth import as_role
from tests.in_process import InProcessService
from tests.personal_data import assert_no_plaintext, erase, sealed_request

pytestmark = pytest.mark.unit

Start = Callable[..., Awaitable[InProcessService]]

OFFICER = as_role(SURVEYS_OFFICER, "sidr")
NATIONAL_ID = "1098765432"
NAME = "عبدالله بن سعد الحربي"
PHONE = "+966512345678"
EMAIL = "abdullah.harbi@example.org"
CONTACT = [PHONE, "512345678", "0512345678", EMAIL]


def request(surveys: InProcessService) -> RequestReceived:
    return sealed_request(
        surveys.app.sealer,
        association_id="sidr",
        case_ref="SDR-1448-000555",
        channel="phone",
        service_code="food-basket",
        applicant=Applicant(national_id=NATIONAL_ID, name=NAME, phone="0512345678", email=EMAIL),
    )


def outbox_path(surveys: InProcessService) -> Path:
    return Path(surveys.runtime.settings.data_dir) / "surveys-outbox.jsonl"


async def dispatch(surveys: InProcessService) -> InvitationDispatcher:
    """Runs the invitation dispatcher once, on the service's logged outbox."""
    dispatcher = InvitationDispatcher(
        surveys.app,
        surveys.runtime.store,
        LoggedOutbox(outbox_path(surveys), surveys.app.sealer),
        base_url="https://surveys.example.org",
    )
    while await dispatcher.dispatch_batch():
        pass
    await surveys.settle()
    return dispatcher


async def invited(surveys: InProcessService) -> tuple[RequestReceived, str]:
    """A delivered request whose invitation went out; the token of its link."""
    received = request(surveys)
    await surveys.deliver(received, builders.service_delivered(received))
    await dispatch(surveys)
    link = invitation_links(outbox_path(surveys))[str(received.case_id)]
    return received, token_of_link(link)


async def answer(surveys: InProcessService, token: str, **body: Any) -> None:
    response = await surveys.client.post(f"/surveys/{token}/answers", json=body)
    assert response.status_code == 202, response.text
    await surveys.settle()


def stored(surveys: InProcessService) -> list[tuple[Any, bytes]]:
    """Each stored event, as read and as the store's bytes hold it."""
    app = surveys.app
    return [(app.mapper.to_domain_event(n), n.state) for n in app.read_notifications(0, 10_000)]


async def test_the_surveys_store_views_and_outbox_hold_no_plaintext_contact(
    in_process: Start,
) -> None:
    surveys = await in_process("surveys")
    received, token = await invited(surveys)
    # In their name: their words are theirs, sealed. (An anonymous comment is kept as
    # written, under no key: a key id would name its person.)
    await answer(
        surveys, token, ratings={"satisfaction": 5}, comment="شكرًا يا عبدالله", anonymous=False
    )

    # The invitation was sent, to the contact opened from the sealed request.
    [line] = [json.loads(text) for text in outbox_path(surveys).read_text().splitlines()]
    assert line["case_id"] == str(received.case_id)
    assert surveys.app.sealer.open(line["contact"]) == {"phone": PHONE, "email": EMAIL}

    # Store, views, outbox, keyring: no contact, and not the applicant's own words either.
    assert_no_plaintext(Path(surveys.runtime.settings.data_dir), [*CONTACT, NAME, "عبدالله"])


async def test_an_anonymous_answer_is_stored_without_its_case_reference_or_contact(
    in_process: Start,
) -> None:
    surveys = await in_process("surveys")
    received, token = await invited(surveys)
    await answer(surveys, token, ratings={"satisfaction": 4, "recommend": 9}, comment="جيد")

    events = stored(surveys)
    [(answer_event, answer_bytes)] = [
        (event, raw) for event, raw in events if isinstance(event, AnonymousAnswer.Recorded)
    ]
    links = [
        str(received.case_id),
        received.case_ref,
        str(received.correlation_id),
        str(received.payload.personal_key),
        token,
        *CONTACT,
    ]
    for link in links:
        assert link.encode() not in answer_bytes, link
    assert answer_event.originator_id != received.case_id
    assert answer_event.ratings == {"satisfaction": 4, "recommend": 9}
    # The survey of the case records only that it was answered, not the answer.
    survey_events = [raw for event, raw in events if event.originator_id == received.case_id]
    assert isinstance(events[-2][0], Survey.AnsweredAnonymously)
    for raw in survey_events:
        assert "جيد".encode() not in raw and b"recommend" not in raw

    # Still counted in the results (one answer: suppressed, as any group under five).
    tallies = list(surveys.runtime.views.iter_all(RESULTS))  # type: ignore[union-attr]
    assert {t["dimension"]: t["answers"] for t in tallies} == {
        "service_code": 1,
        "channel": 1,
        "stage": 1,
        "association_id": 1,
    }
    results = (await surveys.client.get("/results", headers=OFFICER)).json()
    assert results["by_association_id"][0]["suppressed"] is True


async def test_an_anonymous_answer_on_the_stream_cannot_be_joined_to_the_case(
    in_process: Start,
) -> None:
    surveys = await in_process("surveys")
    received, token = await invited(surveys)
    await answer(surveys, token, ratings={"satisfaction": 2}, comment="طال الانتظار")

    [recorded] = [e for e, _ in stored(surveys) if isinstance(e, AnonymousAnswer.Recorded)]
    message = TRANSLATORS[get_topic(AnonymousAnswer.Recorded)](recorded)
    wire = encode_event(message)

    assert message.case_id == recorded.originator_id and message.case_ref == "anonymous"
    assert message.causation_id is None
    for link in (
        str(received.case_id),
        received.case_ref,
        str(received.correlation_id),
        str(received.event_id),
        str(received.payload.personal_key),
        *CONTACT,
    ):
        assert link.encode() not in wire, link
    assert message.payload.anonymous and message.payload.ratings.satisfaction == 2


async def test_a_named_answer_stays_on_its_case_with_its_words_sealed(
    in_process: Start,
) -> None:
    surveys = await in_process("surveys")
    received, token = await invited(surveys)
    await answer(surveys, token, ratings={"satisfaction": 5}, comment="شكرًا", anonymous=False)

    [(named, raw)] = [(e, r) for e, r in stored(surveys) if isinstance(e, Survey.Answered)]
    assert named.originator_id == received.case_id and named.comment == "شكرًا"
    assert "شكرًا".encode() not in raw
    assert not [e for e, _ in stored(surveys) if isinstance(e, AnonymousAnswer.Recorded)]


async def test_after_erasure_the_invitation_is_not_sent_and_the_views_rebuild(
    in_process: Start,
) -> None:
    surveys = await in_process("surveys")
    received = request(surveys)
    await surveys.deliver(received)
    answered, token = await invited(surveys)
    await answer(surveys, token, ratings={"satisfaction": 3})

    erase(surveys.app.sealer, "sidr", NATIONAL_ID)
    await surveys.deliver(builders.service_delivered(received))
    await dispatch(surveys)

    runtime = surveys.runtime
    runtime.views.reset_if_changed(runtime.projections.name, "a rebuild")  # type: ignore[union-attr]
    await surveys.settle()
    doc = (await surveys.client.get(f"/surveys/by-case/{received.case_id}", headers=OFFICER)).json()
    assert doc["sent"] is False
    assert doc["undeliverable"]["code"] == "contact_erased"
    assert doc["undeliverable"]["en"] and doc["undeliverable"]["ar"]
    # The earlier answer's survey and the results rebuilt too.
    other = (await surveys.client.get(f"/surveys/by-case/{answered.case_id}", headers=OFFICER)).json()
    assert other["sent"] is True and other["answered"] is True
    assert str(received.case_id) not in invitation_links(outbox_path(surveys))
    results = (await surveys.client.get("/results", headers=OFFICER)).json()
    assert results["by_association_id"][0]["suppressed"] is True
