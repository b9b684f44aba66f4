"""Parsing workflow definitions: fields, legacy spellings, unsupported types, graph rules."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from switchyard.schemas import (
    ConditionConfig,
    WebhookConfig,
    WorkflowInvalid,
    encode,
    parse_workflow,
)

TRIGGER: dict[str, Any] = {
    "identifier": "trigger",
    "config": {
        "type": "SELF_SERVE_TRIGGER",
        "permissions": {"roles": ["Member"]},
        "userInputs": {
            "properties": {"environment": {"type": "string", "enum": ["staging", "production"]}},
            "required": ["environment"],
        },
    },
}
CHECK = {
    "identifier": "check_env",
    "config": {
        "type": "CONDITION",
        "outlets": [
            {"identifier": "prod", "title": "Production", "expression": ".outputs.trigger.x"}
        ],
    },
}
DEPLOY = {
    "identifier": "deploy",
    "config": {"type": "WEBHOOK", "url": "https://example.com/{{ .outputs.trigger.x }}"},
    "variables": {"id": "{{ .result.response.data.id }}"},
}
NOTIFY = {"identifier": "notify", "config": {"type": "KAFKA", "payload": {"a": 1}}}
DISPATCH: dict[str, Any] = {
    "identifier": "dispatch",
    "config": {
        "type": "INTEGRATION_ACTION",
        "installationId": "github-ocean",
        "integrationProvider": "github-ocean",
        "integrationInvocationType": "dispatch_workflow",
        "integrationActionExecutionProperties": {"org": "o", "repo": "r", "workflow": "w.yml"},
        "onFailure": "continue",
    },
}


def workflow(nodes: list[dict[str, Any]], connections: list[dict[str, Any]]) -> dict[str, Any]:
    return {"identifier": "deploy-service", "nodes": nodes, "connections": connections}


def edge(source: str, target: str, **extra: Any) -> dict[str, Any]:
    return {"sourceIdentifier": source, "targetIdentifier": target, **extra}


VALID = workflow(
    [TRIGGER, CHECK, DEPLOY, NOTIFY, DISPATCH],
    [
        edge("trigger", "check_env"),
        edge("check_env", "deploy", sourceOutletIdentifier="prod"),
        edge("check_env", "dispatch", fallback=True),
        edge("deploy", "notify"),
        edge("dispatch", "notify"),
    ],
)


def problems_of(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(WorkflowInvalid) as caught:
        parse_workflow(data)
    return caught.value.problems


def test_a_valid_workflow_parses_with_defaults() -> None:
    parsed = parse_workflow(VALID)
    assert [n.identifier for n in parsed.nodes] == [
        "trigger",
        "check_env",
        "deploy",
        "notify",
        "dispatch",
    ]
    assert parsed.allow_anyone_to_view_runs is True
    webhook = parsed.nodes[2].config
    assert isinstance(webhook, WebhookConfig)
    assert (webhook.method, webhook.synchronized, webhook.on_failure) == ("POST", True, "terminate")
    assert parsed.nodes[4].config.on_failure == "continue"  # type: ignore[union-attr]


def test_emitted_json_uses_current_camel_case_spellings() -> None:
    data = orjson.loads(encode(parse_workflow(VALID), exclude_none=True))
    assert data["allowAnyoneToViewRuns"] is True
    assert data["connections"][1]["sourceOutletIdentifier"] == "prod"
    assert data["nodes"][4]["config"]["integrationActionExecutionProperties"]["repo"] == "r"
    assert parse_workflow(data) == parse_workflow(VALID)


def test_legacy_options_and_source_option_identifier_are_stored_as_outlets() -> None:
    legacy = copy.deepcopy(VALID)
    legacy["nodes"][1]["config"]["options"] = legacy["nodes"][1]["config"].pop("outlets")
    legacy["connections"][1]["sourceOptionIdentifier"] = legacy["connections"][1].pop(
        "sourceOutletIdentifier"
    )
    parsed = parse_workflow(legacy)
    condition = parsed.nodes[1].config
    assert isinstance(condition, ConditionConfig)
    assert condition.outlets[0].identifier == "prod"
    assert parsed.connections[1].source_outlet_identifier == "prod"
    emitted = orjson.loads(encode(parsed))
    assert "options" not in emitted["nodes"][1]["config"]
    assert "sourceOptionIdentifier" not in emitted["connections"][1]


def test_legacy_and_current_spellings_that_disagree_are_refused() -> None:
    data = copy.deepcopy(VALID)
    data["connections"][1]["sourceOptionIdentifier"] = "other"
    assert problems_of(data) == [
        (
            "connections[1]",
            "sourceOptionIdentifier (legacy) and sourceOutletIdentifier disagree;"
            " give only sourceOutletIdentifier",
        )
    ]


@pytest.mark.parametrize("kind", ["CURSOR_AGENT", "GITHUB", "TIMER_TRIGGER"])
def test_unsupported_node_types_are_refused_by_name(kind: str) -> None:
    data = workflow([TRIGGER, {"identifier": "x", "config": {"type": kind}}], [])
    [(path, message)] = problems_of(data)
    assert path == "nodes[1].config.type"
    assert message.startswith(f"{kind} is not supported by this server")


def test_missing_config_type_is_named() -> None:
    assert problems_of(workflow([TRIGGER, {"identifier": "x", "config": {}}], [])) == [
        ("nodes[1].config.type", "is required")
    ]


def test_field_problems_name_the_field_inside_the_config() -> None:
    bad = {"identifier": "hook", "config": {"type": "WEBHOOK", "url": 3, "method": "FETCH", "x": 1}}
    found = dict(problems_of(workflow([TRIGGER, bad], [])))
    assert set(found) == {"nodes[1].config.url", "nodes[1].config.method", "nodes[1].config.x"}
    assert "got 'FETCH'" in found["nodes[1].config.method"]
    assert found["nodes[1].config.x"] == "is not a known field"


def test_integration_action_needs_an_installation() -> None:
    node = copy.deepcopy(DISPATCH)
    del node["config"]["installationId"]
    [(path, message)] = problems_of(workflow([TRIGGER, node], []))
    assert (path, message.split(" unless")[0]) == ("nodes[1].config", "installationId is required")


def test_limits_on_links_nodes_and_identifiers() -> None:
    linked = {**NOTIFY, "links": ["a", "b", "c", "d"]}
    assert problems_of(workflow([TRIGGER, linked], []))[0][0] == "nodes[1].links"
    many = [TRIGGER] + [{**NOTIFY, "identifier": f"n{i}"} for i in range(100)]
    assert problems_of(workflow(many, [])) == [("nodes", "at most 100 nodes (got 101)")]
    assert problems_of({**VALID, "identifier": "bad id"})[0][0] == "identifier"


def test_required_inputs_must_be_inputs() -> None:
    trigger = copy.deepcopy(TRIGGER)
    trigger["config"]["userInputs"]["required"] = ["environment", "ghost"]
    assert problems_of(workflow([trigger], [])) == [
        ("nodes[0].config.userInputs", "required names unknown inputs: ghost")
    ]


def test_an_input_pattern_must_be_a_regular_expression() -> None:
    trigger = copy.deepcopy(TRIGGER)
    trigger["config"]["userInputs"]["properties"]["name"] = {"type": "string", "pattern": "("}
    [(path, message)] = problems_of(workflow([trigger], []))
    assert path == "nodes[0].config.userInputs.properties.name.pattern"
    assert message.startswith("is not a valid regular expression")


GRAPH_CASES = [
    pytest.param(
        workflow([NOTIFY], []),
        (
            "nodes",
            "at least one trigger node (SELF_SERVE_TRIGGER, EVENT_TRIGGER or SCHEDULE_TRIGGER)"
            " is required",
        ),
        id="no-trigger",
    ),
    pytest.param(
        workflow([TRIGGER, NOTIFY, NOTIFY], []),
        ("nodes[2].identifier", "'notify' is already used by nodes[1]"),
        id="duplicate-node",
    ),
    pytest.param(
        workflow([TRIGGER, NOTIFY], [edge("trigger", "x")]),
        ("connections[0].targetIdentifier", "'x' names no node"),
        id="unknown-target",
    ),
    pytest.param(
        workflow([TRIGGER, NOTIFY], [edge("ghost", "notify")]),
        ("connections[0].sourceIdentifier", "'ghost' names no node"),
        id="unknown-source",
    ),
    pytest.param(
        workflow([TRIGGER, NOTIFY], [edge("notify", "notify")]),
        ("connections[0]", "'notify' connects to itself"),
        id="self-loop",
    ),
    pytest.param(
        workflow([TRIGGER, NOTIFY], [edge("notify", "trigger")]),
        ("connections[0].targetIdentifier", "'trigger' is a trigger; a trigger cannot be a target"),
        id="trigger-target",
    ),
    pytest.param(
        workflow([TRIGGER, NOTIFY, DEPLOY], [edge("trigger", "notify"), edge("trigger", "deploy")]),
        (
            "nodes[0]",
            "'trigger' is not a CONDITION and has 2 outgoing connections (connections[0],"
            " connections[1]); at most one is allowed",
        ),
        id="fan-out",
    ),
    pytest.param(
        workflow([TRIGGER, NOTIFY], [edge("trigger", "notify", sourceOutletIdentifier="prod")]),
        (
            "connections[0].sourceOutletIdentifier",
            "'trigger' is not a CONDITION or INPUT; it has no outlets",
        ),
        id="outlet-on-plain-node",
    ),
    pytest.param(
        workflow([TRIGGER, NOTIFY], [edge("trigger", "notify", fallback=True)]),
        (
            "connections[0].fallback",
            "'trigger' is not a CONDITION; only a CONDITION has a fallback",
        ),
        id="fallback-on-plain-node",
    ),
    pytest.param(
        workflow([TRIGGER, CHECK, NOTIFY], [edge("check_env", "notify")]),
        (
            "connections[0]",
            "leaves CONDITION 'check_env': set sourceOutletIdentifier (one of prod) or"
            " fallback: true",
        ),
        id="condition-edge-without-outlet",
    ),
    pytest.param(
        workflow(
            [TRIGGER, CHECK, NOTIFY], [edge("check_env", "notify", sourceOutletIdentifier="qa")]
        ),
        (
            "connections[0].sourceOutletIdentifier",
            "'qa' is not an outlet of 'check_env' (outlets: prod)",
        ),
        id="unknown-outlet",
    ),
    pytest.param(
        workflow(
            [TRIGGER, CHECK, NOTIFY, DEPLOY],
            [
                edge("check_env", "notify", sourceOutletIdentifier="prod"),
                edge("check_env", "deploy", sourceOutletIdentifier="prod"),
            ],
        ),
        ("connections[1]", "outlet 'prod' of 'check_env' already has connections[0]"),
        id="two-edges-one-outlet",
    ),
    pytest.param(
        workflow(
            [TRIGGER, CHECK, NOTIFY, DEPLOY],
            [
                edge("check_env", "notify", fallback=True),
                edge("check_env", "deploy", fallback=True),
            ],
        ),
        ("connections[1]", "the fallback of 'check_env' already has connections[0]"),
        id="two-fallbacks",
    ),
    pytest.param(
        workflow(
            [TRIGGER, CHECK, NOTIFY],
            [edge("check_env", "notify", fallback=True, sourceOutletIdentifier="prod")],
        ),
        ("connections[0]", "sets both sourceOutletIdentifier and fallback; give one"),
        id="outlet-and-fallback",
    ),
    pytest.param(
        workflow(
            [TRIGGER, CHECK, NOTIFY, DEPLOY],
            [
                edge("check_env", "notify", sourceOutletIdentifier="prod"),
                edge("notify", "deploy"),
                edge("deploy", "check_env"),
            ],
        ),
        ("connections[2]", "closes a cycle check_env → notify → deploy → check_env"),
        id="cycle",
    ),
    pytest.param(
        workflow(
            [
                TRIGGER,
                {
                    **CHECK,
                    "config": {
                        "type": "CONDITION",
                        "outlets": [
                            {"identifier": "a", "expression": "true"},
                            {"identifier": "a", "expression": "false"},
                        ],
                    },
                },
            ],
            [],
        ),
        ("nodes[1].config.outlets[1].identifier", "'a' is used by another outlet of this node"),
        id="duplicate-outlet",
    ),
]


@pytest.mark.parametrize(("data", "problem"), GRAPH_CASES)
def test_each_graph_rule_names_the_offender(data: dict[str, Any], problem: tuple[str, str]) -> None:
    assert problems_of(data) == [problem]


def test_fan_in_and_several_triggers_are_allowed() -> None:
    second = {**TRIGGER, "identifier": "trigger2"}
    parsed = parse_workflow(
        workflow([TRIGGER, second, NOTIFY], [edge("trigger", "notify"), edge("trigger2", "notify")])
    )
    assert len(parsed.connections) == 2


def test_every_problem_is_reported_at_once() -> None:
    data = workflow([TRIGGER, NOTIFY], [edge("trigger", "x"), edge("y", "notify")])
    with pytest.raises(WorkflowInvalid) as caught:
        parse_workflow(data)
    error_text = str(caught.value)
    assert "connections[0].targetIdentifier: 'x' names no node" in error_text
    assert "connections[1].sourceIdentifier: 'y' names no node" in error_text
