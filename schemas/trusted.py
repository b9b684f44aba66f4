"""Models built from values their builder already trusts, without validation.

The engine makes a dozen wire models per event (run events, log lines, requests,
effects) from its own state: ids it derived, seq it counted, literals in its code,
instants it cut to milliseconds. Validating them again costs 1 to 2.5 µs each, and
pydantic's ``model_construct``, walking every field per call in Python, costs more
than that. :func:`trusted` does what ``model_construct`` does with the per-model
part worked out once.

Only for values that already are what validation would give: an instant cut to
milliseconds (:func:`~switchyard.schemas.timestamps.to_millis`), not a raw clock
reading; nested models as models. Values from outside (inbox events, API bodies) are
validated at the edge. A test builds every model the machine makes both ways and
compares them and their JSON byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel

ModelT = TypeVar("ModelT", bound=BaseModel)

# Defaults shared by every instance must be immutable: a list default would be one
# list for all of them (validation copies it).
_SHAREABLE = (str, int, float, bool, type(None), tuple, frozenset)
_set = object.__setattr__  # a frozen model refuses its own __setattr__


class _Fields(NamedTuple):
    names: tuple[str, ...]  # in definition order: the order the JSON is written in
    # Every field in that order, holding its default (None where there is none): a
    # merge ``{**layout, **values}`` keeps the layout's order and takes the values.
    layout: dict[str, Any]
    required: frozenset[str]
    factories: dict[str, Callable[[], Any]]


@cache
def _fields(model: type[BaseModel]) -> _Fields:
    if model.__private_attributes__ or model.__pydantic_post_init__:
        raise TypeError(f"{model.__name__}: has private attributes or a post-init, build it")
    layout: dict[str, Any] = {}
    required: set[str] = set()
    factories: dict[str, Callable[[], Any]] = {}
    for name, field in model.model_fields.items():
        layout[name] = None
        if field.default_factory is not None:
            factories[name] = field.default_factory  # type: ignore[assignment]
        elif field.is_required():
            required.add(name)
        elif isinstance(field.default, _SHAREABLE):
            layout[name] = field.default
        else:
            raise TypeError(f"{model.__name__}.{name}: a mutable default, pass a value")
    return _Fields(tuple(layout), layout, frozenset(required), factories)


def trusted(model: type[ModelT], **values: Any) -> ModelT:
    """A ``model`` holding ``values`` (by field name) as they are, defaults filled in."""
    fields = _fields(model)
    # The serializer writes the fields in the order they are held: validation's.
    data = values if tuple(values) == fields.names else _in_order(model, fields, values)
    instance = model.__new__(model)
    _set(instance, "__dict__", data)
    _set(instance, "__pydantic_fields_set__", set(values))
    _set(instance, "__pydantic_extra__", None)
    _set(instance, "__pydantic_private__", None)
    return instance


def _in_order(model: type[BaseModel], fields: _Fields, values: dict[str, Any]) -> dict[str, Any]:
    data = {**fields.layout, **values}
    if len(data) != len(fields.names):
        unknown = sorted(set(values) - set(fields.names))
        raise TypeError(f"{model.__name__}: no field {unknown[0]!r}")
    if not fields.required <= values.keys():
        missing = sorted(fields.required - values.keys())
        raise TypeError(f"{model.__name__}: {missing[0]} is required")
    for name, factory in fields.factories.items():
        if name not in values:
            data[name] = factory()
    return data
