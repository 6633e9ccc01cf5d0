"""A subject keyring for verification's unit tests: verification keeps the applicant's
and the members' personal data sealed (shared/personal), so its application needs one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shared.personal import Sealer
from tests.personal_data import keyring_of


@contextmanager
def sealer_in(folder: Path) -> Iterator[Sealer]:
    """A sealer over a keyring (and master key file) of its own in `folder`."""
    keyring = keyring_of(folder)
    try:
        yield Sealer(keyring)
    finally:
        keyring.close()
