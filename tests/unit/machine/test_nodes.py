"""Each node kind through decide(): what it emits, what it waits for, how it ends."""

from __future__ import annotations

from typing import Any

import orjson

from switchyard.engine.machine import dump_state, load_state
from switchyard.schemas import encode, node_run_id

from .conftest import RUN_ID, Harness, chain, trigger_node

ENV = {"type": "string", "enum": ["staging", "production"]}


def condition(*outlets: tuple[str, str], node: str = "check") -> dict[str, Any]:
    return {
        "identifier": node,
        "config": {
            "type": "CONDITION",
            "outlets": [{"identifier": i, "title": i.title(), "expression": e} for i, e in outlets],
        },
    }


def kafka(node: str, payload: Any = None, **extra: Any) -> dict[str, Any]:
    return {"identifier": node, "config": {"type": "KAFKA", "payload": payload or {}}, **extra}


def webhook(node: str, **config: Any) -> dict[str, Any]:
    return {"identifier": node, "config": {"type": "WEBHOOK", "url": "https://hook.test", **config}}


def edge(source: str, target: str, **extra: Any) -> dict[str, Any]:
    return {"sourceIdentifier": source, "targetIdentifier": target, **extra}


def test_trigger_creates_the_run_with_the_validated_inputs() -> None:
    harness = Harness(chain(trigger_node(env=ENV), kafka("notify")))
    decision = harness.trigger({"env": "staging"})
    run = harness.run
    assert (run.status, run.result, run.workflow_version) == ("IN_PROGRESS", None, 3)
    trigger = harness.node_run("trigger")
    assert (trigger.status, trigger.result, trigger.output) == (
        "COMPLETED",
        "SUCCESS",
        {"env": "staging"},
    )
    assert trigger.id == node_run_id(RUN_ID, "trigger")
    assert run.outputs["trigger"] == {"env": "staging"}
    kinds = [e.event.kind for e in harness.effects("EmitRunEvent", decision)]
    assert kinds == [
        "run.created",
        "nodeRun.created",
        "nodeRun.completed",
        "nodeRun.created",
    ]
    seqs = [e.event.seq for e in harness.effects("EmitRunEvent", decision)]
    assert seqs == [1, 2, 3, 4]
    assert run.waiting_on == [node_run_id(RUN_ID, "notify")]


def test_a_trigger_alone_completes_the_run_at_once() -> None:
    harness = Harness(chain(trigger_node()))
    decision = harness.trigger()
    assert (harness.run.status, harness.run.result) == ("COMPLETED", "SUCCESS")
    [finished] = harness.effects("RunFinished", decision)
    assert finished.result == "SUCCESS"


def test_kafka_node_publishes_payload_and_context_and_waits() -> None:
    harness = Harness(
        chain(trigger_node(env=ENV), kafka("notify", {"env": "{{ .outputs.trigger.env }}"}))
    )
    harness.trigger({"env": "production"})
    [effect] = harness.effects("PublishNodeRunRequest")
    nr_id = node_run_id(RUN_ID, "notify")
    assert effect.id == f"{nr_id}:request"
    assert orjson.loads(encode(effect.request)) == {
        "payload": {"env": "production"},
        "context": {
            "workflowIdentifier": "wf",
            "workflowRunId": RUN_ID,
            "nodeRunId": nr_id,
            "nodeIdentifier": "notify",
            "runId": nr_id,
        },
    }
    harness.complete("notify", output={"done": 1})
    assert harness.run.outputs["notify"] == {"done": 1}
    assert (harness.run.status, harness.run.result) == ("COMPLETED", "SUCCESS")


def test_kafka_completion_without_output_stores_an_empty_object() -> None:
    harness = Harness(chain(trigger_node(), kafka("notify")))
    harness.trigger()
    harness.complete("notify")
    assert harness.run.outputs["notify"] == {}


def test_condition_takes_the_first_true_outlet_in_order() -> None:
    check = condition(("a", "false"), ("b", "1 == 1"), ("c", "true"))
    edges = [
        edge("trigger", "check"),
        edge("check", "na", sourceOutletIdentifier="a"),
        edge("check", "nb", sourceOutletIdentifier="b"),
        edge("check", "nc", sourceOutletIdentifier="c"),
    ]
    harness = Harness(
        chain(trigger_node(), check, kafka("na"), kafka("nb"), kafka("nc"), edges=edges)
    )
    harness.trigger()
    assert harness.run.outputs["check"] == {
        "selectedOutlet": {"identifier": "b", "title": "B"},
        "fallback": False,
    }
    assert harness.run.waiting_on == [node_run_id(RUN_ID, "nb")]
    assert sorted(harness.run.dead) == ["na", "nc"]
    harness.complete("nb")
    assert "na" not in harness.run.outputs
    assert harness.run.result == "SUCCESS"


