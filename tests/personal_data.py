"""Personal data in tests: a keyring of the test's own, requests sealed as intake
publishes them, and the search of files' raw bytes for plaintext.

    sealer = keyring_sealer(tmp_path)
    event = sealed_request(sealer, applicant=Applicant(...), attestation=...)
    assert_no_plaintext(data_dir, ["1000000008", "عبدالله", "+966500000001"])
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from shared.events import RequestReceived
from shared.personal import MasterKeys, Sealer, SubjectKeyring, open_keyring
from shared.settings import ServiceSettings
from tests import builders


def keyring_of(data_dir: Path) -> SubjectKeyring:
    """The keyring a service started on `data_dir` opens: the master key file and the
    keyring file there, as khidma/processes.ServiceProcess and the in-process runner
    make them (the key file is created if it is not there yet)."""
    settings = ServiceSettings(
        service_name="tests", nats_url="nats://unused.invalid:4222", data_dir=data_dir
    )
    MasterKeys.ensure(settings.master_key_path)
    return open_keyring(settings)


def keyring_sealer(folder: Path) -> Sealer:
    """A sealer over the keyring of SQLite files in `folder` (made on first use)."""
    return Sealer(keyring_of(folder))


PERSONAL_FIELDS = ("applicant", "fields", "documents", "attestation")


def opened_payload(payload: Mapping[str, Any], keyring: SubjectKeyring) -> dict[str, Any]:
    """A RequestReceived payload as read from the stream (JSON), its personal fields
    opened with the keyring; an erased one reads as the "erased" marker."""
    sealer = Sealer(keyring)
    return {
        **payload,
        **{name: sealer.shown(payload.get(name)) for name in PERSONAL_FIELDS if name in payload},
    }


def _plain(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def sealed_request(sealer: Sealer, **overrides: Any) -> RequestReceived:
    """A RequestReceived as intake publishes it: applicant, fields, documents and
    attestation sealed under the applicant's key, with the key id and blind index."""
    return sealed(builders.request_received(**overrides), sealer)


def sealed(plain: RequestReceived, sealer: Sealer) -> RequestReceived:
    """The same request with its personal fields sealed, as intake publishes it."""
    payload = plain.payload
    applicant = _plain(payload.applicant)
    keyring: Any = sealer.keys
    key_id = keyring.key_for(plain.association_id, applicant["national_id"])
    documents = _plain(payload.documents)
    sealed_fields: dict[str, Any] = {
        "applicant": sealer.seal(key_id, applicant),
        "fields": sealer.seal(key_id, _plain(payload.fields)),
        "documents": sealer.seal(key_id, [_plain(d) for d in documents]),
        "attestation": None
        if payload.attestation is None
        else sealer.seal(key_id, _plain(payload.attestation)),
        "personal_key": key_id,
        "subject_index": keyring.subject_index(plain.association_id, applicant["national_id"]),
    }
    return RequestReceived.model_validate(
        {**plain.model_dump(), "payload": {**payload.model_dump(), **sealed_fields}}
    )


def erase(sealer: Sealer, association_id: str, national_id: str) -> list[str]:
    """Destroys the subject's keys, as an erasure does; returns their ids."""
    keyring: Any = sealer.keys
    return list(keyring.destroy(keyring.subject_index(association_id, national_id), "erasure-1"))


def encodings(text: str) -> list[bytes]:
    """The byte forms a text could take in a file or a message: UTF-8, UTF-16 either
    way (SQLite may store text so), JSON's \\u escapes (either case), percent-encoding."""
    escaped = json.dumps(text, ensure_ascii=True)[1:-1]
    forms = {
        text.encode("utf-8"),
        text.encode("utf-16-le"),
        text.encode("utf-16-be"),
        escaped.encode("ascii"),
        escaped.lower().encode("ascii"),
        escaped.upper().replace("\\U", "\\u").encode("ascii"),
        urllib.parse.quote(text).encode("ascii"),
        urllib.parse.quote_plus(text).encode("ascii"),
    }
    return sorted(forms)


def plaintext_in(data: bytes, secrets: Iterable[str]) -> list[str]:
    """Which of the secrets the bytes hold, in any of their encodings."""
    return [secret for secret in secrets if any(form in data for form in encodings(secret))]


def plaintext_in_files(folder: Path, secrets: Iterable[str]) -> list[str]:
    """Which secrets any file under the folder holds (`'secret' in path`)."""
    secrets = list(secrets)
    return [
        f"{secret!r} in {path.relative_to(folder)}"
        for path in files_under(folder)
        for secret in plaintext_in(path.read_bytes(), secrets)
    ]


def files_under(*paths: Path) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(p for p in sorted(path.rglob("*")) if p.is_file())
        elif path.is_file():
            found.append(path)
    return found


def plaintext_found(paths: Iterable[Path], values: Iterable[str]) -> list[str]:
    """Where any form of any value appears in the raw bytes of the files."""
    hits: list[str] = []
    wanted = [(value, form) for value in values for form in encodings(value)]
    for path in files_under(*paths):
        data = path.read_bytes()
        for value, form in wanted:
            if form in data:
                hits.append(f"{value!r} ({form!r}) in {path}")
    return hits


def assert_no_plaintext(paths: Iterable[Path] | Path, values: Iterable[str]) -> None:
    paths = [paths] if isinstance(paths, Path) else list(paths)
    assert files_under(*paths), f"no files to search under {paths}"
    hits = plaintext_found(paths, values)
    assert not hits, "plaintext personal data found:\n" + "\n".join(hits)
