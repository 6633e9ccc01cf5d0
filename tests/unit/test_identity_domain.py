"""Identity's domain: passwords only as Argon2 hashes, roles per association with their
history, refusals in both languages, and signing keys whose private halves are no events."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.identity.application import IdentityApplication
from services.identity.domain import (
    ROLES,
    Client,
    KeySet,
    SecretHasher,
    User,
    check_role,
)
from services.identity.keys import KeyFile, KeyFileProblem, generate
from services.identity.tokens import OAuthError, TokenPolicy
from shared.clock import FrozenClock
from shared.errors import Invalid, NotFound, Refused
from shared.http import refusal_status
from shared.policy_loader import load_packs

pytestmark = pytest.mark.unit

NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
ASSOCIATIONS = ("sidr", "health-coop")
PACKS = load_packs(Path(__file__).resolve().parents[2] / "policies")


def new_user(hasher: SecretHasher, password: str = "a long enough passphrase") -> User:
    return User.register(
        username="Huda.Officer",
        display_name="  Huda   Al-Harbi ",
        password_hash=hasher.hash(password),
        temporary_password=False,
        registered_by="cli:root",
        at=NOW,
    )


@pytest.fixture(scope="module")
def hasher() -> SecretHasher:
    return SecretHasher()


def application(tmp_path: Path, clock: FrozenClock) -> IdentityApplication:
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(tmp_path / "identity.sqlite"),
        "CREATE_TABLE": "y",
        "SINGLE_ROW_TRACKING": "n",
    }
    return IdentityApplication(
        env,
        clock=clock,
        packs=PACKS,
        key_file=tmp_path / "identity-keys.json",
        tokens=TokenPolicy(issuer="http://id.test", audience="khidma"),
    )


def test_a_password_is_kept_only_as_an_argon2_hash(hasher: SecretHasher) -> None:
    user = new_user(hasher)
    assert user.password_hash.startswith("$argon2id$")
    assert "a long enough passphrase" not in user.password_hash
    assert hasher.verify("a long enough passphrase", user.password_hash)
    assert not hasher.verify("a long enough passphrasE", user.password_hash)
    assert not hasher.verify("anything", "not a hash at all")
    for event in user.collect_events():
        assert "a long enough passphrase" not in repr(event.__dict__)


def test_a_user_name_is_normalised_and_the_display_name_tidied(hasher: SecretHasher) -> None:
    user = new_user(hasher)
    assert user.username == "huda.officer"
    assert user.display_name == "Huda Al-Harbi"


def test_a_user_name_outside_the_pattern_is_refused_in_both_languages(
    hasher: SecretHasher,
) -> None:
    with pytest.raises(Invalid) as refused:
        User.register(
            username="huda officer",
            display_name="Huda",
            password_hash=hasher.hash("a long enough passphrase"),
            temporary_password=False,
            registered_by="cli",
            at=NOW,
        )
    assert refused.value.code == "invalid_username"
    assert refused.value.en and refused.value.ar


def test_an_unknown_role_is_refused_with_a_stable_code_in_english_and_arabic() -> None:
    with pytest.raises(Invalid) as refused:
        check_role("superuser", "sidr", ASSOCIATIONS)
    assert refused.value.code == "unknown_role"
    assert "superuser" in refused.value.en and "superuser" in refused.value.ar
    assert refusal_status(refused.value) == 422


def test_an_association_not_in_the_packs_is_refused() -> None:
    with pytest.raises(Invalid) as refused:
        check_role("verifier", "nowhere", ASSOCIATIONS)
    assert refused.value.code == "unknown_association"
    assert refused.value.as_dict()["message"]["ar"]  # type: ignore[index]


def test_every_role_of_the_brief_can_be_granted(hasher: SecretHasher) -> None:
    user = new_user(hasher)
    for role in ROLES:
        user.grant(role=role, association_id="sidr", associations=ASSOCIATIONS, by="a", at=NOW)
    assert user.current_roles() == {"sidr": sorted(ROLES)}


def test_roles_are_held_per_association(hasher: SecretHasher) -> None:
    user = new_user(hasher)
    user.grant(role="verifier", association_id="sidr", associations=ASSOCIATIONS, by="a", at=NOW)
    user.grant(
        role="committee_member",
        association_id="health-coop",
        associations=ASSOCIATIONS,
        by="a",
        at=NOW,
    )
    assert user.holds("verifier", "sidr")
    assert not user.holds("verifier", "health-coop")
    assert user.current_roles() == {"health-coop": ["committee_member"], "sidr": ["verifier"]}


def test_granting_a_role_held_and_revoking_one_not_held_are_refused(hasher: SecretHasher) -> None:
    user = new_user(hasher)
    user.grant(role="verifier", association_id="sidr", associations=ASSOCIATIONS, by="a", at=NOW)
    with pytest.raises(Refused) as again:
        user.grant(
            role="verifier", association_id="sidr", associations=ASSOCIATIONS, by="a", at=NOW
        )
    assert again.value.code == "role_already_held"
    with pytest.raises(Refused) as absent:
        user.revoke(role="auditor", association_id="sidr", by="a", at=NOW)
    assert absent.value.code == "role_not_held"
    assert refusal_status(absent.value) == 409


def test_a_revoked_role_was_held_before_and_not_after(hasher: SecretHasher) -> None:
    user = new_user(hasher)
    granted, revoked = NOW, NOW + timedelta(days=10)
    user.grant(
        role="committee_member",
        association_id="sidr",
        associations=ASSOCIATIONS,
        by="a",
        at=granted,
    )
    user.revoke(role="committee_member", association_id="sidr", by="b", at=revoked, reason="left")
    assert user.held_at("committee_member", "sidr", granted + timedelta(days=1))
    assert not user.held_at("committee_member", "sidr", revoked)
    assert not user.held_at("committee_member", "sidr", granted - timedelta(seconds=1))
    assert user.current_roles() == {}
    (grant,) = user.grants
    assert (grant.granted_by, grant.revoked_by, grant.revoke_reason) == ("a", "b", "left")


def test_a_disabled_user_holds_nothing_from_then_and_gets_no_more_grants(
    hasher: SecretHasher,
) -> None:
    user = new_user(hasher)
    user.grant(role="verifier", association_id="sidr", associations=ASSOCIATIONS, by="a", at=NOW)
    user.disable(by="admin", at=NOW + timedelta(days=1), reason="left the association")
    assert user.current_roles() == {}
    assert user.held_at("verifier", "sidr", NOW + timedelta(hours=1))
    assert not user.held_at("verifier", "sidr", NOW + timedelta(days=2))
    with pytest.raises(Refused) as refused:
        user.grant(role="auditor", association_id="sidr", associations=ASSOCIATIONS, by="a", at=NOW)
    assert refused.value.code == "user_disabled"


def test_a_user_summary_never_shows_the_password_hash(hasher: SecretHasher) -> None:
    summary = new_user(hasher).summary()
    assert "password_hash" not in summary
    assert "$argon2" not in repr(summary)


def test_a_client_is_limited_to_the_channels_its_associations_enable() -> None:
    enabled = {"sidr": ["website", "phone"], "health-coop": ["website"]}
    client = Client.register(
        client_id="web-adapter",
        name="Website adapter",
        secret_hash="$argon2id$…",
        associations=["sidr", "health-coop"],
        channels=["website", "phone"],
        enabled_channels=enabled,
        registered_by="cli",
        at=NOW,
    )
    assert client.roles_claim(enabled) == {
        "health-coop": ["channel:website"],
        "sidr": ["channel:phone", "channel:website"],
    }
    with pytest.raises(Invalid) as refused:
        Client.register(
            client_id="letters",
            name="Letters",
            secret_hash="x",
            associations=["health-coop"],
            channels=["letter"],
            enabled_channels=enabled,
            registered_by="cli",
            at=NOW,
        )
    assert refused.value.code == "unknown_channel"


def test_the_key_set_records_public_keys_only_and_keeps_the_signing_key() -> None:
    keys = KeySet(at=NOW)
    first, second = generate("ES256"), generate("RS256")
    keys.add(kid=first.kid, algorithm="ES256", public_jwk=first.public_jwk(), by="t", at=NOW)
    keys.add(kid=second.kid, algorithm="RS256", public_jwk=second.public_jwk(), by="t", at=NOW)
    assert keys.active is not None and keys.active.kid == second.kid
    for key in keys.published():
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key.public_jwk)
    with pytest.raises(ValueError):
        keys.add(
            kid="x", algorithm="ES256", public_jwk={"kty": "EC", "d": "secret"}, by="t", at=NOW
        )
    with pytest.raises(Refused) as in_use:
        keys.retire(kid=second.kid, by="t", at=NOW)
    assert in_use.value.code == "key_in_use"
    keys.retire(kid=first.kid, by="t", at=NOW)
    assert [key.kid for key in keys.published()] == [second.kid]
    with pytest.raises(NotFound):
        keys.retire(kid="nope", by="t", at=NOW)


def test_the_key_file_has_mode_0600_and_a_readable_one_is_refused(tmp_path: Path) -> None:
    key_file = KeyFile(tmp_path / "keys.json")
    key = generate("ES256")
    key_file.store(key)
    assert stat.S_IMODE(os.stat(key_file.path).st_mode) == 0o600
    assert KeyFile(key_file.path).get(key.kid).kid == key.kid
    os.chmod(key_file.path, 0o644)
    with pytest.raises(KeyFileProblem) as exposed:
        KeyFile(key_file.path).get(key.kid)
    assert exposed.value.code == "key_file_exposed"


def test_no_private_key_reaches_the_event_store(tmp_path: Path) -> None:
    app = application(tmp_path, FrozenClock(NOW))
    kid = app.ensure_signing_key(algorithm="ES256", by="test")
    pem = (tmp_path / "identity-keys.json").read_text()
    assert "PRIVATE KEY" in pem
    stored = b"".join(n.state for n in app.read_notifications(0, 100))
    assert kid.encode() in stored
    assert b"PRIVATE" not in stored and b'"d"' not in stored
    assert app.jwks()["keys"][0]["kid"] == kid


def test_a_one_time_password_signs_in_to_nothing_until_the_user_chooses_one(
    tmp_path: Path,
) -> None:
    app = application(tmp_path, FrozenClock(NOW))
    app.ensure_signing_key(algorithm="ES256", by="test")
    created = app.create_admin("admin", "Administrator", by="cli:root")
    one_time = created["one_time_password"]
    assert created["roles"] == {a: ["admin"] for a in sorted(PACKS)}
    with pytest.raises(OAuthError) as refused:
        app.password_token("admin", one_time)
    assert (refused.value.error, refused.value.code) == (
        "invalid_grant",
        "password_change_required",
    )
    with pytest.raises(Invalid) as weak:
        app.set_own_password("admin", one_time, "short")
    assert weak.value.code == "weak_password"
    app.set_own_password("admin", one_time, "my own long passphrase")
    assert app.password_token("admin", "my own long passphrase").access_token
    with pytest.raises(OAuthError):
        app.password_token("admin", one_time)


def test_an_unknown_user_and_a_wrong_password_are_refused_alike(tmp_path: Path) -> None:
    app = application(tmp_path, FrozenClock(NOW))
    app.register_user("huda", "Huda", by="t", password="a long enough passphrase")
    with pytest.raises(OAuthError) as wrong:
        app.password_token("huda", "not her passphrase")
    with pytest.raises(OAuthError) as unknown:
        app.password_token("nobody", "not her passphrase")
    assert wrong.value.response_body() == unknown.value.response_body()
