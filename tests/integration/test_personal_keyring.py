"""The subject keys (shared/personal): sealing, erasure by key, the master key and its rotation.

On a real SQLite file and on the machine's PostgreSQL (the keyring the services share).
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator
from uuid import uuid4

import psycopg
import pytest
from eventsourcing.domain import Aggregate, event

from shared.personal import ERASED, MasterKeyProblem, MasterKeys, Sealer, open_keyring
from shared.personal.mapper import ErasedRecord, PersonalEvent, is_erased_value
from shared.settings import ServiceSettings
from shared.store import ServiceApplication, open_application
from tests.conftest import POSTGRES_DSN

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServiceSettings]:
    data = tmp_path / "data"
    MasterKeys.create(data / "master-key.json")
    if request.param == "sqlite":
        yield ServiceSettings(service_name="t", nats_url="nats://unused", data_dir=data)
        return
    request.getfixturevalue("postgres_available")
    schema = f"keys_{uuid4().hex[:8]}"
    yield ServiceSettings(
        service_name="t", nats_url="nats://unused", data_dir=data, store="postgres",
        postgres_host=POSTGRES_DSN["host"], postgres_port=POSTGRES_DSN["port"],
        postgres_dbname=POSTGRES_DSN["dbname"], postgres_user=POSTGRES_DSN["user"],
        keyring_schema=schema,
    )
    with psycopg.connect(**POSTGRES_DSN, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_a_sealed_value_holds_no_plaintext_and_opens_with_its_key(settings: ServiceSettings) -> None:
    keyring = open_keyring(settings)
    sealer = Sealer(keyring)
    key_id = keyring.key_for("sidr", "1012345678")
    sealed = sealer.seal(key_id, {"name": "فاطمة الزهراني", "national_id": "1012345678"})
    text = json.dumps(sealed, ensure_ascii=False)
    assert "1012345678" not in text and "فاطمة" not in text
    assert sealer.open(sealed) == {"name": "فاطمة الزهراني", "national_id": "1012345678"}
    keyring.close()


def test_one_person_has_one_key_per_association_found_by_a_blind_index(settings: ServiceSettings) -> None:
    keyring = open_keyring(settings)
    first = keyring.key_for("sidr", "1012345678")
    assert keyring.key_for("sidr", "١٠١٢٣٤٥٦٧٨") == first  # Arabic-Indic digits: the same person
    assert keyring.key_for("elites", "1012345678") != first
    index = keyring.subject_index("sidr", "1012345678")
    assert "1012345678" not in index and len(index) == 40
    other = open_keyring(settings)  # another service's process, the same table
    assert other.key_for("sidr", "1012345678") == first
    keyring.close()
    other.close()


def test_destroying_a_subjects_keys_erases_their_values_everywhere(settings: ServiceSettings) -> None:
    keyring = open_keyring(settings)
    reader = open_keyring(settings)
    reader.cache_seconds = 0  # another process, past its cache
    key_id = keyring.key_for("sidr", "1012345678")
    kept = keyring.key_for("sidr", "1099999999")
    sealed = Sealer(keyring).seal(key_id, "0551234567")
    other = Sealer(keyring).seal(kept, "0559999999")
    assert Sealer(reader).open(sealed) == "0551234567"
    destroyed = keyring.destroy(keyring.subject_index("sidr", "1012345678"), "erasure-1")
    assert destroyed == [key_id]
    assert Sealer(reader).open(sealed) is ERASED
    assert Sealer(keyring).open(sealed) is ERASED
    assert Sealer(reader).open(other) == "0559999999"
    with pytest.raises(LookupError):
        Sealer(keyring).seal(key_id, "again")
    # The person applies again later: a new key, never the destroyed one.
    assert keyring.key_for("sidr", "1012345678") not in (key_id, kept)
    records = keyring.records(subject_index=keyring.subject_index("sidr", "1012345678"))
    assert [r.erasure_id for r in records if r.destroyed_at] == ["erasure-1"]
    keyring.close()
    reader.close()


def test_a_missing_or_wrong_master_key_is_refused(settings: ServiceSettings, tmp_path: Path) -> None:
    keyring = open_keyring(settings)
    keyring.key_for("sidr", "1012345678")
    keyring.close()
    missing = settings.model_copy(update={"master_key_file": tmp_path / "nowhere.json"})
    with pytest.raises(MasterKeyProblem, match="missing"):
        open_keyring(missing)
    wrong = MasterKeys.create(tmp_path / "other.json")
    # The right key id, another key: a file made for another deployment, renamed.
    current = MasterKeys.load(settings.master_key_path).current
    impostor = MasterKeys(tmp_path / "impostor.json", current, {current: wrong.current_key},
                          wrong.index_key)
    impostor.write()
    with pytest.raises(MasterKeyProblem, match="wrong key file"):
        open_keyring(settings.model_copy(update={"master_key_file": impostor.path}))
    with pytest.raises(MasterKeyProblem, match="lacks the key"):
        open_keyring(settings.model_copy(update={"master_key_file": wrong.path}))




def test_after_a_rotation_every_value_still_opens(settings: ServiceSettings) -> None:
    keyring = open_keyring(settings)
    sealed = [Sealer(keyring).seal(keyring.key_for("sidr", f"10{n:08d}"), f"person {n}") for n in range(30)]
    keyring.close()
    environment = {
        "PATH": "/usr/bin:/bin",
        "KHIDMA_DATA_DIR": str(settings.data_dir),
        "KHIDMA_STORE": settings.store,
        "KHIDMA_KEYRING_SCHEMA": settings.keyring_schema,
        "KHIDMA_POSTGRES_HOST": settings.postgres_host,
        "KHIDMA_POSTGRES_PORT": str(settings.postgres_port),
        "KHIDMA_POSTGRES_DBNAME": settings.postgres_dbname,
        "KHIDMA_POSTGRES_USER": settings.postgres_user,
    }
    before = MasterKeys.load(settings.master_key_path).current
    done = subprocess.run([sys.executable, "-m", "shared.personal", "rotate"], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    after = MasterKeys.load(settings.master_key_path)
    assert after.current != before and set(after.keys) == {after.current}  # the old key retired
    assert stat.S_IMODE(settings.master_key_path.stat().st_mode) == 0o600
    rotated = open_keyring(settings)
    assert rotated.masters_in_use() == {after.current}
    assert [Sealer(rotated).open(value) for value in sealed] == [f"person {n}" for n in range(30)]
    rotated.close()


class Person(Aggregate):
    class Registered(Aggregate.Created, PersonalEvent):
        personal_attributes = ("details",)
        personal_key: str
        details: dict[str, Any]
        association_id: str

    @event(Registered)
    def __init__(self, personal_key: str, details: dict[str, Any], association_id: str) -> None:
        self.personal_key = personal_key
        self.details = details


def test_the_store_holds_only_ciphertext_and_an_erased_subject_still_replays(
    settings: ServiceSettings,
) -> None:
    keyring = open_keyring(settings)
    app = open_application(ServiceApplication, settings.eventsourcing_env(), sealer=Sealer(keyring))
    key_id = keyring.key_for("sidr", "1012345678")
    person = Person(personal_key=key_id, details={"name": "Fatimah", "phone": "0551234567"}, association_id="sidr")
    app.save(person)
    stored = app.recorder.select_events(person.id)[0].state
    assert b"Fatimah" not in stored and b"0551234567" not in stored and b"sidr" in stored
    assert app.repository.get(person.id).details == {"name": "Fatimah", "phone": "0551234567"}
    keyring.destroy(keyring.subject_index("sidr", "1012345678"), "erasure-2")
    erased = app.repository.get(person.id).details
    assert isinstance(erased, ErasedRecord) and is_erased_value(erased) and erased == {}
    app.close()
    keyring.close()


@pytest.mark.parametrize("problem", ["missing", "wrong"])
def test_a_service_with_a_missing_or_wrong_master_key_stops_at_start_and_says_why(
    problem: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    settings = ServiceSettings(service_name="intake", nats_url="nats://unused", data_dir=data)
    MasterKeys.create(settings.master_key_path)
    open_keyring(settings).close()  # the keyring made with this deployment's key
    key_file = tmp_path / "nowhere.json"
    if problem == "wrong":
        other = MasterKeys.create(tmp_path / "other.json")
        current = MasterKeys.load(settings.master_key_path).current
        key_file = tmp_path / "impostor.json"
        MasterKeys(key_file, current, {current: other.current_key}, other.index_key).write()
    environment = {
        "PATH": "/usr/bin:/bin",
        "KHIDMA_NATS_URL": "nats://127.0.0.1:1",
        "KHIDMA_DATA_DIR": str(data),
        "KHIDMA_MASTER_KEY_FILE": str(key_file),
        "KHIDMA_AUTH_ISSUER": "http://127.0.0.1:1",
        "KHIDMA_AUTH_JWKS_URL": "http://127.0.0.1:1/jwks.json",
    }
    done = subprocess.run([sys.executable, "-m", "services.intake"], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr[-2000:]
    expected = "is missing" if problem == "missing" else "is not the one this keyring was made with"
    assert f"intake: cannot start: the master key file {key_file} {expected}" in done.stderr or (
        problem == "wrong" and expected in done.stderr
    ), done.stderr[-2000:]
    assert "تعذّر التشغيل" in done.stderr
    assert not (data / "intake.sqlite").exists()  # nothing was opened before the key was checked


@pytest.mark.postgres
def test_services_starting_together_make_the_shared_postgresql_keyring_once(
    postgres_available: dict[str, str], tmp_path: Path
) -> None:
    import threading

    schema = f"keys_{uuid4().hex[:8]}"
    MasterKeys.create(tmp_path / "master-key.json")
    settings = ServiceSettings(
        service_name="t", nats_url="nats://unused", data_dir=tmp_path, store="postgres",
        postgres_host=POSTGRES_DSN["host"], postgres_port=POSTGRES_DSN["port"],
        postgres_dbname=POSTGRES_DSN["dbname"], postgres_user=POSTGRES_DSN["user"],
        keyring_schema=schema,
    )
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def open_one() -> None:
        start.wait()
        try:
            open_keyring(settings).close()
        except BaseException as error:  # noqa: BLE001 — collected and asserted below
            errors.append(error)

    try:
        threads = [threading.Thread(target=open_one) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not errors, errors
    finally:
        with psycopg.connect(**POSTGRES_DSN, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
