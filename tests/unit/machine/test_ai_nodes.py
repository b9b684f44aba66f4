"""AI nodes in the pure machine: handed to the AI executor, or failed saying how to
configure an endpoint when there is none."""

from __future__ import annotations

from switchyard.engine.machine.ai import NOT_CONFIGURED
from switchyard.engine.machine.options import MachineOptions

from .conftest import Harness, chain, trigger_node


def ai_workflow(**config: object) -> Harness:
    node = {
        "identifier": "ask",
        "config": {"type": "AI", "userPrompt": "Deploy {{ .outputs.trigger.service }}?", **config},
    }
    return Harness(chain(trigger_node(service={"type": "string"}), node))


def test_without_an_endpoint_the_node_fails_saying_how_to_configure_one() -> None:
    h = ai_workflow()
    h.trigger({"service": "api"})
    ask = h.node_run("ask")
    assert (ask.status, ask.result) == ("COMPLETED", "FAILED")
    assert ask.output["error"]["message"] == NOT_CONFIGURED
    assert "SWITCHYARD_AI_BASE_URL" in NOT_CONFIGURED
    assert h.run.result == "FAILED"


def test_with_an_endpoint_the_rendered_prompts_go_to_the_executor() -> None:
    h = ai_workflow(
        systemPrompt="You deploy {{ .workflow.identifier }}", provider="local", model="m-1",
        outputSchema={"type": "object"}, tools=["x"], timeoutSeconds=30,
    )  # fmt: skip
    h.options = MachineOptions(ai_configured=True)
    decision = h.trigger({"service": "api"})
    [effect] = h.effects("PublishAiRequest", decision)
    request = effect.request
    assert (request.user_prompt, request.system_prompt) == ("Deploy api?", "You deploy wf")
    assert (request.model, request.output_schema) == ("m-1", {"type": "object"})
    assert request.context.node_run_id == h.node_run("ask").id
    assert h.node_run("ask").in_flight
    assert h.node_run("ask").deadline is not None  # its timeoutSeconds armed
    assert ("WARN", "tools: not used by this server") in [
        (e.log_level, e.log) for e in h.logs("ask")
    ]


def test_an_ai_agent_is_framed_by_its_identifier() -> None:
    node = {"identifier": "ask", "config": {
        "type": "AI_AGENT", "agentIdentifier": "triage", "userPrompt": "What broke?"}}  # fmt: skip
    h = Harness(chain(trigger_node(), node))
    h.options = MachineOptions(ai_configured=True)
    [effect] = h.effects("PublishAiRequest", h.trigger())
    assert effect.request.system_prompt == "You are the agent 'triage'."
    h.complete("ask", output={"response": "the disk", "invocationIdentifier": "c-1"})
    assert h.run.outputs["ask"] == {"response": "the disk", "invocationIdentifier": "c-1"}
