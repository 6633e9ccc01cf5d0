"""Which policy versions a service has adopted, and when: the record replay reads.

A service that judges requests by an association's policy records, in its own
store, each version the first time it loads it: its number, the moment it takes
effect, its board's approval and the digest of its whole content. A version is
in force from the later of the two moments, its taking effect and its adoption
(a version loaded late governs only what is received after it was loaded). A
version once adopted is not edited: a file whose content no longer has the
adopted digest stops the service, so the record stays the text that governed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from shared.policy import PolicyHistory, PolicyPack


class AdoptedVersionChanged(Exception):
    """A version's file no longer holds the content the service adopted."""

    def __init__(self, association_id: str, number: int, adopted: str, now: str):
        self.en = (
            f"{association_id}: version {number} of the policy was adopted with digest "
            f"{adopted[:12]}…; its file now reads {now[:12]}…. An adopted version is not "
            "edited: the board's change is a new version, with its approval and the moment "
            "it takes effect."
        )
        self.ar = (
            f"{association_id}: اعتُمد الإصدار {number} من السياسة ببصمة {adopted[:12]}…، "
            f"وملفه الآن ببصمة {now[:12]}…. لا يُعدَّل إصدار معتمد: تعديل المجلس إصدار "
            "جديد بموافقته وتاريخ نفاذه."
        )
        super().__init__(f"{self.en} / {self.ar}")


def adoptions_id(association_id: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"khidma:policy-adoptions:{association_id}")


class PolicyAdoptions(Aggregate):
    """One association's policy versions as this service adopted them."""

    @staticmethod
    def create_id(association_id: str) -> UUID:
        return adoptions_id(association_id)

    class Started(Aggregate.Created):
        association_id: str

    @event(Started)
    def __init__(self, association_id: str):
        self.association_id = association_id
        # version number (text) -> what was adopted
        self.versions: dict[str, dict[str, Any]] = {}

    def adopt(self, pack: PolicyPack, at: datetime) -> bool:
        """Records the version the first time it is seen; False when it already was."""
        adopted = self.versions.get(str(pack.number))
        digest = pack.digest()
        if adopted is not None:
            if adopted["digest"] != digest:
                raise AdoptedVersionChanged(
                    self.association_id, pack.number, adopted["digest"], digest
                )
            return False
        approval = pack.board_approval
        self.trigger_event(
            self.VersionAdopted,
            number=pack.number,
            takes_effect=pack.version.takes_effect,
            digest=digest,
            approval=approval.model_dump(mode="json") if approval else None,
            adopted_at=at,
        )
        return True

    class VersionAdopted(Aggregate.Event):
        number: int
        takes_effect: datetime | None
        digest: str
        approval: dict[str, Any] | None
        adopted_at: datetime

        def apply(self, aggregate: PolicyAdoptions) -> None:
            aggregate.versions[str(self.number)] = {
                "number": self.number,
                "takes_effect": self.takes_effect,
                "digest": self.digest,
                "approval": self.approval,
                "adopted_at": self.adopted_at,
            }


def in_force_at(history: PolicyHistory, adopted: dict[int, datetime], at: datetime) -> PolicyPack:
    """The version in force at `at` by the record: the latest that had taken effect
    and had been adopted by then (the first when none had)."""
    governing = history.versions[0]
    for pack in history.versions[1:]:
        adopted_at = adopted.get(pack.number)
        takes_effect = pack.version.takes_effect
        if adopted_at is None or adopted_at > at:
            continue
        if takes_effect is None or takes_effect <= at:
            governing = pack
    return governing
