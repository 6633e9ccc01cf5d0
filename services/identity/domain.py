"""Identity's domain: the staff users, the machine clients and the signing-key set.

A user holds roles per association; every grant and revocation is an event with
who did it and when (`at`, from the injectable clock), so "did X hold role R in
association A at moment T" is answered by replaying the user's events. A
machine client (a channel adapter) is limited to the associations and channels
it was registered for. The key set records which signing keys exist (their ids
and public JWKs) and which were retired; the private keys are never events
(see `services/identity/keys.py` and docs/decisions.md).

Passwords and client secrets are kept only as Argon2 hashes (pwdlib). This
module imports no broker, HTTP, settings or key file.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from shared.errors import Invalid, NotFound, Refused
from shared.roles import CHANNEL_ROLE_PREFIX, ROLES

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
CLIENT_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
PASSWORD_MIN_LENGTH = 12
PASSWORD_MAX_LENGTH = 256
DISPLAY_NAME_MAX_LENGTH = 200
ACTOR_MAX_LENGTH = 200
# What a machine client's roles claim lists for each of its associations.

_NAMESPACE = uuid5(NAMESPACE_URL, "https://khidma.example/identity")


# Refusals ------------------------------------------------------------------------


def unknown_role(role: str) -> Invalid:
    return Invalid(
        "unknown_role",
        f"There is no role {role!r}; the roles are: {', '.join(ROLES)}.",
        f"لا يوجد دور باسم {role!r}؛ الأدوار هي: {'، '.join(ROLES)}.",
    )


def unknown_association(association_id: str) -> Invalid:
    return Invalid(
        "unknown_association",
        f"There is no association {association_id!r} in the policy packs.",
        f"لا توجد جمعية بالمعرّف {association_id!r} في حزم السياسات.",
    )


def unknown_channel(channel: str, association_ids: Sequence[str]) -> Invalid:
    return Invalid(
        "unknown_channel",
        f"No association of {', '.join(association_ids)} enables the channel {channel!r}.",
        f"لا تتيح أيّ من الجمعيات {'، '.join(association_ids)} القناة {channel!r}.",
    )


def invalid_username(username: str) -> Invalid:
    return Invalid(
        "invalid_username",
        f"The user name {username!r} is not valid: 2 to 64 lower-case letters, digits, "
        "dots, dashes or underscores, starting with a letter or digit.",
        f"اسم المستخدم {username!r} غير صالح: من 2 إلى 64 حرفًا لاتينيًا صغيرًا أو رقمًا "
        "أو نقطة أو شرطة، يبدأ بحرف أو رقم.",
    )


def invalid_client_id(client_id: str) -> Invalid:
    return Invalid(
        "invalid_client_id",
        f"The client id {client_id!r} is not valid: 2 to 64 lower-case letters, digits, "
        "dots, dashes or underscores.",
        f"معرّف العميل {client_id!r} غير صالح: من 2 إلى 64 حرفًا لاتينيًا صغيرًا أو رقمًا "
        "أو نقطة أو شرطة.",
    )


def invalid_display_name() -> Invalid:
    return Invalid(
        "invalid_display_name",
        f"A display name is needed, at most {DISPLAY_NAME_MAX_LENGTH} characters.",
        f"الاسم المعروض مطلوب، بحد أقصى {DISPLAY_NAME_MAX_LENGTH} حرفًا.",
    )


def invalid_actor() -> Invalid:
    return Invalid(
        "invalid_actor",
        f"Who records this must be named, in at most {ACTOR_MAX_LENGTH} characters.",
        f"يجب ذكر من يسجّل هذا، بحد أقصى {ACTOR_MAX_LENGTH} حرفًا.",
    )


def weak_password() -> Invalid:
    return Invalid(
        "weak_password",
        f"A password needs at least {PASSWORD_MIN_LENGTH} characters (at most "
        f"{PASSWORD_MAX_LENGTH}); a sentence of several words is easy to remember.",
        f"يجب ألا تقل كلمة المرور عن {PASSWORD_MIN_LENGTH} حرفًا (وألا تزيد على "
        f"{PASSWORD_MAX_LENGTH})؛ جملة من عدة كلمات سهلة التذكر.",
    )


def user_not_found(username: str) -> NotFound:
    return NotFound(
        "user_not_found",
        f"There is no user {username!r}.",
        f"لا يوجد مستخدم باسم {username!r}.",
    )


def user_exists(username: str) -> Refused:
    return Refused(
        "user_exists",
        f"A user {username!r} is already registered.",
        f"المستخدم {username!r} مسجّل من قبل.",
    )


def user_disabled(username: str) -> Refused:
    return Refused(
        "user_disabled",
        f"The user {username!r} is disabled.",
        f"المستخدم {username!r} معطّل.",
    )


def role_already_held(role: str, association_id: str) -> Refused:
    return Refused(
        "role_already_held",
        f"The user already holds the role {role} in {association_id}.",
        f"المستخدم يحمل الدور {role} في {association_id} من قبل.",
    )


def role_not_held(role: str, association_id: str) -> Refused:
    return Refused(
        "role_not_held",
        f"The user does not hold the role {role} in {association_id}.",
        f"المستخدم لا يحمل الدور {role} في {association_id}.",
    )


def client_not_found(client_id: str) -> NotFound:
    return NotFound(
        "client_not_found",
        f"There is no client {client_id!r}.",
        f"لا يوجد عميل بالمعرّف {client_id!r}.",
    )


def client_exists(client_id: str) -> Refused:
    return Refused(
        "client_exists",
        f"A client {client_id!r} is already registered.",
        f"العميل {client_id!r} مسجّل من قبل.",
    )


def client_needs_scope() -> Invalid:
    return Invalid(
        "client_needs_scope",
        "A machine client needs at least one association and one channel.",
        "يحتاج عميل الآلة إلى جمعية واحدة وقناة واحدة على الأقل.",
    )


def key_not_found(kid: str) -> NotFound:
    return NotFound(
        "key_not_found",
        f"There is no signing key {kid!r}.",
        f"لا يوجد مفتاح توقيع بالمعرّف {kid!r}.",
    )


def key_in_use(kid: str) -> Refused:
    return Refused(
        "key_in_use",
        f"The key {kid!r} is the one that signs now: rotate first, then retire it.",
        f"المفتاح {kid!r} هو الذي يوقّع الآن: أضف مفتاحًا جديدًا أولًا ثم أوقف هذا.",
    )


def key_already_retired(kid: str) -> Refused:
    return Refused(
        "key_already_retired",
        f"The key {kid!r} was already retired.",
        f"المفتاح {kid!r} موقوف من قبل.",
    )


# Checks ---------------------------------------------------------------------------


def check_role(role: str, association_id: str, associations: Collection[str]) -> None:
    """A role of the list, in an association of the policy packs."""
    if role not in ROLES:
        raise unknown_role(role)
    if association_id not in associations:
        raise unknown_association(association_id)


def check_actor(actor: str) -> str:
    actor = actor.strip()
    if not actor or len(actor) > ACTOR_MAX_LENGTH:
        raise invalid_actor()
    return actor


def normalise_username(username: str) -> str:
    value = username.strip().lower()
    if not USERNAME_PATTERN.fullmatch(value):
        raise invalid_username(username)
    return value


def check_display_name(name: str) -> str:
    value = " ".join(name.split())
    if not value or len(value) > DISPLAY_NAME_MAX_LENGTH:
        raise invalid_display_name()
    return value


# Hashing --------------------------------------------------------------------------


class SecretHasher:
    """Argon2id hashes of passwords and client secrets (pwdlib).

    The hash carries its own parameters and salt; `verify` is constant-time in
    the secret. A secret is checked against `DUMMY` when there is no account, so
    that an unknown name takes as long to refuse as a wrong password.
    """

    def __init__(self, hasher: Argon2Hasher | None = None):
        self._hash = PasswordHash((hasher or Argon2Hasher(),))
        self.dummy = self._hash.hash("not a password: only here to spend the same time")

    def hash(self, secret: str) -> str:
        return self._hash.hash(secret)

    def verify(self, secret: str, hashed: str) -> bool:
        try:
            return self._hash.verify(secret, hashed)
        except Exception:  # noqa: BLE001 — a malformed stored hash verifies nothing
            return False

    def spend_time(self, secret: str) -> None:
        self.verify(secret, self.dummy)


def check_password(password: str) -> str:
    if not (PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH):
        raise weak_password()
    return password


# Users ----------------------------------------------------------------------------


def user_id(username: str) -> UUID:
    return uuid5(_NAMESPACE, f"user:{username}")


def client_uuid(client_id: str) -> UUID:
    return uuid5(_NAMESPACE, f"client:{client_id}")


KEY_SET_ID = uuid5(_NAMESPACE, "signing-keys")


@dataclass(frozen=True)
class Grant:
    """One period in which a user held a role in an association (revoked_at None: still held)."""

    role: str
    association_id: str
    granted_by: str
    granted_at: datetime
    revoked_by: str | None = None
    revoked_at: datetime | None = None
    revoke_reason: str | None = None

    def covers(self, moment: datetime) -> bool:
        return self.granted_at <= moment and (self.revoked_at is None or moment < self.revoked_at)

    def as_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "association_id": self.association_id,
            "granted_by": self.granted_by,
            "granted_at": self.granted_at.isoformat(),
            "revoked_by": self.revoked_by,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "revoke_reason": self.revoke_reason,
        }


class User(Aggregate):
    """A staff member: their password hash, their roles per association, and when."""

    class Registered(Aggregate.Created):
        username: str
        display_name: str
        password_hash: str
        temporary_password: bool
        registered_by: str
        at: datetime

    class RoleGranted(Aggregate.Event):
        role: str
        association_id: str
        granted_by: str
        at: datetime

    class RoleRevoked(Aggregate.Event):
        role: str
        association_id: str
        revoked_by: str
        reason: str | None
        at: datetime

    class PasswordChanged(Aggregate.Event):
        password_hash: str
        # A one-time password an administrator set: it only lets its holder
        # choose their own; it signs in to nothing.
        temporary: bool
        changed_by: str
        at: datetime

    class Disabled(Aggregate.Event):
        disabled_by: str
        reason: str | None
        at: datetime

    @staticmethod
    def create_id(username: str, **_: Any) -> UUID:
        return user_id(username)

    @event(Registered)
    def __init__(
        self,
        *,
        username: str,
        display_name: str,
        password_hash: str,
        temporary_password: bool,
        registered_by: str,
        at: datetime,
    ) -> None:
        self.username = username
        self.display_name = display_name
        self.password_hash = password_hash
        self.temporary_password = temporary_password
        self.registered_by = registered_by
        self.registered_at = at
        self.grants: list[Grant] = []
        self.disabled_at: datetime | None = None
        self.disabled_by: str | None = None

    @classmethod
    def register(
        cls,
        *,
        username: str,
        display_name: str,
        password_hash: str,
        temporary_password: bool,
        registered_by: str,
        at: datetime,
    ) -> User:
        return cls(
            username=normalise_username(username),
            display_name=check_display_name(display_name),
            password_hash=password_hash,
            temporary_password=temporary_password,
            registered_by=check_actor(registered_by),
            at=at,
        )

    # Queries

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None

    def current_roles(self) -> dict[str, list[str]]:
        """The roles held now, per association (none once disabled): the roles claim."""
        roles: dict[str, list[str]] = {}
        if self.disabled:
            return roles
        for grant in self.grants:
            if grant.revoked_at is None:
                roles.setdefault(grant.association_id, []).append(grant.role)
        return {association: sorted(held) for association, held in sorted(roles.items())}

    def holds(self, role: str, association_id: str) -> bool:
        return role in self.current_roles().get(association_id, [])

    def held_at(self, role: str, association_id: str, moment: datetime) -> bool:
        """Whether the user held the role in the association at that moment.

        A disabled user holds nothing from the moment they were disabled.
        """
        if self.disabled_at is not None and moment >= self.disabled_at:
            return False
        return any(
            grant.role == role and grant.association_id == association_id and grant.covers(moment)
            for grant in self.grants
        )

    def _open_grant(self, role: str, association_id: str) -> int | None:
        for index, grant in enumerate(self.grants):
            if (
                grant.role == role
                and grant.association_id == association_id
                and grant.revoked_at is None
            ):
                return index
        return None

    # Commands

    def grant(
        self,
        *,
        role: str,
        association_id: str,
        associations: Collection[str],
        by: str,
        at: datetime,
    ) -> None:
        check_role(role, association_id, associations)
        if self.disabled:
            raise user_disabled(self.username)
        if self._open_grant(role, association_id) is not None:
            raise role_already_held(role, association_id)
        self._granted(role=role, association_id=association_id, granted_by=check_actor(by), at=at)

    @event(RoleGranted)
    def _granted(self, role: str, association_id: str, granted_by: str, at: datetime) -> None:
        self.grants.append(Grant(role, association_id, granted_by, at))

    def revoke(
        self,
        *,
        role: str,
        association_id: str,
        by: str,
        at: datetime,
        reason: str | None = None,
    ) -> None:
        # No check against the packs: a role in an association since removed
        # from them can still be revoked.
        if role not in ROLES:
            raise unknown_role(role)
        if self._open_grant(role, association_id) is None:
            raise role_not_held(role, association_id)
        self._revoked(
            role=role,
            association_id=association_id,
            revoked_by=check_actor(by),
            reason=(reason or "").strip()[:2000] or None,
            at=at,
        )

    @event(RoleRevoked)
    def _revoked(
        self, role: str, association_id: str, revoked_by: str, reason: str | None, at: datetime
    ) -> None:
        index = self._open_grant(role, association_id)
        assert index is not None
        grant = self.grants[index]
        self.grants[index] = Grant(
            grant.role,
            grant.association_id,
            grant.granted_by,
            grant.granted_at,
            revoked_by=revoked_by,
            revoked_at=at,
            revoke_reason=reason,
        )

    def change_password(
        self, *, password_hash: str, temporary: bool, by: str, at: datetime
    ) -> None:
        if self.disabled:
            raise user_disabled(self.username)
        self._password_changed(
            password_hash=password_hash, temporary=temporary, changed_by=check_actor(by), at=at
        )

    @event(PasswordChanged)
    def _password_changed(
        self, password_hash: str, temporary: bool, changed_by: str, at: datetime
    ) -> None:
        self.password_hash = password_hash
        self.temporary_password = temporary

    def disable(self, *, by: str, at: datetime, reason: str | None = None) -> None:
        if self.disabled:
            raise user_disabled(self.username)
        self._disabled(
            disabled_by=check_actor(by), reason=(reason or "").strip()[:2000] or None, at=at
        )

    @event(Disabled)
    def _disabled(self, disabled_by: str, reason: str | None, at: datetime) -> None:
        self.disabled_at = at
        self.disabled_by = disabled_by

    def summary(self) -> dict[str, Any]:
        """What an administrator sees of a user: never the password hash."""
        return {
            "user_id": str(self.id),
            "username": self.username,
            "display_name": self.display_name,
            "registered_at": self.registered_at.isoformat(),
            "registered_by": self.registered_by,
            "disabled": self.disabled,
            "disabled_at": self.disabled_at.isoformat() if self.disabled_at else None,
            "must_change_password": self.temporary_password,
            "roles": self.current_roles(),
        }


# Machine clients --------------------------------------------------------------------


def check_client_scope(
    associations: Sequence[str],
    channels: Sequence[str],
    enabled_channels: Mapping[str, Collection[str]],
) -> tuple[list[str], list[str]]:
    """The client's associations (each in the packs) and channels (each enabled by one of them).

    `enabled_channels` maps every association of the packs to the channels it enables.
    """
    chosen = sorted(set(associations))
    wanted = sorted(set(channels))
    if not chosen or not wanted:
        raise client_needs_scope()
    for association_id in chosen:
        if association_id not in enabled_channels:
            raise unknown_association(association_id)
    for channel in wanted:
        if not any(channel in enabled_channels[a] for a in chosen):
            raise unknown_channel(channel, chosen)
    return chosen, wanted


class Client(Aggregate):
    """A machine client (a channel adapter), limited to its associations and channels."""

    class Registered(Aggregate.Created):
        client_id: str
        name: str
        secret_hash: str
        associations: list[str]
        channels: list[str]
        registered_by: str
        at: datetime

    class SecretChanged(Aggregate.Event):
        secret_hash: str
        changed_by: str
        at: datetime

    class Disabled(Aggregate.Event):
        disabled_by: str
        reason: str | None
        at: datetime

    @staticmethod
    def create_id(client_id: str, **_: Any) -> UUID:
        return client_uuid(client_id)

    @event(Registered)
    def __init__(
        self,
        *,
        client_id: str,
        name: str,
        secret_hash: str,
        associations: list[str],
        channels: list[str],
        registered_by: str,
        at: datetime,
    ) -> None:
        self.client_id = client_id
        self.name = name
        self.secret_hash = secret_hash
        self.associations = list(associations)
        self.channels = list(channels)
        self.registered_by = registered_by
        self.registered_at = at
        self.disabled_at: datetime | None = None

    @classmethod
    def register(
        cls,
        *,
        client_id: str,
        name: str,
        secret_hash: str,
        associations: Sequence[str],
        channels: Sequence[str],
        enabled_channels: Mapping[str, Collection[str]],
        registered_by: str,
        at: datetime,
    ) -> Client:
        value = client_id.strip().lower()
        if not CLIENT_ID_PATTERN.fullmatch(value):
            raise invalid_client_id(client_id)
        chosen, wanted = check_client_scope(associations, channels, enabled_channels)
        return cls(
            client_id=value,
            name=check_display_name(name),
            secret_hash=secret_hash,
            associations=chosen,
            channels=wanted,
            registered_by=check_actor(registered_by),
            at=at,
        )

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None

    def roles_claim(self, enabled_channels: Mapping[str, Collection[str]]) -> dict[str, list[str]]:
        """Per association, the channels it may submit on: those it was registered for
        that the association enables now."""
        if self.disabled:
            return {}
        claim: dict[str, list[str]] = {}
        for association_id in self.associations:
            enabled = enabled_channels.get(association_id, ())
            allowed = [CHANNEL_ROLE_PREFIX + c for c in self.channels if c in enabled]
            if allowed:
                claim[association_id] = allowed
        return claim

    def change_secret(self, *, secret_hash: str, by: str, at: datetime) -> None:
        self._secret_changed(secret_hash=secret_hash, changed_by=check_actor(by), at=at)

    @event(SecretChanged)
    def _secret_changed(self, secret_hash: str, changed_by: str, at: datetime) -> None:
        self.secret_hash = secret_hash

    def disable(self, *, by: str, at: datetime, reason: str | None = None) -> None:
        if self.disabled:
            raise Refused(
                "client_disabled",
                f"The client {self.client_id!r} is disabled.",
                f"العميل {self.client_id!r} معطّل.",
            )
        self._disabled(
            disabled_by=check_actor(by), reason=(reason or "").strip()[:2000] or None, at=at
        )

    @event(Disabled)
    def _disabled(self, disabled_by: str, reason: str | None, at: datetime) -> None:
        self.disabled_at = at

    def summary(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "name": self.name,
            "associations": list(self.associations),
            "channels": list(self.channels),
            "registered_at": self.registered_at.isoformat(),
            "disabled": self.disabled,
        }


# Signing keys -------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    """A signing key as the store knows it: its id, algorithm and public JWK only."""

    kid: str
    algorithm: str
    public_jwk: dict[str, Any]
    added_at: datetime
    retired_at: datetime | None = None


class KeySet(Aggregate):
    """The issuer's signing keys: the newest unretired one signs, every unretired one verifies.

    Rotation adds a key, which signs from then on; the previous key stays in
    the JWKS, so tokens it signed still verify, until it is retired.
    """

    class Opened(Aggregate.Created):
        at: datetime

    class KeyAdded(Aggregate.Event):
        kid: str
        algorithm: str
        public_jwk: dict[str, Any]
        added_by: str
        at: datetime

    class KeyRetired(Aggregate.Event):
        kid: str
        retired_by: str
        at: datetime

    @staticmethod
    def create_id(**_: Any) -> UUID:
        return KEY_SET_ID

    @event(Opened)
    def __init__(self, *, at: datetime) -> None:
        self.keys: list[SigningKey] = []

    def add(
        self, *, kid: str, algorithm: str, public_jwk: Mapping[str, Any], by: str, at: datetime
    ) -> None:
        if "d" in public_jwk or "p" in public_jwk:
            # A private JWK must never become an event.
            raise ValueError("the key set records public keys only")
        self._added(
            kid=kid,
            algorithm=algorithm,
            public_jwk=dict(public_jwk),
            added_by=check_actor(by),
            at=at,
        )

    @event(KeyAdded)
    def _added(
        self, kid: str, algorithm: str, public_jwk: dict[str, Any], added_by: str, at: datetime
    ) -> None:
        self.keys.append(SigningKey(kid, algorithm, dict(public_jwk), at))

    def retire(self, *, kid: str, by: str, at: datetime) -> None:
        key = self.find(kid)
        if key is None:
            raise key_not_found(kid)
        if key.retired_at is not None:
            raise key_already_retired(kid)
        active = self.active
        if active is not None and active.kid == kid:
            raise key_in_use(kid)
        self._retired(kid=kid, retired_by=check_actor(by), at=at)

    @event(KeyRetired)
    def _retired(self, kid: str, retired_by: str, at: datetime) -> None:
        self.keys = [
            SigningKey(k.kid, k.algorithm, k.public_jwk, k.added_at, retired_at=at)
            if k.kid == kid
            else k
            for k in self.keys
        ]

    def find(self, kid: str) -> SigningKey | None:
        return next((key for key in self.keys if key.kid == kid), None)

    @property
    def active(self) -> SigningKey | None:
        """The key that signs: the newest one not retired."""
        live = [key for key in self.keys if key.retired_at is None]
        return live[-1] if live else None

    def published(self) -> list[SigningKey]:
        """Every key not retired: the JWKS."""
        return [key for key in self.keys if key.retired_at is None]
