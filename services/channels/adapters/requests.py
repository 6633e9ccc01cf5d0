"""The plain JSON endpoint of the help-request and volunteering channels:
`POST /requests`, for an association's other systems.

The caller is authenticated with its own client's bearer token, holding
`channel:help_request` or `channel:volunteering` in the association; the body is
intake's submission (`channel` one of these two, `channel_ref` the caller's own
message id: the same one twice is one request). The caller's token is handed on to
intake, so the history records the calling system itself. The answer is intake's,
with its status (201 opened, 200 a repeat), or its refusal, in both languages.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from services.channels.batches.auth import VerifiedCaller
from services.channels.intake import IntakeRefused
from services.channels.main import enabled
from shared.errors import NotFound, Refused, association_not_served
from shared.events import ASSOCIATION_ID_PATTERN, Applicant, Attestation, Contract
from shared.roles import channel_role
from shared.submissions import FromOutside, SubmittedDocuments, SubmittedFields

router = APIRouter(tags=["help requests and volunteering"])
CHANNELS = ("help_request", "volunteering")


class ChannelRequest(FromOutside, Contract):
    """A request from an association's own system: intake's submission, its channel
    one of `help_request` and `volunteering`."""

    association_id: str = Field(pattern=ASSOCIATION_ID_PATTERN)
    channel: Literal["help_request", "volunteering"]
    channel_ref: str = Field(
        min_length=1, max_length=200, description="the caller's own id of this message"
    )
    service_code: str = Field(min_length=1, max_length=64)
    applicant: Applicant
    fields: SubmittedFields
    documents: SubmittedDocuments
    attestation: Attestation | None = None


def channel_not_enabled(association_id: str, channel: str) -> Refused:
    return NotFound(
        "channel_not_enabled",
        f"{association_id} does not take requests by '{channel}' (its pack does "
        "not enable the channel).",
        f"لا تستقبل {association_id} الطلبات عبر '{channel}' (لا تفعّل لائحتها هذه القناة).",
    )


@router.post("/requests", status_code=201, summary="A help request or a volunteering request")
async def submit_request(
    body: ChannelRequest, request: Request, caller: VerifiedCaller
) -> JSONResponse:
    app = request.app
    if body.association_id not in app.state.packs:
        raise association_not_served(body.association_id)
    # What an association serves is public (intake's GET /associations): said first.
    if not enabled(app, body.association_id, body.channel, own_client=False):
        raise channel_not_enabled(body.association_id, body.channel)
    caller.principal.require(channel_role(body.channel), association_id=body.association_id)
    try:
        answer: dict[str, Any] = await app.state.intake.submit(
            body.model_dump(mode="json"), token=caller.token
        )
    except IntakeRefused as refusal:
        content: dict[str, Any] = refusal.as_dict()
        if refusal.detail is not None:
            content["detail"] = refusal.detail
        return JSONResponse(content, status_code=refusal.status)
    return JSONResponse(answer, status_code=200 if answer.get("duplicate") else 201)
