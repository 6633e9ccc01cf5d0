"""`make bench-capacity` as an operator runs it, with tiny numbers: one run shows a
complete pass and a pass with a request left unverified (which fails the run)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from khidma.processes import PROJECT_ROOT

# A benchmark's smoke: under make test-bench, to keep make test within its time.
pytestmark = [pytest.mark.e2e, pytest.mark.bench_smoke]

ROW = re.compile(
    r"^  (?P<transport>http|nats) +(?P<accepted>\d+) +(?P<verified>\d+) +(?P<accepted_s>[\d.]+)"
    r" +(?P<verified_s>[\d.]+) +(?P<p50>[\d.]+) +(?P<p95>[\d.]+) +(?P<p99>[\d.]+)"
    r" +(?P<ratio>[\d.]+)$",
    re.MULTILINE,
)


def test_bench_capacity_prints_sane_figures_and_fails_on_a_request_not_verified(
    tmp_path: Path,
) -> None:
    bench = subprocess.run(
        [sys.executable, "-m", "khidma.bench_capacity", "--requests", "12", "--concurrency", "4",
         "--leave-unconfirmed", "1", "--timeout", "5", "--output", str(tmp_path)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    output = bench.stdout + bench.stderr[-3000:]
    rows = {match["transport"]: match for match in ROW.finditer(bench.stdout)}
    assert set(rows) == {"http", "nats"}, output

    complete = rows["http"]
    assert (complete["accepted"], complete["verified"]) == ("12", "12"), output
    assert float(complete["accepted_s"]) > 0 and float(complete["verified_s"]) > 0, output
    assert 0 < float(complete["p50"]) <= float(complete["p95"]) <= float(complete["p99"]), output
    assert float(complete["ratio"]) > 0, output
    floor = re.search(r"publish +(\d+) msg/s\n +pull consume +(\d+) msg/s", bench.stdout)
    assert floor and int(floor[1]) > 0 and int(floor[2]) > 0, output
    for process in ("intake", "verification", "committee", "nats-server"):
        assert re.search(rf"^  {process} +[\d.]+ +[\d.]+ +[\d.]+$", bench.stdout, re.MULTILINE), (
            process
        )

    # The verifier left one request of the NATS pass alone: it is accepted, never
    # verified, and the run says so and fails.
    assert (rows["nats"]["accepted"], rows["nats"]["verified"]) == ("12", "11"), output
    assert bench.returncode == 1, output
    assert "FAILED (nats): 12 of 12 accepted, 11 verified" in bench.stderr
    written = json.loads(next(tmp_path.glob("capacity-sqlite-*.json")).read_text())
    assert written["passes"]["http"]["verified"] == 12
    assert written["passes"]["nats"]["verified"] == 11
    assert written["floor"]["publish_per_second"] > 0


def test_bench_capacity_offers_the_requests_at_a_rate_and_times_each_from_when_it_was_due(
    tmp_path: Path,
) -> None:
    bench = subprocess.run(
        [sys.executable, "-m", "khidma.bench_capacity", "--requests", "8", "--rate", "16",
         "--timeout", "30", "--output", str(tmp_path)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    output = bench.stdout + bench.stderr[-3000:]
    assert bench.returncode == 0, output
    assert "8 complete requests per transport, offered at 16 a second, sqlite stores" in output
    rows = {match["transport"]: match for match in ROW.finditer(bench.stdout)}
    for transport in ("http", "nats"):
        assert (rows[transport]["accepted"], rows[transport]["verified"]) == ("8", "8"), output
        # The 8 were offered over 7/16 s: a pass cannot be quicker than its offer.
        assert float(rows[transport]["accepted_s"]) <= 16 * 8 / 7, output
    assert json.loads(next(tmp_path.glob("capacity-sqlite-*.json")).read_text())["rate"] == 16


def test_a_rate_that_is_no_rate_is_refused_in_both_languages() -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "khidma.bench_capacity", "--rate", "0"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "'0' is not a rate above 0" in refused.stderr and "ليس معدلًا أكبر من 0" in refused.stderr
