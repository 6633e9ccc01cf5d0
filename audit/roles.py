"""Roles are history: who held which role in which association, and when.

The identity service (`services/identity/`) records every user's registration,
each role granted or revoked (by whom, at which moment) and their disabling,
and every machine client's registration (its associations and channels) and
disabling. The audit replays that store, read-only and generically like the
others (audit.replay), into a `RoleHistory` that answers "did this person
hold role R in association A at moment T?" without asking the identity
service, whose current state says only who holds what now.

The recorded actor of an event names the principal's subject, which for the
identity service's tokens is the user's (or the client's) id in its store;
a user is also found by their user name (a committee seat names its member
so). A subject the store does not know (a token of another trusted issuer)
has no history here: `held` answers None, not False.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from audit.replay import StoredRecord, StoreReader
from audit.settings import AuditSettings
from audit.stores import IDENTITY, store_exists
from shared.roles import CHANNEL_ROLE_PREFIX

USER = "services.identity.domain:User"
CLIENT = "services.identity.domain:Client"


def _moment(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Period:
    """One period in which a role was held (`until` None: still held)."""

    role: str
    association_id: str
    since: datetime
    granted_by: str
    until: datetime | None = None
    revoked_by: str | None = None
    reason: str | None = None

    def covers(self, moment: datetime) -> bool:
        return self.since <= moment and (self.until is None or moment < self.until)

    def as_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "association_id": self.association_id,
            "since": self.since.isoformat(),
            "granted_by": self.granted_by,
            "until": self.until.isoformat() if self.until else None,
            "revoked_by": self.revoked_by,
            "reason": self.reason,
        }


@dataclass
class Holder:
    """A user or a machine client as the identity store's history tells it."""

    id: str
    kind: str  # "user" or "client"
    name: str  # the user name or the client id
    display_name: str
    registered_at: datetime
    periods: list[Period] = field(default_factory=list)
    disabled_at: datetime | None = None

    def held(self, role: str, association_id: str, moment: datetime) -> bool:
        """Whether the role was held there at that moment (nothing once disabled)."""
        if moment < self.registered_at:
            return False
        if self.disabled_at is not None and moment >= self.disabled_at:
            return False
        return any(
            p.role == role and p.association_id == association_id and p.covers(moment)
            for p in self.periods
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "display_name": self.display_name,
            "registered_at": self.registered_at.isoformat(),
            "disabled_at": self.disabled_at.isoformat() if self.disabled_at else None,
            "roles": [p.as_dict() for p in self.periods],
        }


class RoleHistory:
    """Every holder's periods, from the identity store's events in their order."""

    def __init__(self) -> None:
        self.holders: dict[str, Holder] = {}
        self._by_name: dict[str, str] = {}
        self.events = 0

    @classmethod
    def from_records(cls, records: Iterable[StoredRecord]) -> RoleHistory:
        history = cls()
        for record in records:
            history.apply(record)
        return history

    def apply(self, record: StoredRecord) -> None:
        aggregate, _, name = record.topic.rpartition(".")
        state = record.state
        self.events += 1
        if aggregate == USER and name == "Registered":
            self._add(
                Holder(
                    record.originator_id,
                    "user",
                    str(state.get("username")),
                    str(state.get("display_name") or state.get("username")),
                    _moment(state.get("at") or state["timestamp"]),
                )
            )
        elif aggregate == CLIENT and name == "Registered":
            holder = Holder(
                record.originator_id,
                "client",
                str(state.get("client_id")),
                str(state.get("name") or state.get("client_id")),
                _moment(state.get("at") or state["timestamp"]),
            )
            # A client holds, from its registration, one channel role per
            # channel in each association it was registered for.
            for association_id in state.get("associations") or []:
                for channel in state.get("channels") or []:
                    holder.periods.append(
                        Period(
                            CHANNEL_ROLE_PREFIX + str(channel),
                            str(association_id),
                            holder.registered_at,
                            str(state.get("registered_by")),
                        )
                    )
            self._add(holder)
        else:
            holder_or_none = self.holders.get(record.originator_id)
            if holder_or_none is None:
                return
            self._change(holder_or_none, name, state)

    def _add(self, holder: Holder) -> None:
        self.holders[holder.id] = holder
        self._by_name[holder.name] = holder.id

    @staticmethod
    def _change(holder: Holder, name: str, state: dict[str, Any]) -> None:
        at = _moment(state.get("at") or state["timestamp"])
        if name == "RoleGranted":
            holder.periods.append(
                Period(
                    str(state["role"]),
                    str(state["association_id"]),
                    at,
                    str(state.get("granted_by")),
                )
            )
        elif name == "RoleRevoked":
            for index, period in enumerate(holder.periods):
                if (
                    period.role == state["role"]
                    and period.association_id == state["association_id"]
                    and period.until is None
                ):
                    holder.periods[index] = Period(
                        period.role,
                        period.association_id,
                        period.since,
                        period.granted_by,
                        until=at,
                        revoked_by=str(state.get("revoked_by")),
                        reason=state.get("reason"),
                    )
                    break
        elif name == "Disabled" and holder.disabled_at is None:
            holder.disabled_at = at

    # --- what the audit asks --------------------------------------------------
    def holder(self, who: str) -> Holder | None:
        """A holder by id (a token's subject) or by user name / client id."""
        found = self.holders.get(who)
        if found is None and who in self._by_name:
            found = self.holders[self._by_name[who]]
        return found

    def held(self, who: str, role: str, association_id: str, moment: datetime) -> bool | None:
        """Whether `who` held `role` in `association_id` at `moment`; None when the
        identity store does not know `who`."""
        holder = self.holder(who)
        if holder is None:
            return None
        return holder.held(role, association_id, moment)

    def __iter__(self) -> Iterator[Holder]:
        return iter(self.holders.values())


def identity_store_readable(settings: AuditSettings) -> bool:
    return store_exists(IDENTITY, settings)


def load_role_history(settings: AuditSettings) -> RoleHistory | None:
    """The role history replayed from the identity store; None when it cannot be read
    (the checks that need it are then named as not run)."""
    if not identity_store_readable(settings):
        return None
    reader = StoreReader(IDENTITY, settings)
    try:
        return RoleHistory.from_records(reader.records())
    finally:
        reader.close()


def stores_read(services: Iterable[str], roles: RoleHistory | None) -> list[str]:
    """The stores a compliance run read: the services' and, when replayed, identity's."""
    return [*services, *([IDENTITY] if roles is not None else [])]
