"""The roles a person holds in an association, and the kind of actor each makes.

A contract every service shares: the identity provider grants these, the
HTTP edge requires them, and the recorded actor of an event names the one it
acted in (brief §6).
"""

from __future__ import annotations

from typing import Literal

FRONT_DESK = "front_desk"
VERIFIER = "verifier"
RESEARCHER = "researcher"
COMMITTEE_MEMBER = "committee_member"
COMMITTEE_CHAIR = "committee_chair"
SURVEYS_OFFICER = "surveys_officer"
AUDITOR = "auditor"
ADMIN = "admin"
# The data protection officer: records erasure requests and legal holds, and
# exports what Khidma holds on one person (the PDPL's data subject rights).
PRIVACY_OFFICER = "privacy_officer"

ROLES: tuple[str, ...] = (
    FRONT_DESK,
    VERIFIER,
    RESEARCHER,
    COMMITTEE_MEMBER,
    COMMITTEE_CHAIR,
    SURVEYS_OFFICER,
    AUDITOR,
    ADMIN,
    PRIVACY_OFFICER,
)

# A machine client (a channel adapter) holds, in each association it serves,
# one `channel:<name>` role per channel it is registered for.
CHANNEL_ROLE_PREFIX = "channel:"

ActorKind = Literal["applicant", "adapter", "officer", "researcher", "committee", "system"]

_KIND_OF_ROLE: dict[str, ActorKind] = {
    RESEARCHER: "researcher",
    COMMITTEE_MEMBER: "committee",
    COMMITTEE_CHAIR: "committee",
}


def actor_kind(role: str) -> ActorKind:
    """The kind of actor a person acting in this role is, in the event contract."""
    if role.startswith(CHANNEL_ROLE_PREFIX):
        return "adapter"
    return _KIND_OF_ROLE.get(role, "officer")


def channel_role(channel: str) -> str:
    return CHANNEL_ROLE_PREFIX + channel
