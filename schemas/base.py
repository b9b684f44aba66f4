"""Model bases: camelCase on the wire, snake_case in Python."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    """A model whose JSON uses camelCase (Port's spelling); Python code uses snake_case.

    Unknown keys are refused so that a misspelt field is an error naming it, not a
    setting silently ignored.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=True,
        serialize_by_alias=True,
        extra="forbid",
    )


class FrozenWireModel(WireModel):
    """A message on the wire: immutable once built."""

    model_config = ConfigDict(frozen=True)
