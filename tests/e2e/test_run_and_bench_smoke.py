"""`make run`, `make simulate` and `make bench` as an operator runs them: subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from khidma.processes import PROJECT_ROOT, SERVICES
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

run_lines: list[str] = []


def _printed_lines(run: subprocess.Popen[str], until: str) -> str:
    """What make run printed, up to and including the line that starts with `until`."""
    assert run.stdout is not None
    while True:
        line = run.stdout.readline()
        assert line, "make run ended before printing how to sign in"
        run_lines.append(line)
        if line.strip().startswith(until):
            return line


def _sign_in_as_the_first_admin(issuer: str, line: str) -> None:
    """The one-time password printed once works, and only to choose a password."""
    one_time = line.rsplit(":", 1)[1].strip()
    assert len(one_time) >= 12, line
    chosen = "a-password-the-admin-chose-1"
    changed = httpx.post(
        f"{issuer}/account/password",
        json={"username": "admin", "current_password": one_time, "new_password": chosen},
        timeout=10,
    )
    assert changed.status_code == 204, changed.text
    token = httpx.post(
        f"{issuer}/oauth/token",
        data={"grant_type": "password", "username": "admin", "password": chosen},
        timeout=10,
    )
    assert token.status_code == 200, token.text
    assert token.json()["token_type"] == "Bearer"


def test_make_run_serves_every_service_drives_cases_and_stops_cleanly_on_ctrl_c(
    nats_server, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    endpoints_file = data / "endpoints.json"
    run = subprocess.Popen(
        [sys.executable, "-m", "khidma.run", "--data-dir", str(data)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "NATS_URL": nats_server.url},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # As a shell starts it in the background: with SIGINT ignored. Ctrl-C
        # (SIGINT) must still stop everything.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        started = wait_for(
            lambda: run.poll() is not None or endpoints_file.exists(),
            timeout=90,
            what="make run to write its endpoints",
        )
        assert started and run.poll() is None, "make run exited during start-up"
        endpoints = wait_for(lambda: json.loads(endpoints_file.read_text()), timeout=5)
        assert endpoints["nats"] == nats_server.url  # NATS_URL honoured, none embedded
        for name in (*SERVICES, "identity"):
            assert httpx.get(f"{endpoints[name]}/ready", timeout=5).status_code == 200, name
        _sign_in_as_the_first_admin(endpoints["identity"], _printed_lines(run, "sign in"))

        simulated = subprocess.run(
            [sys.executable, "-m", "khidma.simulate", "--cases", "2", "--seed", "1",
             "--endpoints", str(endpoints_file)],
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
        )
        assert simulated.returncode == 0, simulated.stdout + simulated.stderr
        assert "2 completed, 0 failed" in simulated.stdout

        run.send_signal(signal.SIGINT)
        rest, _ = run.communicate(timeout=60)
        output = "".join(run_lines) + rest
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0, output
    assert "Khidma: stopped." in output
    assert not endpoints_file.exists()
    for name in SERVICES:
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{endpoints[name]}/health", timeout=2)


# A benchmark's smoke: under make test-bench, to keep make test within its time.
@pytest.mark.bench_smoke
def test_make_bench_reports_rates_latencies_and_memory_for_three_cases(tmp_path: Path) -> None:
    output_dir = tmp_path / "bench-results"
    bench = subprocess.run(
        [sys.executable, "-m", "khidma.bench", "--cases", "3", "--concurrency", "3",
         "--output", str(output_dir), "--web-cases", "300", "--fsync-messages", "200"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert bench.returncode == 0, bench.stdout + bench.stderr[-3000:]
    report = bench.stdout
    assert "completed cases            3 of 3" in report
    for figure in ("full cases per second", "events per second", "p50 ms", "p99 ms",
                   "publish latency", "hop latency", "peak memory", "MiB"):
        assert figure in report, figure
    assert "polling" in report  # cases/s and hops include the simulated people's waits
    assert "web list page (/desk) over 300 cases" in report
    assert "sync_interval default" in report and "sync_interval always" in report
    (written,) = output_dir.glob("bench-*.json")
    result = json.loads(written.read_text())
    assert result["completed"] == 3 and result["cases_per_second"] > 0
    assert result["events"] > 0 and result["hop_latency_ms"]
    assert set(result["web_list_page"]["pages"]) >= {"first", "middle", "last"}
    assert set(result["publish_per_second_by_sync_interval"]) == {"default", "always"}
