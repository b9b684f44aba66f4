"""``RunTriggered``: create the run and its trigger node run, then walk the graph.

A self-service trigger's output is its validated ``inputs``; an event or schedule
trigger's is the ``payload`` the trigger matcher or the scheduler put in the event.

A re-run's trigger also carries the old run's node runs to reuse: they are copied
(``reusedFrom``) and the walk follows their path, so it restarts where they end.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from switchyard.engine.machine.context import Masker
from switchyard.engine.machine.effects import Decision, reject
from switchyard.engine.machine.graph import Graph
from switchyard.engine.machine.options import MachineOptions
from switchyard.engine.machine.outcome import complete
from switchyard.engine.machine.state import RunState
from switchyard.engine.machine.step import Step
from switchyard.engine.machine.walk import advance
from switchyard.engine.templates import Templates
from switchyard.schemas import (
    EventTriggerConfig,
    InputsInvalid,
    Node,
    ReusedNodeRun,
    RunTriggered,
    ScheduleTriggerConfig,
    SelfServeTriggerConfig,
    Workflow,
    validate_inputs,
)


def pick_trigger(
    workflow: Workflow, node_identifier: str | None, *, automated: bool = False
) -> Node | str:
    """The trigger to start from, or why there is none: a self-service one, or with
    ``automated`` (an event or a schedule fired it) an EVENT_ or SCHEDULE_TRIGGER."""
    kinds = (EventTriggerConfig, ScheduleTriggerConfig) if automated else SelfServeTriggerConfig
    what = "an event or schedule trigger" if automated else "a self-service trigger"
    triggers = [n for n in workflow.nodes if isinstance(n.config, kinds)]
    if node_identifier is not None:
        chosen = [n for n in triggers if n.identifier == node_identifier]
        if not chosen:
            return f"{node_identifier!r} is not {what} of {workflow.identifier}"
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
    options: MachineOptions,
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
    automated = event.payload is not None
    trigger = pick_trigger(workflow, event.node_identifier, automated=automated)
    if isinstance(trigger, str):
        return reject(None, "no_trigger", trigger)
    config = trigger.config
    assert isinstance(config, SelfServeTriggerConfig | EventTriggerConfig | ScheduleTriggerConfig)
    if not config.published:
        return reject(None, "trigger_unpublished", f"trigger {trigger.identifier!r} is unpublished")
    if isinstance(config, SelfServeTriggerConfig):
        try:
            output = validate_inputs(config, event.inputs)
        except InputsInvalid as error:
            return reject(None, "invalid_inputs", str(error))
    else:  # the trigger matcher or the scheduler made it: its payload is the output
        output = dict(event.payload or {})
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
        rerun_of=event.rerun_of,
        depth=event.depth,
    )
    step = Step(state, graph, now, templates, secrets, Masker(secrets), options)
    step.emit("run.created")
    if workflow.timeout_seconds is not None:
        state.deadline = now + timedelta(seconds=workflow.timeout_seconds)
        step.set_timer("run_timeout", state.deadline)
    reused = {item.node_identifier: item for item in event.reuse}
    node_run = step.new_node_run(trigger)
    if trigger.identifier in reused:
        node_run.reused_from = reused.pop(trigger.identifier).node_run_id
    complete(step, node_run, output, graph.edges_out(trigger.identifier))
    for item in reused.values():
        _reuse(step, item)
    advance(step)
    return step.decision()


def _reuse(step: Step, item: ReusedNodeRun) -> None:
    """Copy a node run of the old run (a partial re-run) and follow its path out."""
    node = step.graph.nodes.get(item.node_identifier)
    if node is None or node.is_trigger:  # not in this version (a re-run on the latest)
        return
    node_run = step.new_node_run(node)
    node_run.reused_from = item.node_run_id
    node_run.output = item.output
    node_run.links = list(item.links)
    node_run.external_run_id = item.external_run_id
    if item.has_stored:
        step.state.outputs[node.identifier] = item.stored
    step.close_node_run(node_run, item.result)
    leads_to = set(item.leads_to)
    step.state.taken.extend(
        e for e in step.graph.edges_out(node.identifier) if step.graph.target(e) in leads_to
    )
