"""The event-store mapper that keeps personal attributes sealed at rest.

An event class names its personal attributes (`personal_attributes`) and
carries the id of its subject's key (`personal_key`). Before the event is
written, each of those attributes is sealed under that key; when it is read
back, opened. The domain model keeps working on plain values and imports
nothing of this; the store, and its hash chain, hold only ciphertext. An
event recorded before encryption (no `personal_key`) is read as it was.

An erased subject's attributes read as empty values that say so
(`ErasedRecord`, `ErasedList`, `ErasedText`), so that an aggregate still
replays and a view still rebuilds; an attribute recorded after the erasure is
kept as erased.
"""

from __future__ import annotations

from typing import Any, ClassVar

from eventsourcing.persistence import Mapper, StoredEvent

from shared.personal.sealing import ERASED, Sealer, erased_sealed, is_sealed


class ErasedRecord(dict[str, Any]):
    """An erased mapping: empty; `is_erased_value` says it was erased, not empty."""


class ErasedList(list[Any]):
    """An erased list."""


class ErasedText(str):
    """An erased text."""

    __slots__ = ()


def erased_like(shape: str | None) -> Any:
    if shape == "object":
        return ErasedRecord()
    if shape == "array":
        return ErasedList()
    if shape == "string":
        return ErasedText("")
    return None


def is_erased_value(value: Any) -> bool:
    return value is ERASED or isinstance(value, ErasedRecord | ErasedList | ErasedText)


def shape_of(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, str):
        return "string"
    return "null" if value is None else "value"


class PersonalEvent:
    """Mixed into an event class that holds personal data (see the module's doc)."""

    personal_attributes: ClassVar[tuple[str, ...]] = ()


class PersonalDataMapper(Mapper[Any]):
    def __init__(self, base: Mapper[Any], sealer: Sealer):
        super().__init__(base.transcoder, base.compressor, base.cipher)
        self.sealer = sealer

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        names = getattr(type(domain_event), "personal_attributes", ())
        key_id = getattr(domain_event, "personal_key", None)
        if not names or not key_id:
            return super().to_stored_event(domain_event)
        state = dict(vars(domain_event))
        for name in names:
            if name in state and state[name] is not None and not is_sealed(state[name]):
                state[name] = self._sealed(key_id, state[name])
        sealed = object.__new__(type(domain_event))
        object.__setattr__(sealed, "__dict__", state)
        return super().to_stored_event(sealed)

    def _sealed(self, key_id: str, value: Any) -> dict[str, str]:
        """The value sealed under its subject's key. Recorded after the subject was
        erased (a copy from the stream, or staff's words written since), it is kept
        as erased: nothing of an erased person is written in plain."""
        shape = shape_of(value)
        if is_erased_value(value):
            return erased_sealed(key_id, shape)
        try:
            return {**self.sealer.seal(key_id, value), "shape": shape}
        except LookupError:  # the key was destroyed: the subject is erased
            return erased_sealed(key_id, shape)

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        domain_event = super().to_domain_event(stored_event)
        names = getattr(type(domain_event), "personal_attributes", ())
        state = vars(domain_event)
        for name in names:
            value = state.get(name)
            if isinstance(value, dict) and is_sealed(value):
                opened = self.sealer.open(value)
                state[name] = erased_like(value.get("shape")) if opened is ERASED else opened
        return domain_event
