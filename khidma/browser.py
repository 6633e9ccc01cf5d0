"""The browser the web tests drive: Debian's chromium, installed when it is missing.

Playwright's own browser download cannot work on these machines, so the tests
point Playwright at the system's chromium. `python -m khidma.browser` (run by
`make test`) installs it with apt-get when it is not there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def chromium_path() -> Path | None:
    configured = os.environ.get("KHIDMA_CHROMIUM")
    for candidate in (configured, *CANDIDATES, shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def ensure_chromium() -> Path:
    """The chromium executable, installed from Debian's packages when missing."""
    found = chromium_path()
    if found:
        return found
    if os.geteuid() != 0:
        raise RuntimeError(
            "chromium is not installed and this user cannot install it: "
            "run `sudo apt-get install -y chromium` (or set KHIDMA_CHROMIUM)"
        )
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=environment)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "chromium", "fonts-dejavu-core"],
        check=True,
        env=environment,
    )
    found = chromium_path()
    if not found:
        raise RuntimeError("apt-get installed chromium, yet no chromium executable was found")
    return found


def main() -> int:
    try:
        print(f"chromium: {ensure_chromium()}")
    except (RuntimeError, subprocess.CalledProcessError) as error:
        print(f"chromium could not be installed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
