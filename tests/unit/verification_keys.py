"""A subject keyring for verification's unit tests: verification keeps the applicant's
and the members' personal data sealed (shared/personal), so its application needs one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shared.personal import MasterKeys, Sealer, open_keyring
from shared.settings import ServiceSettings


@contextmanager
def sealer_in(folder: Path) -> Iterator[Sealer]:
    """A sealer over a keyring (and master key file) of its own in `folder`."""
    settings = ServiceSettings(
        service_name="verification", nats_url="nats://unused.invalid:4222", data_dir=folder
    )
    MasterKeys.ensure(settings.master_key_path)
    keyring = open_keyring(settings)
    try:
        yield Sealer(keyring)
    finally:
        keyring.close()
