"""Identity's application: each method loads, calls one command, saves, returns plain values.

Nothing here is published: the identity service has no outbox translators, its
history stays in its own store (passwords and secrets only as hashes, and
never in a log line).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.utils import get_topic

from services.identity.domain import (
    KEY_SET_ID,
    Client,
    KeySet,
    SecretHasher,
    User,
    check_password,
    client_exists,
    client_not_found,
    client_uuid,
    key_not_found,
    normalise_username,
    user_exists,
    user_id,
    user_not_found,
)
from services.identity.keys import KeyFile, PrivateKey, generate
from services.identity.tokens import (
    IssuedToken,
    TokenPolicy,
    account_disabled,
    invalid_client,
    invalid_grant,
    password_change_required,
    sign,
)
from shared.clock import Clock
from shared.errors import Invalid, NotFound
from shared.policy import PolicyPack
from shared.roles import ADMIN
from shared.store import ServiceApplication

log = logging.getLogger(__name__)

ONE_TIME_PASSWORD_BYTES = 18  # 24 characters
CLIENT_SECRET_BYTES = 32


def same_password() -> Invalid:
    return Invalid(
        "same_password",
        "The new password must differ from the current one.",
        "يجب أن تختلف كلمة المرور الجديدة عن الحالية.",
    )


class IdentityApplication(ServiceApplication):
    name = "identity"

    def __init__(
        self,
        env: dict[str, str] | None = None,
        clock: Clock | None = None,
        packs: Mapping[str, PolicyPack] | None = None,
        *,
        key_file: KeyFile | Path,
        tokens: TokenPolicy,
        hasher: SecretHasher | None = None,
    ):
        super().__init__(env, clock=clock, packs=packs)
        self.key_file = key_file if isinstance(key_file, KeyFile) else KeyFile(key_file)
        self.tokens = tokens
        self.hasher = hasher or SecretHasher()

    # What the packs say ---------------------------------------------------------

    @property
    def associations(self) -> Collection[str]:
        return self.packs.keys()

    def enabled_channels(self) -> dict[str, list[str]]:
        return {association_id: list(pack.channels) for association_id, pack in self.packs.items()}

    # Users --------------------------------------------------------------------------

    def _user(self, username: str) -> User:
        name = normalise_username(username)
        try:
            user: User = self.repository.get(user_id(name))
        except AggregateNotFoundError:
            raise user_not_found(name) from None
        return user

    def _new_user(
        self, username: str, display_name: str, password: str | None, by: str
    ) -> tuple[User, str | None]:
        """A user not yet saved, and the one-time password made for them (None if given one)."""
        name = normalise_username(username)
        if user_id(name) in self.repository:
            raise user_exists(name)
        one_time = None
        if password is None:
            one_time = secrets.token_urlsafe(ONE_TIME_PASSWORD_BYTES)
        user = User.register(
            username=name,
            display_name=display_name,
            password_hash=self.hasher.hash(check_password(password or one_time or "")),
            temporary_password=password is None,
            registered_by=by,
            at=self.clock.now(),
        )
        return user, one_time

    def register_user(
        self,
        username: str,
        display_name: str,
        *,
        by: str,
        password: str | None = None,
        roles: Mapping[str, Sequence[str]] | None = None,
    ) -> dict[str, Any]:
        """Registers a user, with their roles if given ({association: [role, …]}).

        Without a password, the user gets a one-time password (returned, under
        `one_time_password`, this once): it only lets them choose their own.
        """

        def command() -> dict[str, Any]:
            user, one_time = self._new_user(username, display_name, password, by)
            for association_id, held in (roles or {}).items():
                for role in held:
                    user.grant(
                        role=role,
                        association_id=association_id,
                        associations=self.associations,
                        by=by,
                        at=self.clock.now(),
                    )
            self.save(user)
            log.info("user registered", extra={"user_id": str(user.id)})
            summary = user.summary()
            if one_time is not None:
                summary["one_time_password"] = one_time
            return summary

        return self.retrying(command, "the user's registration")

    def create_admin(
        self,
        username: str,
        display_name: str,
        *,
        by: str,
        associations: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """The first administrator: admin in every association of the packs (or those
        named), with a one-time password."""
        chosen = list(associations) if associations else sorted(self.associations)
        return self.register_user(username, display_name, by=by, roles={a: [ADMIN] for a in chosen})

    def grant(self, username: str, role: str, association_id: str, *, by: str) -> dict[str, Any]:
        def command() -> dict[str, Any]:
            user = self._user(username)
            user.grant(
                role=role,
                association_id=association_id,
                associations=self.associations,
                by=by,
                at=self.clock.now(),
            )
            self.save(user)
            return user.summary()

        return self.retrying(command, "the role's grant")

    def revoke(
        self,
        username: str,
        role: str,
        association_id: str,
        *,
        by: str,
        reason: str | None = None,
    ) -> dict[str, Any]:
        def command() -> dict[str, Any]:
            user = self._user(username)
            user.revoke(
                role=role, association_id=association_id, by=by, reason=reason, at=self.clock.now()
            )
            self.save(user)
            return user.summary()

        return self.retrying(command, "the role's revocation")

    def disable(self, username: str, *, by: str, reason: str | None = None) -> dict[str, Any]:
        def command() -> dict[str, Any]:
            user = self._user(username)
            user.disable(by=by, reason=reason, at=self.clock.now())
            self.save(user)
            return user.summary()

        return self.retrying(command, "the user's disabling")

    def reset_password(self, username: str, *, by: str) -> str:
        """A new one-time password for the user (returned this once)."""
        one_time = secrets.token_urlsafe(ONE_TIME_PASSWORD_BYTES)
        hashed = self.hasher.hash(one_time)

        def command() -> None:
            user = self._user(username)
            user.change_password(password_hash=hashed, temporary=True, by=by, at=self.clock.now())
            self.save(user)

        self.retrying(command, "the password's reset")
        return one_time

    def set_own_password(self, username: str, current_password: str, new_password: str) -> None:
        """The user chooses their password, proving the current (or one-time) one."""
        check_password(new_password)
        if new_password == current_password:
            raise same_password()
        hashed = self.hasher.hash(new_password)

        def command() -> None:
            user = self._checked_user(username, current_password)
            user.change_password(
                password_hash=hashed, temporary=False, by=user.username, at=self.clock.now()
            )
            self.save(user)

        self.retrying(command, "the password's change")

    def user(self, username: str) -> dict[str, Any]:
        return self._user(username).summary()

    def users(self) -> list[dict[str, Any]]:
        """Every user, in order of registration."""
        return [self._load_user(uid).summary() for uid in self._ids_of(User.Registered)]

    def _load_user(self, uid: Any) -> User:
        user: User = self.repository.get(uid)
        return user

    def _ids_of(self, created: type) -> list[Any]:
        ids: list[Any] = []
        position = 0
        topic = get_topic(created)
        while True:
            page = self.read_notifications(position, 500, topics=[topic])
            if not page:
                return ids
            ids.extend(notification.originator_id for notification in page)
            position = page[-1].id

    # Role history -------------------------------------------------------------------

    def held_role(self, username: str, role: str, association_id: str, at: datetime) -> bool:
        """Whether the user held the role in the association at that moment (by replay)."""
        return self._user(username).held_at(role, association_id, at)

    def role_history(self, username: str) -> list[dict[str, Any]]:
        return [grant.as_dict() for grant in self._user(username).grants]

    # Signing in ---------------------------------------------------------------------

    def _checked_user(self, username: str, password: str) -> User:
        """The user whose password this is; refused alike for an unknown name or a wrong password."""
        user: User | None
        try:
            user = self._user(username)
        except (Invalid, NotFound):
            user = None
        if user is None:
            self.hasher.spend_time(password)
            raise invalid_grant()
        if not self.hasher.verify(password, user.password_hash):
            raise invalid_grant()
        if user.disabled:
            raise account_disabled()
        return user

    def password_token(self, username: str, password: str) -> IssuedToken:
        """The password grant: a token with the user's roles as they stand now."""
        user = self._checked_user(username, password)
        if user.temporary_password:
            raise password_change_required()
        return sign(
            self.tokens,
            self.signing_key(),
            subject=str(user.id),
            name=user.display_name,
            kind="human",
            roles=user.current_roles(),
            now=self.clock.now(),
            extra={"preferred_username": user.username},
        )

    # Machine clients ------------------------------------------------------------------

    def _client(self, client_id: str) -> Client:
        try:
            client: Client = self.repository.get(client_uuid(client_id.strip().lower()))
        except AggregateNotFoundError:
            raise client_not_found(client_id) from None
        return client

    def register_client(
        self,
        client_id: str,
        name: str,
        *,
        associations: Sequence[str],
        channels: Sequence[str],
        by: str,
    ) -> dict[str, Any]:
        """Registers a machine client; its secret is returned (`client_secret`) this once."""
        if client_uuid(client_id.strip().lower()) in self.repository:
            raise client_exists(client_id)
        secret = secrets.token_urlsafe(CLIENT_SECRET_BYTES)
        client = Client.register(
            client_id=client_id,
            name=name,
            secret_hash=self.hasher.hash(secret),
            associations=associations,
            channels=channels,
            enabled_channels=self.enabled_channels(),
            registered_by=by,
            at=self.clock.now(),
        )
        self.save(client)
        return {**client.summary(), "client_secret": secret}

    def client(self, client_id: str) -> dict[str, Any]:
        return self._client(client_id).summary()

    def client_token(self, client_id: str, secret: str) -> IssuedToken:
        """The client credentials grant: the client's associations and channels."""
        try:
            client = self._client(client_id)
        except (Invalid, NotFound):  # unknown: refused as any wrong secret
            self.hasher.spend_time(secret)
            raise invalid_client() from None
        if not self.hasher.verify(secret, client.secret_hash) or client.disabled:
            raise invalid_client()
        return sign(
            self.tokens,
            self.signing_key(),
            subject=str(client.id),
            name=client.name,
            kind="machine",
            roles=client.roles_claim(self.enabled_channels()),
            now=self.clock.now(),
            extra={"client_id": client.client_id, "azp": client.client_id},
        )

    # Signing keys ---------------------------------------------------------------------

    def _key_set(self) -> KeySet | None:
        try:
            key_set: KeySet = self.repository.get(KEY_SET_ID)
        except AggregateNotFoundError:
            return None
        return key_set

    def rotate_keys(self, *, algorithm: str, by: str) -> str:
        """A new signing key: it signs from now on; the older ones still verify.

        The private key is written to the key file before the store records
        its public half, so every recorded key can sign.
        """
        key = generate(algorithm)
        self.key_file.store(key)

        def command() -> None:
            key_set = self._key_set() or KeySet(at=self.clock.now())
            key_set.add(
                kid=key.kid,
                algorithm=key.algorithm,
                public_jwk=key.public_jwk(),
                by=by,
                at=self.clock.now(),
            )
            self.save(key_set)

        self.retrying(command, "the new signing key")
        log.info("signing key added", extra={"kid": key.kid})
        return key.kid

    def retire_key(self, kid: str, *, by: str) -> None:
        """Takes a key out of the JWKS (its tokens stop verifying) and destroys its private half."""

        def command() -> None:
            key_set = self._key_set()
            if key_set is None:
                raise key_not_found(kid)
            key_set.retire(kid=kid, by=by, at=self.clock.now())
            self.save(key_set)

        self.retrying(command, "the key's retirement")
        self.key_file.destroy(kid)

    def ensure_signing_key(self, *, algorithm: str, by: str) -> str:
        """The active key's id, after checking its private half is at hand (a first key
        is made when there is none)."""
        self.key_file.check_permissions()
        key_set = self._key_set()
        active = key_set.active if key_set else None
        if active is None:
            return self.rotate_keys(algorithm=algorithm, by=by)
        self.key_file.get(active.kid)
        return active.kid

    def signing_key(self) -> PrivateKey:
        key_set = self._key_set()
        active = key_set.active if key_set else None
        if active is None:
            raise RuntimeError("no signing key: the service makes one at start-up")
        return self.key_file.get(active.kid)

    def keys(self) -> list[dict[str, Any]]:
        key_set = self._key_set()
        if key_set is None:
            return []
        active = key_set.active
        return [
            {
                "kid": key.kid,
                "algorithm": key.algorithm,
                "added_at": key.added_at.isoformat(),
                "retired_at": key.retired_at.isoformat() if key.retired_at else None,
                "signing": active is not None and key.kid == active.kid,
            }
            for key in key_set.keys
        ]

    def jwks(self) -> dict[str, Any]:
        """The public keys that verify this issuer's tokens (RFC 7517)."""
        key_set = self._key_set()
        published = key_set.published() if key_set else []
        return {"keys": [dict(key.public_jwk) for key in published]}
