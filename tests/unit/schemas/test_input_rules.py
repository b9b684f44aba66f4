"""The graph rules of INPUT nodes: edges leave by outlet, never by a fallback; each
outlet is a button; one edge per outlet; responders and the form are required."""

from __future__ import annotations

from typing import Any

import pytest

from switchyard.schemas import (
    InputConfig,
    InputsInvalid,
    WorkflowInvalid,
    parse_workflow,
    validate_inputs,
)
from switchyard.schemas.workflow import InputForm


def _input(**config: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "INPUT",
        "userInputs": {
            "buttons": [
                {"identifier": "approve", "label": "Approve"},
                {"identifier": "decline", "label": "Decline"},
            ]
        },
        "outlets": [{"identifier": "approve"}, {"identifier": "decline"}],
        "responders": {"users": ["alice@example.com"]},
    }
    return {"identifier": "ask", "config": {**base, **config}}


def _workflow(node: dict[str, Any], edges: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "identifier": "wf",
        "nodes": [
            {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER"}},
            node,
            {"identifier": "a", "config": {"type": "KAFKA"}},
            {"identifier": "b", "config": {"type": "KAFKA"}},
        ],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "ask"}, *edges],
    }


def _edge(target: str, **extra: Any) -> dict[str, Any]:
    return {"sourceIdentifier": "ask", "targetIdentifier": target, **extra}


def _problems(node: dict[str, Any], edges: list[dict[str, Any]]) -> str:
    with pytest.raises(WorkflowInvalid) as caught:
        parse_workflow(_workflow(node, edges))
    return str(caught.value)


def test_an_input_with_an_edge_per_outlet_is_accepted() -> None:
    edges = [
        _edge("a", sourceOutletIdentifier="approve"),
        _edge("b", sourceOutletIdentifier="decline"),
    ]
    workflow = parse_workflow(_workflow(_input(), edges))
    config = workflow.node("ask").config  # type: ignore[union-attr]
    assert isinstance(config, InputConfig)
    assert [o.num_of_responders for o in config.outlets] == [1, 1]
    assert config.outlets[0].evaluation_method == "button"


def test_the_legacy_options_spelling_is_read_as_outlets() -> None:
    node = _input()
    node["config"]["options"] = node["config"].pop("outlets")
    workflow = parse_workflow(_workflow(node, [_edge("a", sourceOutletIdentifier="approve")]))
    assert isinstance(workflow.node("ask").config, InputConfig)  # type: ignore[union-attr]


def test_an_edge_without_an_outlet_is_refused() -> None:
    message = _problems(_input(), [_edge("a")])
    assert "connections[1]: leaves INPUT 'ask': set sourceOutletIdentifier" in message
    assert "an INPUT has no fallback" in message


def test_a_fallback_edge_is_refused() -> None:
    message = _problems(_input(), [_edge("a", fallback=True)])
    assert "connections[1].fallback: leaves INPUT 'ask'" in message


def test_an_edge_names_an_existing_outlet() -> None:
    message = _problems(_input(), [_edge("a", sourceOutletIdentifier="maybe")])
    assert "connections[1].sourceOutletIdentifier: 'maybe' is not an outlet of 'ask'" in message


def test_one_edge_per_outlet() -> None:
    edges = [
        _edge("a", sourceOutletIdentifier="approve"),
        _edge("b", sourceOutletIdentifier="approve"),
    ]
    assert "outlet 'approve' of 'ask' already has connections[1]" in _problems(_input(), edges)


def test_an_outlet_must_be_a_button() -> None:
    node = _input(outlets=[{"identifier": "approve"}, {"identifier": "escalate"}])
    message = _problems(node, [])
    assert "nodes[1].config.outlets[1].identifier: 'escalate' names no button" in message


def test_buttons_and_outlets_are_unique() -> None:
    node = _input(
        userInputs={
            "buttons": [{"identifier": "ok", "label": "A"}, {"identifier": "ok", "label": "B"}]
        },
        outlets=[{"identifier": "ok"}, {"identifier": "ok"}],
    )
    message = _problems(node, [])
    assert (
        "nodes[1].config.userInputs.buttons[1].identifier: 'ok' is used by another button"
        in message
    )
    assert "nodes[1].config.outlets[1].identifier: 'ok' is used by another outlet" in message


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"responders": {"users": []}}, "nodes[1].config.responders"),
        ({"userInputs": {"buttons": []}}, "nodes[1].config.userInputs.buttons"),
        ({"outlets": [{"identifier": "approve", "numOfResponders": 0}]},
         "nodes[1].config.outlets[0].numOfResponders"),
        ({"responders": {"users": ["a@b.co"], "usersQuery": {"rules": [{"x": 1}]}}},
         "nodes[1].config.responders.usersQuery.rules"),
    ],
)  # fmt: skip
def test_schema_problems_name_the_field(change: dict[str, Any], where: str) -> None:
    assert where in _problems(_input(**change), [])


def test_answers_are_validated_against_the_form_as_trigger_inputs_are() -> None:
    form = InputForm.model_validate({
        "properties": {"reason": {"type": "string", "minLength": 2},
                       "urgent": {"type": "boolean", "default": False}},
        "required": ["reason"], "buttons": [{"identifier": "ok", "label": "OK"}],
    })  # fmt: skip
    assert validate_inputs(form, {"reason": "ok"}, of="this form") == {
        "reason": "ok",
        "urgent": False,
    }
    with pytest.raises(InputsInvalid) as caught:
        validate_inputs(form, {"reason": "x", "color": "red"}, of="this form")
    message = str(caught.value)
    assert "inputs.color: is not an input of this form (inputs: reason, urgent)" in message
    assert "inputs.reason:" in message
