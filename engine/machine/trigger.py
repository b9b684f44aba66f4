"""``RunTriggered``: create the run and its trigger node run, then walk the graph."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from switchyard.engine.machine.context import Masker
from switchyard.engine.machine.effects import Decision
from switchyard.engine.machine.graph import Graph
from switchyard.engine.machine.handlers import reject
from switchyard.engine.machine.outcome import complete
from switchyard.engine.machine.state import RunState
from switchyard.engine.machine.step import Step
from switchyard.engine.machine.walk import advance
from switchyard.engine.templates import Templates
from switchyard.schemas import (
    InputsInvalid,
    Node,
    RunTriggered,
    SelfServeTriggerConfig,
    Workflow,
    validate_inputs,
)


def pick_trigger(workflow: Workflow, node_identifier: str | None) -> Node | str:
    """The self-service trigger to start from, or why there is none."""
    triggers = [n for n in workflow.nodes if isinstance(n.config, SelfServeTriggerConfig)]
    if node_identifier is not None:
        chosen = [n for n in triggers if n.identifier == node_identifier]
        if not chosen:
            return f"{node_identifier!r} is not a self-service trigger of {workflow.identifier}"
        return chosen[0]
    if len(triggers) != 1:
        names = ", ".join(n.identifier for n in triggers) or "none"
        return f"nodeIdentifier is required: {workflow.identifier} has triggers {names}"
    return triggers[0]


def on_run_triggered(
    state: RunState | None,
    event: RunTriggered,
    *,
    graph: Graph,
    now: datetime,
    templates: Templates,
    secrets: Mapping[str, str],
) -> Decision:
    if state is not None:
        return reject(state, "duplicate_trigger", f"run {event.run_id} already exists")
    workflow = graph.workflow
    version = workflow.version or 1
    if event.workflow_identifier != workflow.identifier or event.workflow_version not in (
        None,
        version,
    ):
        return reject(
            None,
            "workflow_mismatch",
            f"event is for {event.workflow_identifier} v{event.workflow_version},"
            f" the engine was given {workflow.identifier} v{version}",
        )
    trigger = pick_trigger(workflow, event.node_identifier)
    if isinstance(trigger, str):
        return reject(None, "no_trigger", trigger)
    assert isinstance(trigger.config, SelfServeTriggerConfig)
    if not trigger.config.published:
        return reject(None, "trigger_unpublished", f"trigger {trigger.identifier!r} is unpublished")
    try:
        inputs = validate_inputs(trigger.config, event.inputs)
    except InputsInvalid as error:
        return reject(None, "invalid_inputs", str(error))
    state = RunState(
        run_id=event.run_id,
        workflow_identifier=workflow.identifier,
        workflow_version=version,
        trigger=trigger.identifier,
        created_by=event.created_by,
        idempotency_key=event.idempotency_key,
        created_at=now,
        updated_at=now,
        step=1,
    )
    step = Step(state, graph, now, templates, secrets, Masker(secrets))
    step.emit("run.created")
    node_run = step.new_node_run(trigger)
    complete(step, node_run, inputs, graph.edges_out(trigger.identifier))
    advance(step)
    return step.decision()