def test_condition_truthy_but_not_true_does_not_match() -> None:
    check = condition(("a", "1"))
    edges = [edge("trigger", "check"), edge("check", "fb", fallback=True)]
    harness = Harness(chain(trigger_node(), check, kafka("fb"), edges=edges))
    harness.trigger()
    assert harness.run.outputs["check"] == {"selectedOutlet": None, "fallback": True}
    assert harness.run.waiting_on == [node_run_id(RUN_ID, "fb")]


def test_condition_without_match_or_fallback_ends_the_branch_and_the_run() -> None:
    check = condition(("a", "false"))
    edges = [edge("trigger", "check"), edge("check", "na", sourceOutletIdentifier="a")]
    harness = Harness(chain(trigger_node(), check, kafka("na"), edges=edges))
    harness.trigger()
    assert (harness.run.status, harness.run.result) == ("COMPLETED", "SUCCESS")
    assert [log.log for log in harness.logs("check")] == [
        "no outlet matched and there is no fallback: this branch ends"
    ]


def test_condition_expression_error_fails_the_node_and_the_run() -> None:
    check = condition(("a", ".outputs.trigger.x.y.z | ascii_downcase"))
    harness = Harness(chain(trigger_node(), check, kafka("na"), edges=[edge("trigger", "check")]))
    harness.trigger()
    node = harness.node_run("check")
    assert (node.status, node.result) == ("COMPLETED", "FAILED")
    assert (harness.run.status, harness.run.result) == ("COMPLETED", "FAILED")
    [log] = harness.logs("check")
    assert log.log_level == "ERROR"
    assert ".outputs.trigger.x.y.z | ascii_downcase" in log.log
    assert "explode input must be a string" in log.log  # jq's own words


def test_sync_webhook_renders_templates_and_masks_secrets_in_logs_only() -> None:
    hook = webhook(
        "deploy",
        headers={"Authorization": 'Bearer {{ .secrets["deploy-token"] }}', "X-N": "{{ 1 + 1 }}"},
        body={"run": "{{ .workflowRun.identifier }}", "node": "{{ .workflowNodeRun.identifier }}"},
        timeoutSeconds=5,
    )
    hook["verbose"] = True
    harness = Harness(chain(trigger_node(), hook))
    harness.trigger()
    [effect] = harness.effects("PublishWebhookRequest")
    request = effect.request
    assert request.headers == {"Authorization": "Bearer s3cr3t-token-value", "X-N": "2"}
    assert request.body == {"run": RUN_ID, "node": node_run_id(RUN_ID, "deploy")}
    assert (request.synchronized, request.timeout_seconds, request.verbose) == (True, 5, True)
    logs = " ".join(log.log for log in harness.logs("deploy"))
    assert "Bearer ****" in logs
    assert "s3cr3t" not in logs


def test_async_webhook_is_sent_unsynchronized_and_waits_for_the_patch() -> None:
    harness = Harness(chain(trigger_node(), webhook("hook", synchronized=False), kafka("next")))
    harness.trigger()
    [effect] = harness.effects("PublishWebhookRequest")
    assert effect.request.synchronized is False
    harness.update("hook", logs=[{"logLevel": "INFO", "log": "working"}], externalRunId="ext-9")
    assert harness.node_run("hook").external_run_id == "ext-9"
    assert harness.run.waiting_on == [node_run_id(RUN_ID, "hook")]
    harness.complete("hook", output={"x": 1})
    assert harness.run.waiting_on == [node_run_id(RUN_ID, "next")]


def test_template_error_fails_the_node_with_the_expression_in_an_error_log() -> None:
    harness = Harness(chain(trigger_node(), webhook("hook", url="{{ .outputs | bogus_fn }}")))
    harness.trigger()
    [log] = harness.logs("hook")
    assert log.log_level == "ERROR"
    assert "bogus_fn" in log.log
    assert harness.run.result == "FAILED"
    assert harness.effects("PublishWebhookRequest") == []


