"""validate_inputs: the checks shared by the bridge and the engine."""

from __future__ import annotations

from typing import Any

import pytest

from switchyard.schemas import InputsInvalid, SelfServeTriggerConfig, validate_inputs


def trigger(
    properties: dict[str, Any], required: list[str] | None = None
) -> SelfServeTriggerConfig:
    return SelfServeTriggerConfig.model_validate(
        {
            "type": "SELF_SERVE_TRIGGER",
            "userInputs": {"properties": properties, "required": required or []},
        }
    )


ENV = trigger(
    {
        "environment": {"type": "string", "enum": ["staging", "production"]},
        "replicas": {"type": "number", "minimum": 1, "maximum": 10, "default": 2},
        "dryRun": {"type": "boolean"},
    },
    required=["environment"],
)


def problems(config: SelfServeTriggerConfig, inputs: Any) -> list[tuple[str, str]]:
    with pytest.raises(InputsInvalid) as caught:
        validate_inputs(config, inputs)
    return caught.value.problems


def test_valid_inputs_come_back_with_defaults_applied() -> None:
    assert validate_inputs(ENV, {"environment": "staging"}) == {
        "environment": "staging",
        "replicas": 2,
    }
    given = {"environment": "production", "replicas": 3.5, "dryRun": False}
    assert validate_inputs(ENV, given) == given


def test_enum_message_lists_the_choices_and_the_value() -> None:
    with pytest.raises(InputsInvalid) as caught:
        validate_inputs(ENV, {"environment": "prod"})
    assert (
        str(caught.value) == "inputs.environment: must be one of staging, production (got 'prod')"
    )


def test_required_unknown_and_null() -> None:
    assert problems(ENV, {"environment": None, "color": "red"}) == [
        ("inputs.color", "is not an input of this trigger (inputs: environment, replicas, dryRun)"),
        ("inputs.environment", "is required"),
    ]
    assert problems(trigger({}), {"x": 1}) == [
        ("inputs.x", "is not an input of this trigger (it takes no inputs)")
    ]
    assert problems(ENV, ["not", "an", "object"]) == [("inputs", "must be an object (got list)")]


@pytest.mark.parametrize(
    ("schema", "value", "message"),
    [
        ({"type": "number"}, True, "must be a number (got True)"),
        ({"type": "number"}, "3", "must be a number (got '3')"),
        ({"type": "boolean"}, 1, "must be a boolean (got 1)"),
        ({"type": "object"}, [], "must be an object (got [])"),
        ({"type": "array"}, {}, "must be an array (got {})"),
        ({"type": "string"}, 5, "must be a string (got 5)"),
        ({"type": "number", "minimum": 1}, 0, "must be at least 1 (got 0)"),
        ({"type": "number", "maximum": 1.5}, 2, "must be at most 1.5 (got 2)"),
        ({"type": "number", "exclusiveMinimum": 0}, 0, "must be more than 0 (got 0)"),
        ({"type": "number", "exclusiveMaximum": 9}, 9, "must be less than 9 (got 9)"),
        ({"type": "string", "minLength": 3}, "ab", "must be at least 3 characters (got 2)"),
        ({"type": "string", "maxLength": 1}, "ab", "must be at most 1 characters (got 2)"),
        ({"type": "string", "pattern": "^[a-z]+$"}, "A1", "must match ^[a-z]+$ (got 'A1')"),
        ({"type": "string", "format": "email"}, "nope", "must be an email address (got 'nope')"),
        ({"type": "string", "format": "url"}, "ftp://x", "must be an http(s) URL (got 'ftp://x')"),
        (
            {"type": "string", "format": "date-time"},
            "tomorrow",
            "must be an ISO-8601 date-time (got 'tomorrow')",
        ),
        ({"type": "array", "minItems": 2}, [1], "must have at least 2 items (got 1)"),
        ({"type": "array", "maxItems": 1}, [1, 2], "must have at most 1 items (got 2)"),
        ({"type": "array", "uniqueItems": True}, [1, 1], "must not repeat items"),
    ],
)
def test_each_constraint_names_the_field(schema: dict[str, Any], value: Any, message: str) -> None:
    assert problems(trigger({"field": schema}), {"field": value}) == [("inputs.field", message)]


def test_array_items_are_checked_with_their_index() -> None:
    config = trigger({"tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}}})
    assert problems(config, {"tags": ["a", "c", 3]}) == [
        ("inputs.tags[1]", "must be one of a, b (got 'c')"),
        ("inputs.tags[2]", "must be a string (got 3)"),
    ]


@pytest.mark.parametrize(
    ("schema", "value"),
    [
        ({"type": "string", "format": "email"}, "a@b.io"),
        ({"type": "string", "format": "url"}, "https://example.com/x"),
        ({"type": "string", "format": "date-time"}, "2026-01-28T10:00:00+00:00"),
        ({"type": "string", "format": "entity", "blueprint": "service"}, "api"),
        ({"type": "object"}, {"a": {"b": 1}}),
        ({"type": "number"}, 7),
    ],
)
def test_accepted_values(schema: dict[str, Any], value: Any) -> None:
    assert validate_inputs(trigger({"field": schema}), {"field": value}) == {"field": value}


def test_jq_defaults_and_jq_required_are_not_evaluated() -> None:
    config = SelfServeTriggerConfig.model_validate(
        {
            "type": "SELF_SERVE_TRIGGER",
            "userInputs": {
                "properties": {"who": {"type": "string", "default": {"jqQuery": ".user"}}},
                "required": {"jqQuery": '["who"]'},
            },
        }
    )
    assert validate_inputs(config, {}) == {}
