"""Run control in the pure machine: node and run deadlines, retries, re-runs, and
the no-stuck-run rule (SPEC §7). Time only moves when the harness says so."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from switchyard.engine.machine import Decision, decide, dump_state, waits
from switchyard.engine.machine.graph import Graph
from switchyard.engine.machine.options import MachineOptions
from switchyard.schemas import (
    NodeRunUpdated,
    RunCommand,
    RunTriggered,
    TimerFired,
    WorkflowInvalid,
    node_run_id,
    parse_workflow,
    timer_id,
)

from .conftest import RUN_ID, Harness, JqTemplates, chain, trigger_node


def kafka(identifier: str = "work", **config: Any) -> dict[str, Any]:
    return {"identifier": identifier, "config": {"type": "KAFKA", "payload": {}, **config}}


def webhook(identifier: str = "call", **config: Any) -> dict[str, Any]:
    return {"identifier": identifier,
            "config": {"type": "WEBHOOK", "url": "https://hooks.test/x", **config}}  # fmt: skip


def harness(*nodes: dict[str, Any], timeout: float | None = None) -> Harness:
    workflow = chain(trigger_node(), *nodes)
    if timeout is not None:
        workflow = workflow.model_copy(update={"timeout_seconds": timeout})
    return Harness(workflow)


def nr(node: str, attempt: int = 1) -> str:
    return node_run_id(RUN_ID, node, attempt)


def failed_report(h: Harness, node: str, attempt: int = 1, **output: Any) -> Decision:
    return h.send(
        NodeRunUpdated(
            run_id=RUN_ID,
            node_run_id=nr(node, attempt),
            status="COMPLETED",
            result="FAILED",
            output=output or None,
            sent_at=h.now,
        )
    )


# -- node timeouts ----------------------------------------------------------------------


def test_a_waiting_node_arms_its_deadline_and_fails_when_it_passes() -> None:
    h = harness(kafka(timeoutSeconds=30))
    started = h.now
    decision = h.trigger()
    [timer] = h.effects("SetTimer", decision)
    assert timer.timer_id == timer_id(RUN_ID, nr("work"), "node_timeout")
    assert timer.due_at == started + timedelta(seconds=30)
    assert h.node_run("work").attempt == 1
    [wait] = waits(h.run, Graph.of(h.workflow))
    assert (wait.node_run, wait.kind, wait.deadline) == (nr("work"), "worker", timer.due_at)

    h.now = timer.due_at
    h.fire("node_timeout", "work")
    work = h.node_run("work")
    assert (work.status, work.result) == ("COMPLETED", "FAILED")
    assert work.output["error"]["message"] == "timed out after 30 s"
    assert ("ERROR", "timed out after 30 s") in [(e.log_level, e.log) for e in h.logs("work")]
    assert (h.run.status, h.run.result) == ("COMPLETED", "FAILED")
    assert waits(h.run, Graph.of(h.workflow)) == []


def test_a_report_before_the_deadline_disarms_it_and_the_late_timer_is_stale() -> None:
    h = harness(kafka(timeoutSeconds=30))
    h.trigger()
    decision = h.complete("work", output={"ok": True})
    [cancel] = h.effects("CancelTimer", decision)
    assert cancel.timer_id == timer_id(RUN_ID, nr("work"), "node_timeout")
    assert h.node_run("work").deadline is None
    late = h.fire("node_timeout", "work")
    assert late.rejection is not None
    assert late.rejection.code == "stale_timer"
    assert h.run.result == "SUCCESS"


def test_a_report_after_the_deadline_is_a_benign_late_update() -> None:
    h = harness(kafka(timeoutSeconds=5, onFailure="continue"), kafka("after"))
    h.trigger()
    h.fire("node_timeout", "work")
    assert h.node_run("after").in_flight  # onFailure: continue applied to the timeout
    late = h.complete("work", output={"ok": True})
    assert late.rejection is not None
    assert late.rejection.code == "late_update"
    assert h.node_run("work").result == "FAILED"


def test_a_timer_fired_twice_changes_nothing_the_second_time() -> None:
    h = harness(kafka(timeoutSeconds=5, onFailure="continue"), kafka("after"))
    h.trigger()
    h.fire("node_timeout", "work")
    before = dump_state(h.run)
    again = h.fire("node_timeout", "work")
    assert again.rejection is not None
    assert again.rejection.code == "stale_timer"
    assert dump_state(h.run) == before


def test_an_async_webhook_with_on_timeout_continue_succeeds_with_timeout_true() -> None:
    h = harness(webhook(synchronized=False, timeoutSeconds=60, onTimeout="continue"), kafka())
    h.trigger()
    h.fire("node_timeout", "call")
    call = h.node_run("call")
    assert (call.status, call.result, call.output) == ("COMPLETED", "SUCCESS", {"timeout": True})
    assert h.run.outputs["call"] == {"timeout": True}
    assert h.node_run("work").in_flight


def test_a_synchronized_webhook_is_bounded_by_the_executor_not_by_a_timer() -> None:
    h = harness(webhook(timeoutSeconds=10))
    decision = h.trigger()
    assert h.effects("SetTimer", decision) == []
    assert waits(h.run, Graph.of(h.workflow))[0].kind == "http"


def test_the_default_node_timeout_applies_to_nodes_without_their_own() -> None:
    h = harness(kafka(), kafka("own", timeoutSeconds=7))
    h.options = MachineOptions(default_timeout_s=120)
    started = h.now
    [timer] = h.effects("SetTimer", h.trigger())
    assert timer.due_at == started + timedelta(seconds=120)
    h.complete("work")
    assert h.node_run("own").deadline == h.now - timedelta(seconds=1) + timedelta(seconds=7)


def test_a_synchronized_webhook_may_not_wait_longer_than_an_hour() -> None:
    with pytest.raises(WorkflowInvalid, match=r"config: timeoutSeconds: at most 3600 for a sync"):
        chain(trigger_node(), webhook(timeoutSeconds=7200))
    chain(trigger_node(), webhook(synchronized=False, timeoutSeconds=7200))  # a PATCH may


# -- retries ----------------------------------------------------------------------------

RETRY = {"maxAttempts": 3, "initialIntervalSeconds": 10, "backoffCoefficient": 2}


def test_a_failed_attempt_is_retried_after_the_backoff_as_a_new_node_run() -> None:
    h = harness(kafka(retry=RETRY))
    h.trigger()
    failed_at = h.now
    decision = failed_report(h, "work", error={"message": "boom"})
    first = h.node_run("work")
    assert (first.status, first.result, first.attempt) == ("COMPLETED", "FAILED", 1)
    assert first.retry_at == failed_at + timedelta(seconds=10)
    [timer] = h.effects("SetTimer", decision)
    assert (timer.purpose, timer.due_at) == ("retry", first.retry_at)
    assert h.run.status == "IN_PROGRESS"
    [wait] = waits(h.run, Graph.of(h.workflow))
    assert (wait.node_run, wait.kind, wait.deadline) == (first.id, "timer", first.retry_at)

    decision = h.fire("retry", "work")
    second = h.node_run("work")
    assert (second.id, second.attempt, second.retry_of) == (nr("work", 2), 2, first.id)
    [request] = h.effects("PublishNodeRunRequest", decision)
    assert request.request.context.node_run_id == nr("work", 2)

    failed_report(h, "work", 2, error={"message": "again"})
    assert h.node_run("work").retry_at == h.now - timedelta(seconds=1) + timedelta(seconds=20)
    h.fire("retry", "work", attempt=2)
    failed_report(h, "work", 3, error={"message": "third"})
    assert (h.run.status, h.run.result) == ("COMPLETED", "FAILED")  # attempts used up
    assert h.run.outputs["work"]["error"]["message"] == "third"  # the last attempt's
    assert [n.attempt for n in h.run.node_runs if n.node == "work"] == [1, 2, 3]


def test_a_retry_succeeds_and_outputs_hold_the_last_attempt() -> None:
    h = harness(kafka(retry={"maxAttempts": 2}), kafka("after"))
    h.trigger()
    failed_report(h, "work", error={"message": "flaky"})
    h.fire("retry", "work")
    h.send(
        NodeRunUpdated(
            run_id=RUN_ID,
            node_run_id=nr("work", 2),
            status="COMPLETED",
            result="SUCCESS",
            output={"v": 2},
            sent_at=h.now,
        )
    )
    assert h.run.outputs["work"] == {"v": 2}
    assert h.node_run("after").in_flight


def test_a_retry_after_a_timeout_when_retry_on_names_it() -> None:
    h = harness(kafka(timeoutSeconds=5, retry={"maxAttempts": 2, "retryOn": ["timeout"]}))
    h.trigger()
    h.fire("node_timeout", "work")
    assert h.node_run("work").retry_pending
    h.fire("retry", "work")
    assert h.node_run("work").attempt == 2
    assert h.node_run("work").deadline is not None  # the new attempt has its own deadline
    failed_report(h, "work", 2)  # a failure, not a timeout: not in retryOn
    assert (h.run.status, h.run.result) == ("COMPLETED", "FAILED")


def test_retry_on_failure_only_does_not_retry_a_timeout() -> None:
    h = harness(kafka(timeoutSeconds=5, retry={"maxAttempts": 3, "retryOn": ["failure"]}))
    h.trigger()
    h.fire("node_timeout", "work")
    assert (h.run.status, h.run.result) == ("COMPLETED", "FAILED")


@pytest.mark.parametrize(("status", "retried"), [(503, True), (400, False)])
def test_retry_on_http_statuses(status: int, retried: bool) -> None:
    h = harness(webhook(retry={"maxAttempts": 2, "retryOn": [502, 503]}))
    h.trigger()
    failed_report(h, "call", response={"status": status, "data": None})
    assert h.node_run("call").retry_pending is retried


def test_an_executor_timeout_counts_as_a_timeout() -> None:
    h = harness(webhook(retry={"maxAttempts": 2, "retryOn": ["timeout"]}))
    h.trigger()
    failed_report(h, "call", timeout=True, error={"message": "no answer within 10 s"})
    assert h.node_run("call").retry_pending


def test_cancel_during_the_backoff_drops_the_retry() -> None:
    h = harness(kafka(retry=RETRY))
    h.trigger()
    failed_report(h, "work")
    decision = h.cancel()
    assert [t.timer_id for t in h.effects("CancelTimer", decision)] == [
        timer_id(RUN_ID, nr("work"), "retry")
    ]
    assert (h.run.status, h.run.result) == ("COMPLETED", "CANCELLED")
    stale = h.fire("retry", "work")
    assert stale.rejection is not None
    assert stale.rejection.code == "stale_timer"


def test_template_failures_are_not_retried() -> None:
    h = harness(kafka(payload={"x": "{{ .nope | error }}"}, retry=RETRY))
    h.trigger()
    assert (h.run.status, h.run.result) == ("COMPLETED", "FAILED")


# -- run timeouts -----------------------------------------------------------------------


def test_the_run_deadline_cancels_what_runs_and_fails_the_run() -> None:
    h = harness(kafka(), timeout=60)
    started = h.now
    [timer] = h.effects("SetTimer", h.trigger())
    assert (timer.purpose, timer.due_at) == ("run_timeout", started + timedelta(seconds=60))
    h.fire("run_timeout")
    work = h.node_run("work")
    assert (work.status, work.result) == ("COMPLETED", "CANCELLED")
    assert ("ERROR", "run timed out after 60 s") in [(e.log_level, e.log) for e in h.logs("work")]
    assert (h.run.status, h.run.result) == ("COMPLETED", "FAILED")


def test_a_run_that_ends_in_time_disarms_its_deadline() -> None:
    h = harness(kafka(), timeout=60)
    h.trigger()
    decision = h.complete("work")
    assert timer_id(RUN_ID, None, "run_timeout") in {
        t.timer_id for t in h.effects("CancelTimer", decision)
    }
    stale = h.fire("run_timeout")
    assert stale.rejection is not None
    assert stale.rejection.code == "stale_timer"


def test_a_timer_that_is_not_the_runs_is_unknown() -> None:
    h = harness(kafka())
    h.trigger()
    decision = h.send(TimerFired(run_id=RUN_ID, timer_id="something-else", fired_at=h.now))
    assert decision.rejection is not None
    assert decision.rejection.code == "unknown_timer"


# -- re-run -----------------------------------------------------------------------------


def three_steps() -> Harness:
    """trigger → build (KAFKA) → deploy (KAFKA, payload from build) → notify (KAFKA)."""
    return Harness(chain(
        trigger_node(service={"type": "string"}), kafka("build"),
        kafka("deploy", payload={"artifact": "{{ .outputs.build.artifact }}"}), kafka("notify"),
    ))  # fmt: skip


def rerun(h: Harness, **fields: Any) -> Decision:
    return h.send(RunCommand(run_id=RUN_ID, command="rerun", by="carol", **fields))


def published_trigger(decision: Decision) -> RunTriggered:
    [effect] = [e for e in decision.effects if e.kind == "PublishInboxEvent"]
    event = effect.event
    assert isinstance(event, RunTriggered)
    return event


def test_a_rerun_of_a_finished_run_repeats_its_inputs_on_its_version() -> None:
    h = three_steps()
    h.trigger({"service": "api"})
    failed_report(h, "build")
    decision = rerun(h, new_run_id="wfr_NewRun0000000001")
    event = published_trigger(decision)
    assert (event.run_id, event.workflow_version, event.inputs) == (
        "wfr_NewRun0000000001",
        3,
        {"service": "api"},
    )
    assert event.rerun_of is not None
    assert (event.rerun_of.identifier, event.rerun_of.from_node) == (RUN_ID, None)
    assert event.reuse == []
    assert event.created_by == "carol"
    # Latest version and edited inputs; no id given: derived, the same on a replay.
    latest = published_trigger(rerun(h, version="latest", inputs={"service": "web"}))
    assert (latest.workflow_version, latest.inputs) == (None, {"service": "web"})
    assert latest.run_id.startswith("wfr_")
    assert len(latest.run_id) == 20


def test_a_rerun_of_a_run_in_progress_needs_force() -> None:
    h = three_steps()
    h.trigger({"service": "api"})
    refused = rerun(h)
    assert refused.rejection is not None
    assert refused.rejection.code == "run_in_progress"
    forced = rerun(h, force=True)
    assert (h.run.status, h.run.result) == ("COMPLETED", "CANCELLED")
    assert h.node_run("build").result == "CANCELLED"
    assert published_trigger(forced).rerun_of is not None


@pytest.mark.parametrize(
    ("from_node", "message"),
    [("nope", "is not a node"), ("trigger", "is a trigger"), ("notify", "did not run")],
)
def test_a_partial_rerun_needs_a_node_that_ran(from_node: str, message: str) -> None:
    h = three_steps()
    h.trigger({"service": "api"})
    h.complete("build", output={"artifact": "a-1"})
    failed_report(h, "deploy")
    decision = rerun(h, from_node=from_node)
    assert decision.rejection is not None
    assert decision.rejection.code == "invalid_rerun"
    assert message in decision.rejection.reason


def test_a_partial_rerun_reuses_the_upstream_node_runs_and_restarts_at_the_node() -> None:
    old = three_steps()
    old.trigger({"service": "api"})
    old.complete("build", output={"artifact": "a-1"})
    failed_report(old, "deploy", error={"message": "cluster down"})
    event = published_trigger(rerun(old, from_node="deploy", new_run_id="wfr_NewRun0000000002"))
    assert [r.node_identifier for r in event.reuse] == ["trigger", "build"]

    new = decide(
        None, event, workflow=old.workflow, now=old.now, templates=JqTemplates(), secrets={}
    )
    state = new.state
    assert state is not None
    assert state.rerun_of is not None
    assert (state.rerun_of.identifier, state.rerun_of.from_node) == (RUN_ID, "deploy")
    by_node = {n.node: n for n in state.node_runs}
    assert by_node["trigger"].reused_from == nr("trigger")
    assert by_node["build"].reused_from == nr("build")
    assert (by_node["build"].status, by_node["build"].result) == ("COMPLETED", "SUCCESS")
    assert by_node["deploy"].reused_from is None
    assert by_node["deploy"].in_flight  # restarted here, with the reused output
    [request] = [e for e in new.effects if e.kind == "PublishNodeRunRequest"]
    assert request.request.payload == {"artifact": "a-1"}
    assert "notify" not in by_node
    assert state.outputs["build"] == {"artifact": "a-1"}


def test_a_partial_rerun_with_new_inputs_runs_a_fresh_trigger() -> None:
    old = three_steps()
    old.trigger({"service": "api"})
    old.complete("build", output={"artifact": "a-1"})
    failed_report(old, "deploy")
    event = published_trigger(rerun(old, from_node="deploy", inputs={"service": "web"}))
    assert [r.node_identifier for r in event.reuse] == ["build"]


def test_a_rerun_on_the_latest_version_skips_nodes_it_no_longer_has() -> None:
    old = three_steps()
    old.trigger({"service": "api"})
    old.complete("build", output={"artifact": "a-1"})
    failed_report(old, "deploy")
    event = published_trigger(rerun(old, from_node="deploy", version="latest"))
    newer = parse_workflow({
        "identifier": "wf", "version": 4,
        "nodes": [trigger_node(service={"type": "string"}),
                  kafka("deploy", payload={"built": "{{ .outputs.build }}"})],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "deploy"}],
    })  # fmt: skip
    new = decide(None, event, workflow=newer, now=old.now, templates=JqTemplates(), secrets={})
    assert new.state is not None
    assert [n.node for n in new.state.node_runs] == ["trigger", "deploy"]
    assert new.state.workflow_version == 4
