"""Events the machine refuses: a Rejection with a stable code, state untouched, no effects."""

from __future__ import annotations

import pytest

from switchyard.engine.machine import decide
from switchyard.schemas import NodeRunUpdated, RunCommand, RunTriggered, TimerFired, node_run_id

from .conftest import RUN_ID, START, Harness, JqTemplates, chain, trigger_node

ENV = {"type": "string", "enum": ["staging", "production"]}


def started() -> Harness:
    harness = Harness(
        chain(trigger_node(env=ENV), {"identifier": "a", "config": {"type": "KAFKA"}})
    )
    harness.trigger({"env": "staging"})
    return harness


def test_update_for_a_run_that_does_not_exist() -> None:
    harness = Harness(chain(trigger_node()))
    decision = harness.complete("a")
    assert decision.rejection is not None
    assert decision.rejection.code == "unknown_run"
    assert decision.state is None


def test_update_for_an_unknown_node_run() -> None:
    harness = started()
    decision = harness.send(
        NodeRunUpdated(
            run_id=RUN_ID, node_run_id="wfnr_0000000000000000", status="IN_PROGRESS", sent_at=START
        )
    )
    assert decision.rejection is not None
    assert decision.rejection.code == "unknown_node_run"


def test_a_completed_node_run_is_frozen() -> None:
    harness = started()
    harness.complete("a")
    for fields in ({"status": "IN_PROGRESS"}, {"status": "COMPLETED", "result": "FAILED"}):
        decision = harness.update("a", **fields)
        assert decision.rejection is not None
        assert decision.rejection.code == "node_run_frozen"
    assert harness.run.result == "SUCCESS"


def test_the_trigger_node_run_is_frozen_from_the_start() -> None:
    harness = started()
    decision = harness.complete("trigger", "FAILED")
    assert decision.rejection is not None
    assert decision.rejection.code == "node_run_frozen"


def test_the_same_final_report_again_is_a_duplicate_not_a_conflict() -> None:
    harness = started()
    harness.complete("a")
    before = harness.run
    decision = harness.complete("a", output={"other": "output"})
    assert decision.rejection is not None
    assert decision.rejection.code == "duplicate_update"
    assert harness.run == before


def test_a_second_trigger_for_the_same_run_is_a_no_op() -> None:
    harness = started()
    state = harness.state
    decision = harness.trigger({"env": "production"})
    assert decision.rejection is not None
    assert decision.rejection.code == "duplicate_trigger"
    assert harness.state is state


@pytest.mark.parametrize(
    ("inputs", "extra", "code", "reason"),
    [
        ({"env": "prod"}, {}, "invalid_inputs", "inputs.env: must be one of staging, production"),
        ({}, {}, "invalid_inputs", "inputs.env: is required"),
        ({"env": "staging"}, {"workflow_identifier": "other"}, "workflow_mismatch", "other"),
        ({"env": "staging"}, {"workflow_version": 9}, "workflow_mismatch", "v9"),
        ({"env": "staging"}, {"node_identifier": "a"}, "no_trigger", "'a' is not a self-service"),
    ],
)
def test_bad_triggers_create_no_run(
    inputs: dict[str, str], extra: dict[str, object], code: str, reason: str
) -> None:
    harness = Harness(
        chain(trigger_node(env=ENV), {"identifier": "a", "config": {"type": "KAFKA"}})
    )
    event = RunTriggered.model_validate(
        {
            "run_id": RUN_ID,
            "workflow_identifier": "wf",
            "inputs": inputs,
            "created_by": "x",
            "triggered_at": START,
            **extra,
        }
    )
    decision = harness.send(event)
    assert decision.rejection is not None
    assert decision.rejection.code == code
    assert reason in decision.rejection.reason
    assert decision.state is None


def test_an_unpublished_trigger_can_not_start_a_run() -> None:
    node = trigger_node()
    node["config"]["published"] = False
    decision = Harness(chain(node)).trigger()
    assert decision.rejection is not None
    assert decision.rejection.code == "trigger_unpublished"


def test_two_triggers_need_a_node_identifier() -> None:
    decision = Harness(
        chain(trigger_node(), {**trigger_node(), "identifier": "t2"}, edges=[])
    ).trigger()
    assert decision.rejection is not None
    assert decision.rejection.code == "no_trigger"
    assert "nodeIdentifier is required" in decision.rejection.reason


def test_an_event_for_another_run_is_refused() -> None:
    harness = started()
    other = "wfr_ZZZZZZZZZZZZZZZZ"
    decision = harness.send(RunCommand(run_id=other, command="cancel", by="bob"))
    assert decision.rejection is not None
    assert decision.rejection.code == "wrong_run"


def test_timers_are_unknown_in_this_version() -> None:
    harness = started()
    decision = harness.send(
        TimerFired(
            run_id=RUN_ID, timer_id="t1", node_run_id=node_run_id(RUN_ID, "a"), fired_at=START
        )
    )
    assert decision.rejection is not None
    assert decision.rejection.code == "unknown_timer"


def test_an_object_that_is_not_an_event_is_refused_not_raised() -> None:
    harness = started()
    decision = decide(
        harness.state,
        object(),  # type: ignore[arg-type]
        workflow=harness.workflow,
        now=START,
        templates=JqTemplates(),
        secrets={},
    )
    assert decision.rejection is not None
    assert decision.rejection.code == "unknown_event"
