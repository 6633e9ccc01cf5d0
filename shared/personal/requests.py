"""The request's personal part, opened at a consuming service's boundary.

`RequestReceived` carries the applicant, the fields, the documents and the
attestation sealed under the applicant's key (`shared/events.py`); events
published before encryption carry them plain, and both read the same here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from shared.events import Applicant, Attestation, Document, RequestReceivedPayload
from shared.personal.sealing import ERASED, Sealer, is_sealed


@dataclass(frozen=True)
class OpenedRequest:
    """The plaintext, or `erased` when the applicant's key was destroyed."""

    applicant: Applicant | None
    fields: dict[str, Any] = field(default_factory=dict)
    documents: list[Document] = field(default_factory=list)
    attestation: Attestation | None = None
    erased: bool = False


def _plain(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def open_request(payload: RequestReceivedPayload, sealer: Sealer | None) -> OpenedRequest:
    def opened(value: Any) -> Any:
        value = _plain(value)
        if is_sealed(value):
            if sealer is None:
                raise LookupError("a sealed request reached a service without the keyring")
            return sealer.open(value)
        return value

    applicant = opened(payload.applicant)
    parts = [opened(payload.fields), opened(payload.documents), opened(payload.attestation)]
    if applicant is ERASED or any(part is ERASED for part in parts):
        return OpenedRequest(applicant=None, erased=True)
    fields, documents, attestation = parts
    return OpenedRequest(
        applicant=Applicant.model_validate(applicant),
        fields=dict(fields or {}),
        documents=[Document.model_validate(document) for document in documents or []],
        attestation=Attestation.model_validate(attestation) if attestation else None,
    )
