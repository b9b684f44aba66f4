"""Validating inputs against a form: a self-service trigger's ``userInputs``, or the
rendered form of an ``INPUT`` node (a responder's answer).

Shared by the bridge (HTTP 422) and the engine (a ``RunTriggered`` produced straight
to Kafka gets the same checks). Messages name the field and say what was wrong:
``inputs.environment: must be one of staging, production (got 'prod')``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from switchyard.schemas.errors import InputsInvalid, Problem
from switchyard.schemas.user_inputs import InputProperty, UserInputs
from switchyard.schemas.workflow import SelfServeTriggerConfig

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TYPE_NAMES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def validate_inputs(
    form: SelfServeTriggerConfig | UserInputs, inputs: object, *, of: str = "this trigger"
) -> dict[str, Any]:
    """Return the inputs to run with (defaults applied), or raise :class:`InputsInvalid`.

    ``form`` is a trigger (its ``userInputs``) or a form itself (an ``INPUT`` node's,
    ``of`` then names it in messages). Keys that are not inputs of the form are
    refused; ``null`` counts as not given.
    """
    if not isinstance(inputs, Mapping):
        raise InputsInvalid([("inputs", f"must be an object (got {type(inputs).__name__})")])
    if isinstance(form, SelfServeTriggerConfig):
        form = form.user_inputs
    problems: list[Problem] = [
        (f"inputs.{key}", f"is not an input of {of}{_known(form.properties)}")
        for key in inputs
        if key not in form.properties
    ]
    result: dict[str, Any] = {}
    for name, prop in form.properties.items():
        value = inputs.get(name)
        if value is None:
            if prop.has_default:
                result[name] = prop.default
            elif name in form.required_names:
                problems.append((f"inputs.{name}", "is required"))
            continue
        problems += [(f"inputs.{name}{sub}", msg) for sub, msg in check_value(prop, value)]
        result[name] = value
    if problems:
        raise InputsInvalid(problems)
    return result


def _known(properties: Mapping[str, InputProperty]) -> str:
    return f" (inputs: {', '.join(properties)})" if properties else " (it takes no inputs)"


def check_value(prop: InputProperty, value: Any) -> list[Problem]:
    """Problems of one value, as ``(sub-path, message)`` (sub-path ``""`` or ``[i]``)."""
    if not _is_type(prop.type, value):
        return [("", f"must be a{'n' if prop.type[0] in 'ao' else ''} {prop.type} (got {value!r})")]
    if prop.enum is not None and value not in prop.enum:
        allowed = ", ".join(str(choice) for choice in prop.enum)
        return [("", f"must be one of {allowed} (got {value!r})")]
    if prop.type == "string":
        return [("", message) for message in _string_problems(prop, value)]
    if prop.type == "number":
        return [("", message) for message in _number_problems(prop, value)]
    if prop.type == "array":
        return _array_problems(prop, value)
    return []


def _is_type(kind: str, value: Any) -> bool:
    # bool is an int in Python; a toggle is not a number and 1 is not a toggle.
    if isinstance(value, bool):
        return kind == "boolean"
    return isinstance(value, _TYPE_NAMES[kind])


def _string_problems(prop: InputProperty, value: str) -> list[str]:
    problems = []
    if prop.min_length is not None and len(value) < prop.min_length:
        problems.append(f"must be at least {prop.min_length} characters (got {len(value)})")
    if prop.max_length is not None and len(value) > prop.max_length:
        problems.append(f"must be at most {prop.max_length} characters (got {len(value)})")
    if prop.pattern is not None and re.search(prop.pattern, value) is None:
        problems.append(f"must match {prop.pattern} (got {value!r})")
    format_problem = _format_problem(prop.format, value)
    if format_problem:
        problems.append(format_problem)
    return problems


def _format_problem(fmt: str | None, value: str) -> str | None:
    """Only the formats that are cheap to check; the others (entity, user...) pass."""
    if fmt == "email" and not _EMAIL.match(value):
        return f"must be an email address (got {value!r})"
    if fmt == "url":
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return f"must be an http(s) URL (got {value!r})"
    if fmt == "date-time":
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return f"must be an ISO-8601 date-time (got {value!r})"
    return None


def _number_problems(prop: InputProperty, value: float) -> list[str]:
    checks = (
        (prop.minimum, value < (prop.minimum or 0), "at least"),
        (prop.maximum, value > (prop.maximum or 0), "at most"),
        (prop.exclusive_minimum, value <= (prop.exclusive_minimum or 0), "more than"),
        (prop.exclusive_maximum, value >= (prop.exclusive_maximum or 0), "less than"),
    )
    return [
        f"must be {words} {_number(bound)} (got {value!r})"
        for bound, broken, words in checks
        if bound is not None and broken
    ]


def _number(bound: float) -> str:
    return str(int(bound)) if bound == int(bound) else str(bound)


def _array_problems(prop: InputProperty, value: list[Any]) -> list[Problem]:
    problems: list[Problem] = []
    if prop.min_items is not None and len(value) < prop.min_items:
        problems.append(("", f"must have at least {prop.min_items} items (got {len(value)})"))
    if prop.max_items is not None and len(value) > prop.max_items:
        problems.append(("", f"must have at most {prop.max_items} items (got {len(value)})"))
    if prop.unique_items and len({repr(item) for item in value}) != len(value):
        problems.append(("", "must not repeat items"))
    item_schema = _item_schema(prop)
    if item_schema is not None:
        for index, item in enumerate(value):
            problems += [(f"[{index}]{sub}", msg) for sub, msg in check_value(item_schema, item)]
    return problems


def _item_schema(prop: InputProperty) -> InputProperty | None:
    """``items`` as a property schema when it names one of our types, else None."""
    items = prop.items
    if items is None or items.get("type") not in _TYPE_NAMES:
        return None
    try:
        return InputProperty.model_validate(items)
    except ValueError:
        return None