def test_a_url_that_renders_to_a_non_string_fails_the_node() -> None:
    harness = Harness(chain(trigger_node(), webhook("hook", url="{{ 42 }}")))
    harness.trigger()
    assert harness.run.outputs["hook"] == {
        "error": {"message": "url: must render to a non-empty string (got 42)"}
    }


def test_integration_action_is_marked_pending_then_cleared() -> None:
    node = {
        "identifier": "dispatch",
        "config": {
            "type": "INTEGRATION_ACTION",
            "installationId": "gh-1",
            "integrationProvider": "github-ocean",
            "integrationInvocationType": "dispatch_workflow",
            "integrationActionExecutionProperties": {
                "repo": "{{ .outputs.trigger.repo }}",
                "token": '{{ .secrets["deploy-token"] }}',
            },
        },
    }
    harness = Harness(chain(trigger_node(repo={"type": "string"}), node))
    harness.trigger({"repo": "api"})
    [claim] = harness.effects("MarkPendingClaim")
    nr_id = node_run_id(RUN_ID, "dispatch")
    assert (claim.installation_id, claim.node_run_id, claim.run_id) == ("gh-1", nr_id, RUN_ID)
    assert claim.config["type"] == "INTEGRATION_ACTION"
    assert claim.config["integrationInvocationType"] == "dispatch_workflow"
    # Secrets are not available to integration actions (Port doesn't allow them).
    assert claim.config["integrationActionExecutionProperties"] == {"repo": "api", "token": None}
    decision = harness.complete("dispatch", output={"workflowRunUrl": "u"})
    [clear] = harness.effects("ClearPendingClaim", decision)
    assert (clear.installation_id, clear.node_run_id) == ("gh-1", nr_id)


def test_variables_reshape_the_stored_output_and_links_render() -> None:
    hook = webhook("deploy")
    hook["variables"] = {
        "deploymentId": "{{ .result.response.data.id }}",
        "legacy": "{{ .response.status }}",
        "env": "{{ .outputs.trigger.env }}",
    }
    hook["links"] = ["https://ci.test/{{ .result.response.data.id }}", "{{ .nope | bogus }}"]
    harness = Harness(chain(trigger_node(env=ENV), hook))
    harness.trigger({"env": "staging"})
    raw = {"response": {"status": 200, "data": {"id": "d-7"}}}
    harness.complete("deploy", output=raw)
    assert harness.run.outputs["deploy"] == {"deploymentId": "d-7", "legacy": 200, "env": "staging"}
    assert harness.node_run("deploy").output == raw
    assert harness.node_run("deploy").links == ["https://ci.test/d-7"]
    assert any(log.log_level == "WARN" for log in harness.logs("deploy"))


def test_a_failing_variables_template_fails_the_node() -> None:
    node = kafka("notify", variables={"x": "{{ .result | bogus }}"})
    harness = Harness(chain(trigger_node(), node))
    harness.trigger()
    harness.complete("notify", output={"a": 1})
    assert harness.node_run("notify").result == "FAILED"
    assert harness.run.result == "FAILED"
    assert harness.run.outputs["notify"]["a"] == 1


def test_on_failure_terminate_ends_the_run_failed() -> None:
    harness = Harness(chain(trigger_node(), kafka("a"), kafka("b")))
    harness.trigger()
    decision = harness.complete("a", "FAILED", logs=[{"logLevel": "ERROR", "log": "disk full"}])
    assert (harness.run.status, harness.run.result) == ("COMPLETED", "FAILED")
    assert harness.run.outputs["a"] == {"error": {"message": "disk full"}}
    assert harness.run.node_run_of("b") is None
    assert [e.result for e in harness.effects("RunFinished", decision)] == ["FAILED"]
    assert [log.log for log in harness.logs("a")][1:] == ["disk full"]


def test_on_failure_continue_fails_the_node_and_goes_on() -> None:
    failing = {"identifier": "a", "config": {"type": "KAFKA", "onFailure": "continue"}}
    harness = Harness(chain(trigger_node(), failing, kafka("b")))
    harness.trigger()
    harness.complete("a", "FAILED", output={"partial": True, "error": {"message": "quota"}})
    assert harness.node_run("a").result == "FAILED"
    assert harness.run.outputs["a"] == {"partial": True, "error": {"message": "quota"}}
    assert harness.run.waiting_on == [node_run_id(RUN_ID, "b")]
    harness.complete("b")
    assert harness.run.result == "SUCCESS"


