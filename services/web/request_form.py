"""A pack's service as form fields, and a posted form back as what intake takes.

The one place both the public pages and the front desk turn a service of the
pack (its fields, documents and declaration) into inputs, and the posted form
into a submission, the missing information or the corrections. It decides
nothing: intake says what is missing, eligible or refused; this only carries
what the person typed, typed as the pack's field kinds, and places intake's
refusals beside the inputs they name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.inputs import typed_value

APPLICANT_DETAILS = ("national_id", "name", "phone", "email")
# The declaration's methods intake records (shared.events.Attestation).
METHODS = ("in_person", "paper_scan", "one_time_code")


@dataclass(frozen=True)
class RequestForm:
    """What a form asks for: applicant details, the service's fields and documents,
    and whether the declaration is asked."""

    applicant: tuple[str, ...] = ()
    fields: list[dict[str, Any]] = field(default_factory=list)
    documents: list[dict[str, Any]] = field(default_factory=list)
    attestation: bool = False


def service_of(pack: dict[str, Any], service_code: str) -> dict[str, Any] | None:
    return next((s for s in pack.get("services", []) if s["code"] == service_code), None)


def whole_form(service: dict[str, Any]) -> RequestForm:
    """A new request: the applicant, every field and document, the declaration."""
    return RequestForm(
        APPLICANT_DETAILS,
        list(service.get("required_fields", [])),
        list(service.get("required_documents", [])),
        True,
    )


def eligibility_form(service: dict[str, Any]) -> RequestForm:
    """The eligibility question: only the fields the service's rules look at."""
    named = {rule["field"] for rule in service.get("eligibility", [])}
    return RequestForm(fields=[f for f in service.get("required_fields", []) if f["name"] in named])


def missing_form(service: dict[str, Any], missing: list[dict[str, Any]]) -> RequestForm:
    """Completing a request: what intake listed as missing, and the declaration
    (whatever is added changes the data declared, so it is declared again)."""
    codes = {item.get("code") for item in missing}
    return RequestForm(
        fields=[f for f in service.get("required_fields", []) if f["name"] in codes],
        documents=[d for d in service.get("required_documents", []) if d["code"] in codes],
        attestation=True,
    )


def corrections_form(service: dict[str, Any], corrections: list[dict[str, Any]]) -> RequestForm:
    """Correcting: the details, fields and documents verification named, and a new
    declaration on the corrected data."""
    named = {part.strip() for c in corrections for part in str(c.get("field", "")).split(",")}
    return RequestForm(
        applicant=tuple(d for d in APPLICANT_DETAILS if d in named),
        fields=[f for f in service.get("required_fields", []) if f["name"] in named],
        documents=[d for d in service.get("required_documents", []) if d["code"] in named],
        attestation=True,
    )


def text_of(form: dict[str, Any], name: str) -> str:
    value = form.get(name, "")
    if isinstance(value, list):
        value = value[-1] if value else ""
    return str(value).strip()


def typed(value: str, kind: str) -> Any:
    """The value as the pack's kind, when it reads as one; as typed otherwise (intake
    says what is wrong with it)."""
    return typed_value(value, kind)


def applicant_of(
    form: dict[str, Any], details: tuple[str, ...] = APPLICANT_DETAILS
) -> dict[str, Any]:
    given = {name: text_of(form, f"applicant.{name}") for name in details}
    return {name: value for name, value in given.items() if value}


def fields_of(form: dict[str, Any], spec: RequestForm) -> dict[str, Any]:
    found = {}
    for requirement in spec.fields:
        value = text_of(form, f"field.{requirement['name']}")
        if value:
            found[requirement["name"]] = typed(value, requirement.get("kind", "text"))
    return found


def documents_of(form: dict[str, Any], spec: RequestForm) -> list[dict[str, Any]]:
    """The documents given: a reference and, where it has one, its expiry."""
    found = []
    for document in spec.documents:
        code = document["code"]
        number = text_of(form, f"doc.{code}.number")
        expires = text_of(form, f"doc.{code}.expires_on")
        if number or expires:
            found.append({"code": code, "number": number or None, "expires_on": expires or None})
    return found


def attestation_of(form: dict[str, Any], spec: RequestForm, method: str) -> dict[str, Any] | None:
    if not spec.attestation or not text_of(form, "attested"):
        return None
    chosen = text_of(form, "attestation_method") or method
    declared: dict[str, Any] = {"attested": True, "method": chosen}
    by = text_of(form, "attested_by")
    if by:
        declared["attested_by"] = by
    return declared


