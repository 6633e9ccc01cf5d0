"""The contract as msgspec structs, for the readers that decode a whole history.

`decode_event_fast` reads an event about three times faster than `decode_event`
(pydantic; docs/performance.md): the audit's passes over a million events that
read the events' fields by name decode with it. The structs
are not a second contract: they are built here, at import, from the pydantic
models of shared/events.py (their fields, types, constraints, defaults and
validators), so a change to a model changes its struct. Whatever a struct
refuses is read again by pydantic, so a refusal's message is pydantic's, and a
message pydantic accepts in its lax mode (a number for a date, "true" for a
bool, a Hijri day) is still accepted, as pydantic reads it. A unit test
(tests/unit/test_event_structs.py) holds that the two accept and refuse the same
messages and read the same values.

How the pydantic annotations become msgspec types, and where msgspec alone would
read differently:

* string and number constraints become `msgspec.Meta`; a pattern's closing `$`
  becomes `\\Z` (Python's `$` also matches before a final newline, pydantic's
  Rust regex does not);
* an aware datetime is msgspec's (RFC 3339 with an offset); msgspec rounds a
  seventh digit of a second's fraction where pydantic cuts it, so a message with
  seven digits after a dot anywhere is read by pydantic; so is a message that is
  not UTF-8 (msgspec skips a field no struct names without reading its text,
  pydantic refuses the whole message);
* a union msgspec cannot tell apart by the JSON type (`Sealed | Applicant`,
  `Sealed | dict`) is decoded as plain JSON and read member by member: the one member that
  accepts it, or the one struct among several (pydantic prefers a model to a
  dict); when two structs accept, pydantic decides (it counts the fields set);
* an `AfterValidator`, and a model's `field_validator` in "after" mode, run on
  the decoded value (`__post_init__`); a `BeforeValidator` is left to pydantic
  for what msgspec's type refuses (the only one, `Day`'s, reads a marked Hijri
  day and passes an ISO date through unchanged);
* any other shape raises at import: the test suite fails before a reader could
  read differently.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Literal, Union
from uuid import UUID

import annotated_types
import msgspec
from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from shared.events import EVENT_CLASSES, Contract, IntegrationEvent, decode_event

# An aware datetime, as msgspec reads RFC 3339. msgspec rounds a seventh digit of
# fraction where pydantic cuts it: a message with seven digits after a dot anywhere
# is read by pydantic (`_SEVEN_DIGITS`, in `decode_event_fast`).
_AWARE = Annotated[datetime, msgspec.Meta(tz=True)]
_SEVEN_DIGITS = re.compile(rb"\.[0-9]{7}")
_SEVEN_DIGITS_TEXT = re.compile(r"\.[0-9]{7}")


class _Refused(ValueError):
    """A struct cannot read the value the way pydantic would: pydantic reads it."""


# A field's decoded value is finished by these, in order (a datetime parsed, a
# validator run); each raises ValueError to refuse.
Finish = Callable[[Any], Any]


class _Field:
    """One model field as msgspec decodes it, and what finishes its value."""

    def __init__(self, decoded: Any, finish: list[Finish]) -> None:
        self.decoded = decoded
        self.finish = finish


def _constraints(metadata: list[Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for item in metadata:
        if isinstance(item, annotated_types.MinLen):
            meta["min_length"] = item.min_length
        elif isinstance(item, annotated_types.MaxLen):
            meta["max_length"] = item.max_length
        elif isinstance(item, annotated_types.Ge):
            meta["ge"] = item.ge
        elif isinstance(item, annotated_types.Le):
            meta["le"] = item.le
        elif isinstance(item, annotated_types.Gt):
            meta["gt"] = item.gt
        elif isinstance(item, annotated_types.Lt):
            meta["lt"] = item.lt
        elif getattr(item, "pattern", None) is not None:
            pattern = item.pattern
            if pattern.endswith("$") and not pattern.endswith("\\$"):
                pattern = pattern[:-1] + "\\Z"
            meta["pattern"] = pattern
        elif type(item).__name__ == "_PydanticGeneralMetadata" and not vars(item):
            continue
        else:
            raise NotImplementedError(f"no msgspec form for the constraint {item!r}")
    return meta


def _unwrap(annotation: Any) -> tuple[Any, list[Any], list[Finish]]:
    """An annotation without its Annotated layers: the type, its constraints, its
    after-validators."""
    constraints: list[Any] = []
    after: list[Finish] = []
    while typing.get_origin(annotation) is Annotated:
        annotation, *extras = typing.get_args(annotation)
        for extra in extras:
            if isinstance(extra, FieldInfo):
                constraints.extend(extra.metadata)
            elif isinstance(extra, AfterValidator):
                after.append(extra.func)  # type: ignore[arg-type]
            elif isinstance(extra, BeforeValidator):
                continue  # pydantic's for what msgspec refuses (the module's docstring)
            else:
                constraints.append(extra)
    return annotation, constraints, after


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (Union, types.UnionType)


def _struct_like(annotation: Any) -> bool:
    base = _unwrap(annotation)[0]
    return (isinstance(base, type) and issubclass(base, BaseModel)) or typing.get_origin(
        base
    ) is dict


def _field(annotation: Any, metadata: list[Any]) -> _Field:
    """A model field's annotation (its FieldInfo's metadata beside) as msgspec reads it."""
    base, constraints, after = _unwrap(annotation)
    constraints = [*metadata, *constraints]
    if constraints and _is_union(base) and type(None) in typing.get_args(base):
        # `str | None = Field(max_length=…)`: pydantic constrains the value, not the null.
        (value,) = [m for m in typing.get_args(base) if m is not type(None)]
        inner = _field(Annotated[value, *constraints], [])
        return _Field(inner.decoded | None, [_optional(s) for s in inner.finish] + after)
    if _is_union(base) and sum(_struct_like(m) for m in typing.get_args(base)) > 1:
        if constraints:
            raise NotImplementedError(f"constraints on a union: {annotation!r}")
        return _Field(Any, [_union_reader(typing.get_args(base)), *after])
    return _Field(_with(_plain_type(base), constraints), after)


def _optional(finish: Finish) -> Finish:
    return lambda value: None if value is None else finish(value)


def _with(decoded: Any, constraints: list[Any]) -> Any:
    meta = _constraints(constraints)
    return Annotated[decoded, msgspec.Meta(**meta)] if meta else decoded


def _plain_type(annotation: Any) -> Any:
    """A type msgspec reads as pydantic does, with nothing to finish."""
    base, constraints, after = _unwrap(annotation)
    if after:
        raise NotImplementedError(f"a validator inside a type: {annotation!r}")
    origin = typing.get_origin(base)
    if base is AwareDatetime:
        return _with(_AWARE, constraints)
    if origin is Literal or base in (str, int, bool, type(None), UUID, date, Any):
        return _with(base, constraints)
    if isinstance(base, type) and issubclass(base, Contract):
        return struct_of(base)
    if origin is list:
        (item,) = typing.get_args(base)
        return _with(list[_plain_type(item)], constraints)  # type: ignore[misc]
    if origin is dict:
        key, value = typing.get_args(base)
        return _with(dict[_plain_type(key), _plain_type(value)], constraints)  # type: ignore[misc]
    if _is_union(base):
        members = tuple(_plain_type(m) for m in typing.get_args(base))
        return _with(Union[members], constraints)  # noqa: UP007 — built at run time
    raise NotImplementedError(f"no msgspec form for {annotation!r}")


def _union_reader(members: tuple[Any, ...]) -> Finish:
    """Reads a value (decoded as plain JSON) as the one member of the union that
    takes it (a struct before a dict, as pydantic prefers a model); refuses when two
    structs do. A member is not tried on a value of another JSON kind, nor a struct
    on an object that lacks one of its required fields: it would refuse it."""
    readers = [_member_reader(m) for m in members]

    def read(value: Any) -> Any:
        taken: list[tuple[bool, Any]] = []
        kind = type(value)
        for kinds, needs, is_model, reader in readers:
            if kind not in kinds or (needs is not None and not needs <= value.keys()):
                continue
            try:
                taken.append((is_model, reader(value)))
            except (msgspec.ValidationError, ValueError, TypeError):
                continue
        if len(taken) == 1:
            return taken[0][1]
        models = [read for is_model, read in taken if is_model]
        if len(models) == 1:
            return models[0]
        raise _Refused("none of the union's members, or several, take the value")

    return read


_ANY_JSON: frozenset[type] = frozenset({dict, list, str, int, float, bool, type(None)})


def _member_reader(
    annotation: Any,
) -> tuple[frozenset[type], frozenset[str] | None, bool, Callable[[Any], Any]]:
    """(the JSON kinds a member can take, the fields a struct member requires, whether
    it is a model, its reader)."""
    base = _unwrap(annotation)[0]
    field = _field(annotation, [])
    finish = field.finish
    convert = msgspec.convert
    if isinstance(base, type) and issubclass(base, BaseModel):
        struct = struct_of(base)
        needs = frozenset(n for n, f in base.model_fields.items() if f.is_required())
        return frozenset({dict}), needs, True, _finished(lambda v: convert(v, struct), finish)
    if field.decoded == dict[str, Any]:  # JSON's own: nothing to convert
        return frozenset({dict}), None, False, _finished(lambda v: v, finish)
    if base is type(None):
        return frozenset({type(None)}), None, False, _finished(lambda v: v, finish)
    # In a struct of one field: msgspec keeps a struct's type information, while a
    # bare `list[…]` or `Annotated[…]` would be worked out again at each call.
    box: Any = msgspec.defstruct("Member", [("value", field.decoded)])
    return _ANY_JSON, None, False, _finished(lambda v: convert({"value": v}, box).value, finish)


def _finished(read: Callable[[Any], Any], finish: list[Finish]) -> Callable[[Any], Any]:
    if not finish:
        return read

    def finished(value: Any) -> Any:
        value = read(value)
        for step in finish:
            value = step(value)
        return value

    return finished


_STRUCTS: dict[type[BaseModel], type[msgspec.Struct]] = {}


def struct_of(model: type[BaseModel], *, tag: str | None = None) -> type[msgspec.Struct]:
    """The msgspec struct of a contract model (built once, kept)."""
    if model in _STRUCTS:
        return _STRUCTS[model]
    if model.__pydantic_decorators__.model_validators:
        raise NotImplementedError(f"{model.__name__} has a model validator")
    fields: list[tuple[Any, ...]] = []
    finishing: dict[str, list[Finish]] = {}
    for name, info in model.model_fields.items():
        if name == "event_type" and tag is not None:
            continue  # the union's tag
        field = _field(info.annotation, list(info.metadata))
        steps = field.finish + _field_validators(model, name)
        if steps:
            finishing[name] = steps
        if info.default_factory is not None:
            factory: Any = info.default_factory  # the contract's take no argument
            fields.append((name, field.decoded, msgspec.field(default_factory=factory)))
        elif info.default is not PydanticUndefined:
            fields.append((name, field.decoded, info.default))
        else:
            fields.append((name, field.decoded))
    namespace: dict[str, Any] = {"__post_init__": _post_init(finishing)} if finishing else {}
    if tag is not None:
        namespace["event_type"] = tag  # read by name, as the model's field
    struct = msgspec.defstruct(
        f"{model.__name__}Struct",
        fields,
        kw_only=True,
        tag_field="event_type" if tag else None,
        tag=tag,
        namespace=namespace,
    )
    _STRUCTS[model] = struct
    return struct


def _field_validators(model: type[BaseModel], name: str) -> list[Finish]:
    found = []
    for decorator in model.__pydantic_decorators__.field_validators.values():
        if name in decorator.info.fields:
            if decorator.info.mode != "after":
                raise NotImplementedError(f"{model.__name__}: a {decorator.info.mode} validator")
            found.append(decorator.func)
    return found


def _post_init(finishing: dict[str, list[Finish]]) -> Callable[[Any], None]:
    """A struct's `__post_init__`: each field's value through its steps, in one
    function written out (a loop over the fields would cost more than the steps)."""
    names: dict[str, Any] = {}
    lines = ["def __post_init__(self):"]
    for index, (name, steps) in enumerate(finishing.items()):
        value = f"self.{name}"
        for step_index, step in enumerate(steps):
            names[f"f{index}_{step_index}"] = step
            value = f"f{index}_{step_index}({value})"
        lines.append(f"    self.{name} = {value}")
    exec("\n".join(lines), names)  # noqa: S102 — the code is the field names above
    post_init: Callable[[Any], None] = names["__post_init__"]
    return post_init


EVENT_STRUCTS: tuple[type[msgspec.Struct], ...] = tuple(
    struct_of(cls, tag=cls.__name__) for cls in EVENT_CLASSES
)
_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(
    Union[EVENT_STRUCTS]  # noqa: UP007 — built at run time
)


def decode_event_fast(data: bytes | str) -> IntegrationEvent | Any:
    """An event read by its struct (its fields as the pydantic model's, by name),
    or, when the struct refuses it, by `decode_event`: pydantic's event, or its
    ValidationError for anything that is not a valid event."""
    if isinstance(data, bytes):
        plain = (data.isascii() or _utf8(data)) and _SEVEN_DIGITS.search(data) is None
    else:
        plain = _SEVEN_DIGITS_TEXT.search(data) is None
    if plain:
        try:
            return _decoder.decode(data)
        except (msgspec.DecodeError, ValueError):  # ValueError: a str that is no UTF-8
            pass
    return decode_event(data)


def _utf8(data: bytes) -> bool:
    # msgspec skips a field no struct names without reading its text; pydantic
    # refuses the whole message when any of it is not UTF-8 (a lone surrogate).
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


__all__ = ["EVENT_STRUCTS", "decode_event_fast", "struct_of"]
