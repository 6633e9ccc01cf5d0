"""The OpenAPI document says what the routes really answer: besides each route's
own answers, the refusals every route of ours may give, in the one bilingual shape
(`Refusal`), with the statuses shared/http.py gives their kinds.

- every operation: 404 (an unknown association, case, survey…), 422 (the input),
  429 (the public budget, shared/limits.py, where a route is limited), 503 (the
  issuer's keys unreachable, for a route that verifies a token);
- an operation that changes something (POST, PUT, PATCH, DELETE): 409 (a rule of the
  policy refuses it) and 410 (no longer open to it);
- an operation with a body: 400 (not JSON at all) and 413 (too large);
- an operation that takes a token (or the applicant's code): 401, 403 and 503.

The operations routes (/health, /ready, /metrics …) document their own answers.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

REFUSAL_SCHEMA: dict[str, Any] = {
    "title": "Refusal",
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "a stable code, for programs"},
        "message": {
            "type": "object",
            "required": ["en", "ar"],
            "properties": {"en": {"type": "string"}, "ar": {"type": "string"}},
        },
        "detail": {"description": "for 422: each problem with its field's location"},
    },
}
REFUSAL_REF = {"$ref": "#/components/schemas/Refusal"}

EVERY = {404: "Not found (or not the caller's to see).", 422: "The input cannot be taken."}
CHANGES = {409: "A rule refuses it in the current state.", 410: "No longer open to it."}
WITH_BODY = {400: "The body is not valid JSON.", 413: "The body is too large."}
WITH_TOKEN = {
    401: "No token, or one that does not verify.",
    403: "The token lacks the role this needs here.",
    503: "The issuer's keys cannot be fetched now: nobody can be verified.",
}
CHANGING = {"post", "put", "patch", "delete"}


def _refusal(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": REFUSAL_REF}}}


def _documented(operation: dict[str, Any], method: str) -> None:
    if "operations" in operation.get("tags", []):
        return  # /health, /ready …: they say what they answer themselves
    wanted = dict(EVERY)
    if method in CHANGING:
        wanted |= CHANGES
    if "requestBody" in operation:
        wanted |= WITH_BODY
    if operation.get("security"):
        wanted |= WITH_TOKEN
    responses = operation.setdefault("responses", {})
    for status, description in wanted.items():
        responses.setdefault(str(status), _refusal(description))


def with_refusals(document: dict[str, Any]) -> dict[str, Any]:
    """The document with every operation's refusals."""
    document.setdefault("components", {}).setdefault("schemas", {})["Refusal"] = REFUSAL_SCHEMA
    for operations in document.get("paths", {}).values():
        for method, operation in operations.items():
            if method in {"get", "put", "post", "delete", "patch"}:
                _documented(operation, method)
    return document


def install_refusals(api: FastAPI) -> None:
    """`api.openapi()` (and /openapi.json) with every route's refusals documented."""

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            document = get_openapi(
                title=api.title, version=api.version, routes=api.routes, description=api.description
            )
            api.openapi_schema = with_refusals(document)
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
