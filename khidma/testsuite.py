"""`make test`: the suite as two pytest sessions side by side, one per core.

The browser and end-to-end tests spend most of their time waiting on other
processes (the services, Chromium), the unit and integration tests in their own;
run one after the other they leave a core idle for much of the quarter hour.
Each part is a whole pytest session of its own (its own temporary folder: two
sessions sharing one delete each other's), so nothing of one leaks into the
other; PostgreSQL schemas and ports are per test already.

    python -m khidma.testsuite [PYTEST ARGS...]

Every line of each part is printed as it comes, after the part's name; each
part's summary is printed again at the end, and the exit code is the first
failing part's (0 when both pass).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

# The slow, waiting half (with three long integration files, so the halves take about
# as long), and the rest: whatever new folder the suite grows goes to the second.
FIRST_HALF = [
    "tests/browser",
    "tests/e2e",
    "tests/integration/test_api_fuzzing.py",
    "tests/integration/test_compose.py",
    "tests/integration/test_nats_cluster.py",
]
PARTS: dict[str, list[str]] = {
    "browser+e2e": FIRST_HALF,
    "unit+integration": ["tests", *(f"--ignore={path}" for path in FIRST_HALF)],
}


@dataclass
class Part:
    name: str
    paths: list[str]
    process: subprocess.Popen[str] | None = None
    tail: list[str] = field(default_factory=list)


def _relay(part: Part, stream: IO[str], lock: threading.Lock) -> None:
    width = max(len(name) for name in PARTS)
    for line in stream:
        with lock:
            sys.stdout.write(f"{part.name:<{width}} | {line}")
            sys.stdout.flush()
        part.tail = [*part.tail[-40:], line]


def _start(part: Part, args: list[str], basetemp: Path, lock: threading.Lock) -> threading.Thread:
    command = [sys.executable, "-m", "pytest", *part.paths, f"--basetemp={basetemp}", *args]
    part.process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    assert part.process.stdout is not None
    relay = threading.Thread(target=_relay, args=(part, part.process.stdout, lock), daemon=True)
    relay.start()
    return relay


def _wait(part: Part, relay: threading.Thread) -> int:
    assert part.process is not None
    code = part.process.wait()
    relay.join()
    return code


def _summary(part: Part) -> str:
    """The part's last lines from its short summary on (or its last few)."""
    for index, line in enumerate(part.tail):
        if "short test summary info" in line:
            return "".join(part.tail[index:])
    return "".join(part.tail[-5:])


def main(args: list[str]) -> int:
    started = time.monotonic()
    lock = threading.Lock()
    parts = [Part(name, paths) for name, paths in PARTS.items()]
    with tempfile.TemporaryDirectory(prefix="khidma-tests-") as folder:
        relays = [
            _start(part, args, Path(folder) / f"part-{index}", lock)
            for index, part in enumerate(parts)
        ]
        try:
            codes = [_wait(part, relay) for part, relay in zip(parts, relays, strict=True)]
        except KeyboardInterrupt:
            for part in parts:
                if part.process is not None:
                    part.process.terminate()
            raise
    print(f"\n== the suite, both parts side by side: {time.monotonic() - started:.0f} s ==")
    for part, code in zip(parts, codes, strict=True):
        print(f"\n-- {part.name}: exit code {code} --\n{_summary(part)}", end="")
    failed = [code for code in codes if code != 0]
    return failed[0] if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
