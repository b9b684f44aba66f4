"""agent: true WEBHOOK nodes through decide(): to <org>.runs (KAFKA) or the claim
queue of _PORT_EXEC_AGENT (POLLING), never both; the agent's PATCH completes them."""

from __future__ import annotations

from typing import Any

from switchyard.engine.machine.graph import Graph
from switchyard.engine.machine.options import MachineOptions
from switchyard.engine.machine.waits import waits
from switchyard.schemas import Wait, node_run_id

from .conftest import RUN_ID, START, Harness, chain, trigger_node

NAME = {"type": "string"}
NODE_RUN = node_run_id(RUN_ID, "hook")


def agent_hook(**config: Any) -> dict[str, Any]:
    return {"identifier": "hook", "config": {
        "type": "WEBHOOK", "url": "http://intranet.corp/{{ .outputs.trigger.name }}",
        "agent": True, "headers": {"X-Token": "{{ .secrets[\"deploy-token\"] }}"},
        "body": {"name": "{{ .outputs.trigger.name }}", "note": "für Zoë"}, **config,
    }}  # fmt: skip


def harness(streamer: str = "KAFKA", **config: Any) -> Harness:
    h = Harness(chain(trigger_node(name=NAME), agent_hook(**config), {
        "identifier": "after", "config": {"type": "KAFKA", "payload": {}}}))  # fmt: skip
    h.options = MachineOptions(agent_streamer=streamer)  # type: ignore[arg-type]
    return h


def test_kafka_mode_publishes_the_agents_envelope_and_nothing_else() -> None:
    h = harness()
    decision = h.trigger({"name": "api"})
    [request] = h.effects("PublishAgentRequest", decision)
    assert h.effects("MarkPendingClaim", decision) == []
    assert h.effects("PublishWebhookRequest", decision) == []
    assert request.timestamp == int(START.timestamp())
    assert request.message == {
        "headers": {},
        "payload": {
            "name": "api", "note": "für Zoë",
            "action": {"invocationMethod": {
                "type": "WEBHOOK", "url": "http://intranet.corp/api", "method": "POST",
                "headers": {"X-Token": "s3cr3t-token-value"}, "agent": True,
                "synchronized": True,
            }},
        },
        "context": {
            "runId": NODE_RUN, "workflowRunId": RUN_ID, "workflowIdentifier": "wf",
            "nodeRunId": NODE_RUN, "nodeIdentifier": "hook",
        },
    }  # fmt: skip
    assert h.node_run("hook").installation_id is None
    [wait] = _waits(h)
    assert (wait.node_run, wait.kind) == (NODE_RUN, "worker")


def _waits(h: Harness) -> list[Wait]:
    return waits(h.run, Graph.of(h.workflow))


def test_polling_mode_makes_it_claimable_by_the_agent_and_publishes_nothing() -> None:
    h = harness("POLLING", synchronized=False, method="PUT")
    decision = h.trigger({"name": "api"})
    assert h.effects("PublishAgentRequest", decision) == []
    [claim] = h.effects("MarkPendingClaim", decision)
    assert claim.installation_id == "_PORT_EXEC_AGENT"
    assert claim.node_run_id == NODE_RUN
    # Rendered without secrets: whoever claims sees the config.
    assert claim.config == {
        "type": "WEBHOOK", "url": "http://intranet.corp/api", "method": "PUT",
        "headers": {"X-Token": "null"}, "agent": True, "synchronized": False,
        "body": {"name": "api", "note": "für Zoë"},
    }  # fmt: skip
    assert [w.kind for w in _waits(h)] == ["worker"]


def test_the_agents_sync_report_completes_the_node_and_the_run_moves_on() -> None:
    h = harness()
    h.trigger({"name": "api"})
    output = {"response": {"status": 200, "data": {"ok": True}}}
    decision = h.complete("hook", output=output)
    assert (h.node_run("hook").status, h.node_run("hook").result) == ("COMPLETED", "SUCCESS")
    assert h.run.outputs["hook"] == output
    assert h.node_run("after").status == "IN_PROGRESS"
    assert h.effects("ClearPendingClaim", decision) == []


def test_a_failed_report_fails_the_node_and_the_run() -> None:
    h = harness()
    h.trigger({"name": "api"})
    h.complete("hook", result="FAILED")
    assert (h.run.status, h.run.result) == ("COMPLETED", "FAILED")


def test_in_polling_mode_completion_clears_the_claim() -> None:
    h = harness("POLLING")
    h.trigger({"name": "api"})
    decision = h.complete("hook", output={"response": {"status": 200, "data": {}}})
    [clear] = h.effects("ClearPendingClaim", decision)
    assert clear.installation_id == "_PORT_EXEC_AGENT"


def test_agent_webhooks_get_the_engines_deadline_even_when_synchronized() -> None:
    h = harness(timeoutSeconds=7200)  # above the 1 h bound of an HTTP call: allowed here
    decision = h.trigger({"name": "api"})
    [timer] = h.effects("SetTimer", decision)
    assert timer.purpose == "node_timeout"
    assert (timer.due_at - START).total_seconds() == 7200
    h.tick(7200)
    h.fire("node_timeout", "hook")
    hook = h.node_run("hook")
    assert (hook.status, hook.result) == ("COMPLETED", "FAILED")
    assert "timed out after 7200 s" in hook.output["error"]["message"]


def test_the_servers_default_deadline_applies_when_none_is_set() -> None:
    h = harness()
    h.options = MachineOptions(default_timeout_s=60)
    decision = h.trigger({"name": "api"})
    [timer] = h.effects("SetTimer", decision)
    assert (timer.due_at - START).total_seconds() == 60


def test_a_non_object_body_rides_under_payload_body() -> None:
    h = harness(body=["a", "{{ .outputs.trigger.name }}"])
    decision = h.trigger({"name": "api"})
    [request] = h.effects("PublishAgentRequest", decision)
    assert request.message["payload"]["body"] == ["a", "api"]
    assert set(request.message["payload"]) == {"body", "action"}


def test_a_retry_publishes_again_with_the_new_attempts_id() -> None:
    h = harness(retry={"maxAttempts": 2, "initialIntervalSeconds": 1})
    h.trigger({"name": "api"})
    h.complete("hook", result="FAILED")
    h.tick(1)
    decision = h.fire("retry", "hook")
    [request] = h.effects("PublishAgentRequest", decision)
    assert request.message["context"]["runId"] == node_run_id(RUN_ID, "hook", 2)


def test_a_template_failure_fails_the_node_without_publishing() -> None:
    h = harness(url="{{ .outputs.trigger.name | error }}")
    decision = h.trigger({"name": "api"})
    assert h.effects("PublishAgentRequest", decision) == []
    assert h.node_run("hook").result == "FAILED"