def test_a_node_reported_cancelled_cancels_the_run() -> None:
    harness = Harness(chain(trigger_node(), kafka("a"), kafka("b")))
    harness.trigger()
    harness.complete("a", "CANCELLED")
    assert (harness.run.status, harness.run.result) == ("COMPLETED", "CANCELLED")


def test_secrets_are_masked_in_stored_outputs_logs_and_links() -> None:
    harness = Harness(chain(trigger_node(), kafka("a")))
    harness.trigger()
    secret = harness.secrets["deploy-token"]
    harness.update(
        "a",
        logs=[{"logLevel": "INFO", "log": f"using {secret}", "tags": {"t": secret}}],
        links=[f"https://x/?k={secret}"],
    )
    harness.complete("a", output={"echo": f"token={secret}"})
    assert harness.run.outputs["a"] == {"echo": "token=****"}
    assert harness.node_run("a").output == {"echo": "token=****"}
    assert harness.node_run("a").links == ["https://x/?k=****"]
    log = harness.logs("a")[-1]
    assert (log.log, log.tags) == ("using ****", {"t": "****"})
    assert secret not in dump_state(harness.run).decode()


def test_templates_see_outputs_trigger_alias_workflow_and_run() -> None:
    payload = {
        "alias": "{{ .outputs.trigger.env }}",
        "byId": '{{ .outputs["start"].env }}',
        "wf": "{{ .workflow }}",
        "by": "{{ .workflowRun.trigger }}",
        "created": "{{ .workflowRun.createdAt }}",
    }
    start = {**trigger_node(env=ENV), "identifier": "start"}
    harness = Harness(chain(start, kafka("a", payload)))
    harness.trigger({"env": "staging"})
    [effect] = harness.effects("PublishNodeRunRequest")
    assert effect.request.payload == {
        "alias": "staging",
        "byId": "staging",
        "wf": {"identifier": "wf", "version": 3},
        "by": {"identifier": "start", "by": "alice@example.com"},
        "created": "2026-01-28T10:00:00.000Z",
    }


def test_fan_in_join_runs_once_after_the_taken_branch_dead_path_eliminated() -> None:
    check = condition(("left", '.outputs.trigger.env == "staging"'))
    edges = [
        edge("trigger", "check"),
        edge("check", "l", sourceOutletIdentifier="left"),
        edge("check", "r", fallback=True),
        edge("l", "join"),
        edge("r", "join"),
        edge("orphan", "join"),
    ]
    workflow = chain(
        trigger_node(env=ENV), check, kafka("l"), kafka("r"), kafka("orphan"), kafka("join"),
        edges=edges,
    )  # fmt: skip
    harness = Harness(workflow)
    harness.trigger({"env": "production"})
    assert harness.run.waiting_on == [node_run_id(RUN_ID, "r")]
    assert sorted(harness.run.dead) == ["l", "orphan"]
    harness.complete("r")
    assert harness.run.waiting_on == [node_run_id(RUN_ID, "join")]
    harness.complete("join")
    assert harness.run.result == "SUCCESS"
    assert [nr.node for nr in harness.run.node_runs] == ["trigger", "check", "r", "join"]


def test_a_second_trigger_chosen_by_node_identifier() -> None:
    second = {**trigger_node(), "identifier": "other"}
    workflow = chain(
        trigger_node(env=ENV), second, kafka("a"),
        edges=[edge("trigger", "a"), edge("other", "a")],
    )  # fmt: skip
    harness = Harness(workflow)
    harness.trigger({}, node_identifier="other")
    assert harness.run.trigger == "other"
    assert harness.run.dead == ["trigger"]
    assert harness.run.waiting_on == [node_run_id(RUN_ID, "a")]


def test_a_completed_four_node_run_stays_small_and_round_trips() -> None:
    check = condition(("go", "true"))
    edges = [
        edge("trigger", "check"),
        edge("check", "hook", sourceOutletIdentifier="go"),
        edge("hook", "notify"),
    ]
    harness = Harness(
        chain(trigger_node(env=ENV), check, webhook("hook"), kafka("notify"), edges=edges)
    )
    harness.trigger({"env": "staging"})
    harness.complete("hook", output={"response": {"status": 200, "data": {"id": 1}}})
    harness.complete("notify", output={"ok": True})
    raw = dump_state(harness.run)
    assert harness.run.result == "SUCCESS"
    assert len(raw) < 2048
    assert load_state(raw) == harness.run
