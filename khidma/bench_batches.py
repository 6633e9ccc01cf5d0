"""How fast a branch office's batch goes through (issue 12): 10,000 rows by default.

A real system (EmbeddedSystem) starts in a temporary folder; a batch CSV is made as
Excel writes it (a BOM, CRLF, Arabic names, each row its own applicant with a valid
national id), uploaded to `POST /batches` as the branch office's client, and timed
from the upload to the last byte of the result file. `--again` uploads it a second
time (every row then already received: nothing is created twice).

`make bench-batches` prints the figures; `python -m khidma.bench_batches --rows 10000`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import httpx

from khidma.run import CHANNEL_CLIENTS_FILE, EmbeddedSystem
from khidma.simulate import national_id

NAMES = ("فاطمة الزهراني", "محمد القحطاني", "نورة العتيبي", "عبدالله الدوسري", "هند الشهري")


def batch(rows: int, seed: int = 1448) -> bytes:
    rng = random.Random(seed)
    ids: set[str] = set()
    while len(ids) < rows:
        ids.add(national_id(rng, resident=rng.random() < 0.2))
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(
        [
            "association_id", "service_code", "national_id", "name", "phone",
            "family_size", "monthly_income", "doc:national_id_card:number",
            "doc:national_id_card:expires_on", "attested", "method",
        ]
    )  # fmt: skip
    for number, nid in enumerate(sorted(ids)):
        writer.writerow(
            [
                "textile-coop", "support-request", nid, f"{NAMES[number % len(NAMES)]} {number}",
                f"05{rng.randint(10_000_000, 99_999_999)}", rng.randint(1, 9),
                rng.randint(1500, 9000), nid, "2030-01-31", "yes", "paper_scan",
            ]
        )  # fmt: skip
    return out.getvalue().encode("utf-8-sig")


def token(system: EmbeddedSystem, channel: str = "branch_office") -> str:
    """A bearer token of the channel's adapter client (client credentials)."""
    client = json.loads((system.data_dir / CHANNEL_CLIENTS_FILE).read_text())[channel]
    response = httpx.post(
        f"{system.services['identity'].url}/oauth/token",
        data={"grant_type": "client_credentials", **client},
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def upload(system: EmbeddedSystem, content: bytes, bearer: str) -> tuple[float, dict[str, str]]:
    started = time.perf_counter()
    response = httpx.post(
        f"{system.services['channels'].url}/batches",
        files={"file": ("bench.csv", content, "text/csv")},
        headers={"Authorization": f"Bearer {bearer}"},
        timeout=3600,
    )
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"the upload was refused: {response.status_code} {response.text[:300]}")
    reader = csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"), newline=""))
    counts: dict[str, int] = {}
    for row in reader:
        counts[row["outcome"]] = counts.get(row["outcome"], 0) + 1
    return elapsed, {k: str(v) for k, v in sorted(counts.items())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16, help="rows sent to intake at once")
    parser.add_argument("--again", action="store_true", help="upload the same batch a second time")
    args = parser.parse_args(argv)
    content = batch(args.rows)
    environment = {"KHIDMA_BATCHES_CONCURRENCY": str(args.concurrency)}
    folder = tempfile.TemporaryDirectory(prefix="khidma-bench-batches-")
    with (
        folder,
        EmbeddedSystem(Path(folder.name), fixed_ports=False, service_env=environment) as system,
    ):
        bearer = token(system)
        runs = [("first upload", *upload(system, content, bearer))]
        if args.again:
            runs.append(("same batch again", *upload(system, content, bearer)))
    print(f"batch: {args.rows} rows, {len(content)} bytes, concurrency {args.concurrency}")
    for name, elapsed, counts in runs:
        outcomes = ", ".join(f"{k} {v}" for k, v in counts.items())
        print(f"{name}: {elapsed:.1f} s, {args.rows / elapsed:.0f} rows/s ({outcomes})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
