"""What sealing personal data costs (issue 10), measured on this machine.

Three figures, each on a real SQLite keyring and store in a temporary folder:
- sealing and opening one request's personal part (applicant, fields, documents,
  attestation) with AES-256-GCM, and how much larger it is sealed;
- the keyring: a new subject's key, and opening a key (from the process's short
  cache, and from the table);
- the event store: saving and loading an aggregate whose event holds that
  personal part, with the sealing mapper and without it.

`make bench` prints them after the end-to-end figures; `python -m
khidma.bench_personal` alone.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eventsourcing.domain import Aggregate, event

from khidma.simulate import simulated_applicant
from shared.personal import MasterKeys, Sealer, open_keyring
from shared.personal.mapper import PersonalEvent
from shared.settings import ServiceSettings
from shared.store import ServiceApplication, open_application

REQUEST_PART: dict[str, Any] = {
    "fields": {"family_size": 6, "monthly_income": 3000, "address": "حي النسيم، الرياض"},
    "documents": [{"code": "national_id_card", "number": "ID-1", "expires_on": "2031-01-01"}],
    "attestation": {"attested": True, "method": "in_person", "attested_by": "فاطمة الزهراني"},
}


class Applied(Aggregate):
    """An aggregate shaped like intake's case: one event holding the personal part."""

    class Submitted(Aggregate.Created, PersonalEvent):
        personal_attributes = ("applicant", "request")
        personal_key: str | None
        applicant: dict[str, Any]
        request: dict[str, Any]

    @event(Submitted)
    def __init__(
        self, personal_key: str | None, applicant: dict[str, Any], request: dict[str, Any]
    ) -> None:
        self.applicant = applicant
        self.request = request


def timed(action: Callable[[], Any], repeat: int) -> list[float]:
    durations = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        durations.append(time.perf_counter() - started)
    return sorted(durations)


def summary(durations: list[float]) -> dict[str, float]:
    return {
        "n": len(durations),
        "p50_us": durations[len(durations) // 2] * 1e6,
        "p99_us": durations[min(len(durations) - 1, int(len(durations) * 0.99))] * 1e6,
    }


def store_costs(
    folder: Path, sealer: Sealer | None, key_id: str | None, repeat: int
) -> dict[str, Any]:
    settings = ServiceSettings(
        service_name="bench-sealed" if sealer else "bench-plain",
        nats_url="nats://unused",
        data_dir=folder,
    )
    app = open_application(ServiceApplication, settings.eventsourcing_env(), sealer=sealer)
    ids = []

    def save() -> None:
        aggregate = Applied(
            personal_key=key_id, applicant=simulated_applicant(), request=REQUEST_PART
        )
        app.save(aggregate)
        ids.append(aggregate.id)

    saving = timed(save, repeat)
    position = iter(ids)
    loading = timed(lambda: app.repository.get(next(position)), repeat)
    app.close()
    return {"save": summary(saving), "load": summary(loading)}


def measure(repeat: int = 2000) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="khidma-bench-personal-") as name:
        folder = Path(name)
        MasterKeys.create(folder / "master-key.json")
        settings = ServiceSettings(service_name="bench", nats_url="nats://unused", data_dir=folder)
        keyring = open_keyring(settings)
        sealer = Sealer(keyring)
        person = simulated_applicant()
        key_id = keyring.key_for("sidr", person["national_id"])
        part = {"applicant": person, **REQUEST_PART}
        sealed = sealer.seal(key_id, part)
        people = iter(simulated_applicant() for _ in range(repeat))
        figures = {
            "seal_request_part": summary(timed(lambda: sealer.seal(key_id, part), repeat)),
            "open_request_part": summary(timed(lambda: sealer.open(sealed), repeat)),
            "plaintext_bytes": len(json.dumps(part, ensure_ascii=False).encode()),
            "sealed_bytes": len(json.dumps(sealed).encode()),
            "new_subject_key": summary(
                timed(lambda: keyring.key_for("sidr", next(people)["national_id"]), repeat)
            ),
            "open_key_cached": summary(timed(lambda: keyring.key(key_id), repeat)),
        }
        keyring.cache_seconds = 0
        figures["open_key_from_table"] = summary(timed(lambda: keyring.key(key_id), repeat))
        keyring.cache_seconds = 5.0
        figures["store_sealed"] = store_costs(folder, sealer, key_id, repeat // 4)
        figures["store_plain"] = store_costs(folder, None, None, repeat // 4)
        keyring.close()
    return figures


def report_lines(figures: dict[str, Any]) -> list[str]:
    def row(name: str, values: dict[str, float]) -> str:
        return f"  {name:44} {int(values['n']):6d} {values['p50_us']:9.1f} {values['p99_us']:9.1f}"

    lines = [
        "encryption cost (AES-256-GCM, a key per data subject):",
        f"  {'':44} {'n':>6} {'p50 µs':>9} {'p99 µs':>9}",
    ]
    for name in (
        "seal_request_part",
        "open_request_part",
        "new_subject_key",
        "open_key_cached",
        "open_key_from_table",
    ):
        lines.append(row(name.replace("_", " "), figures[name]))
    for kind in ("sealed", "plain"):
        for step in ("save", "load"):
            lines.append(row(f"store {step}, {kind}", figures[f"store_{kind}"][step]))
    lines.append(
        f"  request part: {figures['plaintext_bytes']} bytes plain, {figures['sealed_bytes']} sealed"
    )
    return lines


def main() -> int:
    print("\n".join(report_lines(measure())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
