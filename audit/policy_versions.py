"""Which version of each association's policy was in force when, and what changed.

The versions are the policy packs (shared.policy_loader); when a version was
adopted is what the services recorded in their stores (shared.policy_adoption):
a version is in force from the later of its taking effect and its adoption.
`python -m audit policy versions` and `python -m audit policy diff` print these.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.dates import both_calendars
from shared.policy import Policies, PolicyPack
from shared.policy_adoption import in_force_at

# The store whose adoptions say when a version first governed: intake receives the
# requests, so the version it had adopted is the one a new case was received under.
ADOPTING_SERVICE = "intake"
ADOPTIONS_AGGREGATE = "PolicyAdoptions"

# What each part of a pack is called, in both languages.
LABELS: dict[str, tuple[str, str]] = {
    "decision_window_days": ("مهلة قرار اللجنة (أيام)", "Committee's decision window (days)"),
    "committee.quorum": ("نصاب اللجنة", "Committee quorum"),
    "committee.members": ("أعضاء اللجنة", "Committee members"),
    "channels": ("قنوات الاستقبال", "Channels"),
    "services": ("الخدمات", "Services"),
    "required_fields": ("البيانات المطلوبة", "Required fields"),
    "required_documents": ("المستندات المطلوبة", "Required documents"),
    "eligibility": ("شروط الاستحقاق", "Eligibility rules"),
    "members_only": ("للأعضاء فقط", "Members only"),
    "retention_days": ("مدة حفظ البيانات الشخصية (أيام)", "Retention of personal data (days)"),
    "board_approval": ("موافقة المجلس", "Board approval"),
    "version.takes_effect": ("تاريخ النفاذ", "Takes effect"),
    "name": ("الاسم", "Name"),
    "clients": ("المستفيدون", "Clients"),
    "tools": ("الأدوات", "Tools"),
    "survey": ("نص الاستبيان", "Survey texts"),
    "source": ("المصدر", "Source"),
}
# The key that names an element of a list of a pack, so that an element is matched
# with itself across versions (not by its position).
_IDENTITY_KEYS = ("code", "id", "name", "field")


@dataclass(frozen=True)
class Change:
    """One difference between two versions: where, what it was, what it is."""

    path: str
    before: Any
    after: Any

    @property
    def kind(self) -> str:
        if self.before is None:
            return "added"
        if self.after is None:
            return "removed"
        return "changed"

    def label(self, lang: str) -> str:
        """Where, in words: "Services › seedlings › Required fields › water_source"."""
        index = 0 if lang == "ar" else 1
        parts = self.path.split(".")
        shown = []
        at = 0
        while at < len(parts):
            pair = ".".join(parts[at : at + 2])
            if at + 1 < len(parts) and pair in LABELS:
                shown.append(LABELS[pair][index])
                at += 2
                continue
            found = LABELS.get(parts[at])
            shown.append(found[index] if found else parts[at])
            at += 1
        return " › ".join(shown)

    def text(self, lang: str) -> str:
        label = self.label(lang)
        before, after = _shown(self.before), _shown(self.after)
        if lang == "ar":
            if self.kind == "added":
                return f"أُضيف — {label}: {after}"
            if self.kind == "removed":
                return f"حُذف — {label}: {before}"
            return f"تغيّر — {label}: {before} ← {after}"
        if self.kind == "added":
            return f"Added — {label}: {after}"
        if self.kind == "removed":
            return f"Removed — {label}: {before}"
        return f"Changed — {label}: {before} → {after}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "before": self.before,
            "after": self.after,
            "ar": self.text("ar"),
            "en": self.text("en"),
        }


def policy_diff(before: PolicyPack, after: PolicyPack) -> list[Change]:
    """What the later version changed, part by part (its number aside)."""
    old = before.model_dump(mode="json", exclude={"version": {"number"}})
    new = after.model_dump(mode="json", exclude={"version": {"number"}})
    return list(_diff(old, new, ""))


def _diff(before: Any, after: Any, path: str) -> Iterator[Change]:
    if before == after:
        return
    if isinstance(before, dict) and isinstance(after, dict):
        for key in _keys(before, after):
            yield from _diff(before.get(key), after.get(key), f"{path}.{key}" if path else key)
        return
    if isinstance(before, list) and isinstance(after, list) and _identified(before + after):
        old, new = _by_identity(before), _by_identity(after)
        for key in _keys(old, new):
            yield from _diff(old.get(key), new.get(key), f"{path}.{key}")
        return
    if isinstance(before, list) and isinstance(after, list) and _scalars(before + after):
        for item in after:
            if item not in before:
                yield Change(path, None, item)
        for item in before:
            if item not in after:
                yield Change(path, item, None)
        return
    yield Change(path, before, after)


def _keys(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return list(before) + [key for key in after if key not in before]


def _scalars(items: list[Any]) -> bool:
    return all(not isinstance(item, dict | list) for item in items)


def _identity(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    for key in _IDENTITY_KEYS:
        value = item.get(key)
        if isinstance(value, str):
            return value
    return None


def _identified(items: list[Any]) -> bool:
    return bool(items) and all(_identity(item) is not None for item in items)


def _by_identity(items: list[Any]) -> dict[str, Any]:
    return {str(_identity(item)): item for item in items}


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        if set(value) >= {"ar", "en"} and len(value) <= 2:
            return f"{value['ar']} / {value['en']}"
        return ", ".join(f"{key}={_shown(item)}" for key, item in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(_shown(item) for item in value) + "]"
    return str(value)


# When each version was adopted ------------------------------------------------------


def adoptions(records: Iterable[Any]) -> dict[str, dict[int, datetime]]:
    """association -> version -> when the service first adopted it, from a store's
    records (audit.replay.StoredRecord)."""
    found: dict[str, dict[int, datetime]] = {}
    originators: dict[str, str] = {}
    for record in records:
        if record.aggregate != ADOPTIONS_AGGREGATE:
            continue
        if record.name == "Started":
            originators[record.originator_id] = str(record.state["association_id"])
        elif record.name == "VersionAdopted":
            association = originators.get(record.originator_id)
            if association is None:
                continue
            adopted_at = record.state["adopted_at"]
            if not isinstance(adopted_at, datetime):
                adopted_at = datetime.fromisoformat(str(adopted_at))
            found.setdefault(association, {})[int(record.state["number"])] = adopted_at
    return found


def versions_in_force(
    policies: Policies, at: datetime, adopted: dict[str, dict[int, datetime]] | None
) -> list[dict[str, Any]]:
    """Each association's version in force at `at`: by the record of its adoptions
    when the store was read, else by the moments the versions take effect."""
    rows = []
    for association, history in policies.histories.items():
        if adopted is not None:
            pack = in_force_at(history, adopted.get(association, {}), at)
            when = adopted.get(association, {}).get(pack.number)
        else:
            pack, when = history.in_force(at), None
        approval = pack.board_approval
        rows.append(
            {
                "association_id": association,
                "version": pack.number,
                "versions": [version.number for version in history.versions],
                "takes_effect": _moment(pack.version.takes_effect),
                "adopted_at": _moment(when),
                "approval": {
                    "as_written": approval.date_as_written,
                    "hijri": approval.hijri,
                    "gregorian": approval.gregorian.isoformat() if approval.gregorian else None,
                    "meeting": approval.meeting or approval.session,
                }
                if approval
                else None,
                "decision_window_days": pack.decision_window_days,
                "quorum": pack.committee.quorum,
            }
        )
    return rows


def _moment(moment: datetime | None) -> dict[str, Any] | None:
    return both_calendars(moment) if moment is not None else None
