"""The files a service creates are its own: 0600, their folders 0700.

Stores, read models, logs and outboxes hold personal data (even sealed, they
say who applied when): nobody but the service's user reads them. The umask makes
every file the process creates private from the start; files made by an older
version are tightened once at start.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TextIO

PRIVATE_UMASK = 0o077


def keep_private(folder: Path) -> None:
    """From now on this process creates only private files; `folder` (the data
    folder) and what is already in it become private too."""
    os.umask(PRIVATE_UMASK)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for path in [folder, *folder.rglob("*")]:
        try:
            info = path.lstat()
        except FileNotFoundError:  # removed meanwhile (a WAL file checkpointed away)
            continue
        if stat.S_ISLNK(info.st_mode) or not info.st_mode & 0o077:
            continue
        path.chmod(stat.S_IMODE(info.st_mode) & 0o700)


def append_private(path: Path) -> TextIO:
    """The file opened for appending text, made 0600 (its folder 0700) when it is new."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    return os.fdopen(descriptor, "a", encoding="utf-8")


def write_private(path: Path, text: str) -> None:
    """Writes a new file that only this user may read (0600), whatever the umask."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)
    os.chmod(path, 0o600)
