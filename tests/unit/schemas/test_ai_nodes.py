"""AI and AI_AGENT nodes, as the hosted product exports them, load (SPEC §2)."""

from __future__ import annotations

from typing import Any

import pytest

from switchyard.schemas import AiAgentConfig, AiConfig, WorkflowInvalid, parse_workflow

TRIGGER = {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER"}}


def with_node(config: dict[str, Any]) -> Any:
    return parse_workflow({
        "identifier": "ai-wf", "nodes": [TRIGGER, {"identifier": "ask", "config": config}],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "ask"}],
    })  # fmt: skip


def test_an_ai_node_with_port_fields_loads() -> None:
    workflow = with_node({
        "type": "AI", "userPrompt": "Summarise {{ .outputs.trigger }}", "systemPrompt": "Be brief",
        "tools": ["^(list|get)_.*"], "mcpServers": [{"identifier": "github"}],
        "provider": "openai", "model": "gpt-4o",
        "outputSchema": {"type": "object", "properties": {"summary": {"type": "string"}}},
    })  # fmt: skip
    config = workflow.nodes[1].config
    assert isinstance(config, AiConfig)
    assert (config.model, config.system_prompt) == ("gpt-4o", "Be brief")


def test_an_ai_agent_node_loads() -> None:
    config = (
        with_node(
            {"type": "AI_AGENT", "agentIdentifier": "incident_triage", "userPrompt": "Triage it"}
        )
        .nodes[1]
        .config
    )
    assert isinstance(config, AiAgentConfig)
    assert config.agent_identifier == "incident_triage"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"type": "AI"}, "userPrompt: is required"),
        ({"type": "AI_AGENT", "userPrompt": "x"}, "agentIdentifier: is required"),
        ({"type": "AI", "userPrompt": "x", "provider": "openai"}, "set both or neither"),
        ({"type": "AI", "userPrompt": "x", "outputSchema": {"type": "array"}},
         "outputSchema.type: must be \"object\" (got 'array')"),
        ({"type": "AI", "userPrompt": "x", "mcpServers": [{"identifier": "m"}] * 6},
         "mcpServers: "),
    ],
)  # fmt: skip
def test_bad_ai_nodes_are_refused_naming_the_field(config: dict[str, Any], message: str) -> None:
    with pytest.raises(WorkflowInvalid) as caught:
        with_node(config)
    assert any(message in f"{path}: {text}" for path, text in caught.value.problems), (
        caught.value.problems
    )
