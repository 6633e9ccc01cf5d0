"""Personal values on the stream: sealed by the producer, opened by the consumer.

A producer's translator seals a personal value of a stored event under its subject's
key (`sealed_for_stream`); the audit translates stored events without a sealer, and
their values, sealed at rest already, pass as they are. A consumer opens a value at
its boundary (`opened_from_stream`): a sealed one with its keyring, one published
before encryption as it is.
"""

from __future__ import annotations

from typing import Any

from shared.personal.mapper import is_erased_value, shape_of
from shared.personal.sealing import ERASED, Sealer, erased_sealed, is_sealed


def sealed_for_stream(sealer: Sealer | None, key_id: str, value: Any) -> Any:
    """`value` sealed under `key_id` with its shape, as published; None, or a value
    already sealed, as it is."""
    if value is None or is_sealed(value):
        return value
    shape = shape_of(value)
    if is_erased_value(value):
        # Erased before it was published: nothing of it is left to seal.
        return erased_sealed(key_id, shape)
    if sealer is None:
        raise RuntimeError("a personal value is published sealed: the translator needs a sealer")
    return {**sealer.seal(key_id, value), "shape": shape}


def opened_from_stream(value: Any, sealer: Sealer | None) -> Any:
    """The plaintext of a value read from the stream, ERASED once its subject's key
    is gone; a value published plain (before encryption) as it is."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    if not is_sealed(value):
        return value
    if sealer is None:
        raise LookupError("a sealed value reached a service without the keyring")
    return sealer.open(value)


__all__ = ["ERASED", "opened_from_stream", "sealed_for_stream"]
