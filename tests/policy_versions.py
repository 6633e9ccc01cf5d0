"""An association whose board approved a second version of its policy: sidr's pack as
version 1 (a 14-day window) and, from CHANGE_AT, version 2 (a 10-day window, a
quorum of 4), side by side in a policies folder of the test's own."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

from shared.policy_loader import DEFAULT_POLICIES_DIR

# 2025-03-05 00:00 in Riyadh: version 2 takes effect (its TOML gives the day).
CHANGE_AT = datetime(2025, 3, 4, 21, 0, tzinfo=UTC)
CHANGE_DAY = "2025-03-05"
V1_WINDOW, V2_WINDOW = 14, 10
V1_QUORUM, V2_QUORUM = 3, 4

APPROVAL = """
[board_approval]
body = { ar = "مجلس الإدارة", en = "Board of directors" }
meeting = "12"
date_as_written = "٢٠ شعبان ١٤٤٦"
calendar = "hijri"
hijri = "1446-08-20"
"""


def sidr_text() -> str:
    return (DEFAULT_POLICIES_DIR / "sidr.toml").read_text(encoding="utf-8")


def version_text(
    number: int,
    *,
    window: int,
    quorum: int = V1_QUORUM,
    takes_effect: str | None = None,
    approval: str = APPROVAL,
    text: str | None = None,
) -> str:
    """sidr's pack as version `number`, with its window and quorum."""
    body = text or sidr_text()
    body = re.sub(r"(?m)^decision_window_days = \d+", f"decision_window_days = {window}", body)
    body = re.sub(r"(?m)^quorum = \d+", f"quorum = {quorum}", body)
    version = f"\n[version]\nnumber = {number}\n"
    if takes_effect:
        version += f"takes_effect = {takes_effect}\n"
    return body + version + (approval if number > 1 else "")


def two_versions(folder: Path) -> Path:
    """A policies folder: every seed pack as it is, and sidr in two versions."""
    folder.mkdir(parents=True, exist_ok=True)
    for pack in DEFAULT_POLICIES_DIR.glob("*.toml"):
        if pack.stem != "sidr":
            shutil.copy(pack, folder / pack.name)
    versions = folder / "sidr"
    versions.mkdir(exist_ok=True)
    (versions / "v1.toml").write_text(version_text(1, window=V1_WINDOW), encoding="utf-8")
    (versions / "v2.toml").write_text(
        version_text(2, window=V2_WINDOW, quorum=V2_QUORUM, takes_effect=CHANGE_DAY),
        encoding="utf-8",
    )
    return folder