def submission_of(
    form: dict[str, Any],
    spec: RequestForm,
    *,
    association_id: str,
    service_code: str,
    channel: str,
    method: str,
) -> dict[str, Any]:
    """The body of intake's `POST /submissions`, from the whole form."""
    body: dict[str, Any] = {
        "association_id": association_id,
        "channel": channel,
        "channel_ref": text_of(form, "channel_ref"),
        "service_code": service_code,
        "applicant": applicant_of(form),
        "fields": fields_of(form, spec),
        "documents": documents_of(form, spec),
    }
    attestation = attestation_of(form, spec, method)
    if attestation:
        body["attestation"] = attestation
    return body


def information_of(form: dict[str, Any], spec: RequestForm, method: str) -> dict[str, Any]:
    """The body of `POST /cases/{id}/information`: what was missing."""
    body: dict[str, Any] = {"fields": fields_of(form, spec), "documents": documents_of(form, spec)}
    attestation = attestation_of(form, spec, method)
    if attestation:
        body["attestation"] = attestation
    return body


def corrections_of(form: dict[str, Any], spec: RequestForm, method: str) -> dict[str, Any]:
    """The body of `POST /cases/{key}/corrections`: what verification asked to correct."""
    body = information_of(form, spec, method)
    applicant = applicant_of(form, spec.applicant)
    if applicant:
        body["applicant"] = applicant
    return body


def eligibility_question(
    form: dict[str, Any], service: dict[str, Any], association_id: str
) -> dict[str, Any]:
    """The body of `POST /eligibility`: the fields typed so far (and the documents)."""
    spec = whole_form(service)
    return {
        "association_id": association_id,
        "service_code": service["code"],
        "fields": fields_of(form, spec),
        "documents": documents_of(form, spec),
    }


def values_of(form: dict[str, Any]) -> dict[str, str]:
    """What the person typed, to put back into the form re-rendered after a refusal."""
    return {key: text_of(form, key) for key in form if key != "csrf_token"}


def values_of_submission(known: dict[str, Any], spec: RequestForm) -> dict[str, str]:
    """A submission's values (`applicant`, `fields`, `documents`: what a channel knew,
    from a form link's prefill) as the form's inputs, to fill them in. Only the
    inputs the form has are filled; anything else is left out."""
    form: dict[str, Any] = {}
    applicant = known.get("applicant")
    if isinstance(applicant, dict):
        for name in spec.applicant:
            form[f"applicant.{name}"] = applicant.get(name)
    fields = known.get("fields")
    if isinstance(fields, dict):
        for requirement in spec.fields:
            form[f"field.{requirement['name']}"] = fields.get(requirement["name"])
    given = {
        document.get("code"): document
        for document in known.get("documents") or []
        if isinstance(document, dict)
    }
    for document in spec.documents:
        entry = given.get(document["code"]) or {}
        for part in ("number", "expires_on"):
            form[f"doc.{document['code']}.{part}"] = entry.get(part)
    return {
        name: value
        for name, value in values_of(
            {key: _text(value) for key, value in form.items() if value is not None}
        ).items()
        if value
    }


def _text(value: Any) -> str:
    if isinstance(value, bool):  # the form's yes/no select says "true" / "false"
        return "true" if value else "false"
    return str(value)


def input_name(location: list[Any], documents: list[dict[str, Any]]) -> str:
    """The form's input a refusal's location names (`["body", "applicant", "phone"]`)."""
    parts = (
        [str(part) for part in location[1:]]
        if location[:1] == ["body"]
        else list(map(str, location))
    )
    if len(parts) >= 2 and parts[0] == "applicant":
        return f"applicant.{parts[1]}"
    if len(parts) >= 2 and parts[0] == "fields":
        return f"field.{parts[1]}"
    if len(parts) >= 2 and parts[0] == "documents" and parts[1].isdigit():
        index = int(parts[1])
        if index < len(documents):
            what = parts[2] if len(parts) > 2 else "number"
            return f"doc.{documents[index]['code']}.{what}"
    if parts and parts[0] == "attestation":
        return "attested"
    return ".".join(parts)


def problems_of(detail: Any, documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Intake's 422 detail as {input name: {"type", "limit"}}, for the page to say in
    the reader's language beside the input."""
    problems: dict[str, dict[str, Any]] = {}
    if not isinstance(detail, list):
        return problems
    for item in detail:
        if not isinstance(item, dict):
            continue
        name = input_name(list(item.get("loc", [])), documents)
        context = item.get("ctx") or {}
        limit = context.get("max_length") or context.get("min_length") or ""
        problems.setdefault(name, {"kind": problem_kind(str(item.get("type", ""))), "limit": limit})
    return problems


def problem_kind(kind: str) -> str:
    """Pydantic's error type as one of the few problems the pages put into words."""
    if kind in ("missing", "string_too_short"):
        return "missing"
    if kind == "string_too_long":
        return "too_long"
    if kind.startswith("date"):
        return "date"
    if kind == "string_pattern_mismatch":
        return "pattern"
    return "other"
