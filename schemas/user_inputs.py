"""The form of a ``SELF_SERVE_TRIGGER``: ``userInputs`` and its property schema.

A JSON-schema-like subset (Port's). Presentation fields (``enumColors``, ``dataset``,
``sort``, ``steps``, ``titles``...) are kept as given; :mod:`switchyard.schemas.inputs`
enforces the ones that constrain values.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from switchyard.schemas.base import WireModel

InputType = Literal["string", "number", "boolean", "object", "array"]


class JqQuery(WireModel):
    """``{"jqQuery": "..."}``: a value computed by the form in Port's UI.

    The server does not evaluate these: a ``default`` given this way is not applied
    and a ``required`` given this way is not enforced.
    """

    jq_query: str


class InputProperty(WireModel):
    """One input of the form (the value of ``userInputs.properties[<name>]``)."""

    # Port's property schema carries many UI-only keys; keep the unknown ones
    # rather than refusing forms exported from Port.
    model_config = ConfigDict(extra="allow")

    type: InputType
    title: str | None = Field(default=None, max_length=140)
    description: str | None = Field(default=None, max_length=1000)
    format: str | None = None
    default: Any = None
    enum: list[Any] | None = Field(default=None, min_length=1)
    min_length: int | None = Field(default=None, ge=0)
    max_length: int | None = Field(default=None, ge=0)
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    exclusive_maximum: float | None = None
    items: dict[str, Any] | None = None
    min_items: int | None = Field(default=None, ge=0)
    max_items: int | None = Field(default=None, ge=0)
    unique_items: bool = False

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"is not a valid regular expression ({error})") from None
        return value

    @property
    def has_default(self) -> bool:
        """A literal default the server applies (``{jqQuery}`` defaults are not)."""
        return self.default is not None and not _is_jq_query(self.default)


def _is_jq_query(value: object) -> bool:
    return isinstance(value, dict) and set(value) == {"jqQuery"}


class UserInputs(WireModel):
    """``config.userInputs`` of a self-service trigger."""

    model_config = ConfigDict(extra="allow")

    properties: dict[str, InputProperty] = Field(default_factory=dict)
    required: list[str] | JqQuery = Field(default_factory=list)
    order: list[str] | None = None

    @model_validator(mode="after")
    def _required_names_exist(self) -> UserInputs:
        if isinstance(self.required, list):
            unknown = [name for name in self.required if name not in self.properties]
            if unknown:
                raise ValueError(f"required names unknown inputs: {', '.join(unknown)}")
        return self

    @property
    def required_names(self) -> list[str]:
        return self.required if isinstance(self.required, list) else []
