"""Cancelling a run: graceful lets a running synchronized webhook finish; force doesn't."""

from __future__ import annotations

from typing import Any

from switchyard.schemas import node_run_id

from .conftest import RUN_ID, Harness, chain, trigger_node


def hook(node: str, synchronized: bool) -> dict[str, Any]:
    config = {"type": "WEBHOOK", "url": "https://h.test", "synchronized": synchronized}
    return {"identifier": node, "config": config}


def integration(node: str) -> dict[str, Any]:
    return {
        "identifier": node,
        "config": {
            "type": "INTEGRATION_ACTION",
            "installationId": "gh",
            "integrationProvider": "github-ocean",
            "integrationInvocationType": "dispatch_workflow",
        },
    }


def test_graceful_cancel_of_a_waiting_node_cancels_at_once() -> None:
    harness = Harness(chain(trigger_node(), integration("dispatch"), hook("next", True)))
    harness.trigger()
    decision = harness.cancel()
    node = harness.node_run("dispatch")
    assert (node.status, node.result) == ("COMPLETED", "CANCELLED")
    assert (harness.run.status, harness.run.result) == ("COMPLETED", "CANCELLED")
    assert [e.node_run_id for e in harness.effects("ClearPendingClaim", decision)] == [node.id]
    kinds = [e.event.kind for e in harness.effects("EmitRunEvent", decision)]
    assert kinds == ["run.updated", "nodeRun.completed", "run.completed"]
    assert harness.run.node_run_of("next") is None


def test_graceful_cancel_lets_a_sync_webhook_finish_and_starts_nothing_after() -> None:
    harness = Harness(chain(trigger_node(), hook("call", True), hook("next", True)))
    harness.trigger()
    harness.cancel()
    assert harness.run.status == "CANCELLING"
    assert harness.run.waiting_on == [node_run_id(RUN_ID, "call")]
    harness.update("call", logs=[{"logLevel": "INFO", "log": "still going"}])
    harness.complete("call", output={"response": {"status": 200, "data": {}}})
    assert harness.node_run("call").result == "SUCCESS"
    assert (harness.run.status, harness.run.result) == ("COMPLETED", "CANCELLED")
    assert harness.run.node_run_of("next") is None


def test_a_failure_while_cancelling_still_ends_cancelled() -> None:
    harness = Harness(chain(trigger_node(), hook("call", True)))
    harness.trigger()
    harness.cancel()
    harness.complete("call", "FAILED")
    assert harness.run.result == "CANCELLED"


def test_graceful_cancel_twice_is_refused_but_force_goes_through() -> None:
    harness = Harness(chain(trigger_node(), hook("call", True)))
    harness.trigger()
    harness.cancel()
    again = harness.cancel()
    assert again.rejection is not None
    assert again.rejection.code == "run_cancelling"
    harness.cancel(force=True)
    assert harness.node_run("call").result == "CANCELLED"
    assert (harness.run.status, harness.run.result) == ("COMPLETED", "CANCELLED")


def test_force_cancel_ends_a_running_sync_webhook_and_late_reports_are_frozen() -> None:
    harness = Harness(chain(trigger_node(), hook("call", True)))
    harness.trigger()
    decision = harness.cancel(force=True)
    assert (harness.run.status, harness.run.result) == ("COMPLETED", "CANCELLED")
    assert [e.result for e in harness.effects("RunFinished", decision)] == ["CANCELLED"]
    late = harness.complete("call")
    assert late.rejection is not None
    assert late.rejection.code == "node_run_frozen"


def test_async_webhook_and_kafka_are_waiting_nodes() -> None:
    for node in (hook("wait", False), {"identifier": "wait", "config": {"type": "KAFKA"}}):
        harness = Harness(chain(trigger_node(), node))
        harness.trigger()
        harness.cancel()
        assert harness.run.result == "CANCELLED"
        assert harness.node_run("wait").result == "CANCELLED"


def test_cancelling_a_completed_run_is_refused() -> None:
    harness = Harness(chain(trigger_node()))
    harness.trigger()
    decision = harness.cancel()
    assert decision.rejection is not None
    assert decision.rejection.code == "run_completed"
