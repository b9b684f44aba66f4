"""Re-run: a new run that repeats an old one, whole or from a chosen node (SPEC §7).

The old run's partition owner decides, from the old run's state as it is: it checks
the command, force-cancels a run still in progress when told to, and publishes the
new run's ``RunTriggered`` with ``rerunOf`` and, for a partial re-run, the node runs
to reuse. The new run is then created in its own partition like any other; its id is
given by the command, or derived from the old run and the command's step, so a
redelivered command starts no second run.

Partial re-run from node F: every node run that is not downstream of F (F included)
and ended SUCCESS, or FAILED with ``onFailure: continue``, is copied with its output
and marked ``reusedFrom``; the new run then walks the same path out of them, so
execution restarts at F.
"""

from __future__ import annotations

import hashlib
from collections import deque

from switchyard.engine.machine.effects import Decision, PublishInboxEvent, reject
from switchyard.engine.machine.graph import Graph
from switchyard.engine.machine.state import NodeRunState, RunState
from switchyard.engine.machine.step import Step
from switchyard.schemas import (
    RerunOf,
    ReusedNodeRun,
    RunCommand,
    RunTriggered,
    SelfServeTriggerConfig,
    new_run_id,
)


def on_rerun(state: RunState, step: Step, event: RunCommand) -> Decision:
    if not state.is_completed and not event.force:
        return reject(
            state, "run_in_progress",
            f"run {state.run_id} is {state.status}; re-run it with force to cancel it first",
        )  # fmt: skip
    problem = _from_node_problem(state, step.graph, event.from_node)
    if problem is not None:
        return reject(state, "invalid_rerun", problem)
    if not state.is_completed:
        step.cancel_in_flight(f"cancelled by {event.by} for a re-run (force)")
        step.finish_run("CANCELLED")
    trigger = state.node_run_of(state.trigger)
    inputs = event.inputs if event.inputs is not None else _inputs_of(trigger)
    trigger_node = step.graph.nodes.get(state.trigger)
    # An event's or a schedule's run repeats with that trigger's output as its payload.
    automated = trigger_node is not None and not isinstance(
        trigger_node.config, SelfServeTriggerConfig
    )
    reuse = _reusable(state, step.graph, event.from_node) if event.from_node else []
    if event.from_node and event.inputs is None and trigger is not None:
        reuse.insert(0, _copy(trigger, state, step.graph))  # the same inputs: reused too
    new_id = event.new_run_id or _derived_run_id(state.run_id, step.state.step)
    triggered = RunTriggered(
        run_id=new_id,
        workflow_identifier=state.workflow_identifier,
        workflow_version=state.workflow_version if event.version == "pinned" else None,
        node_identifier=state.trigger,
        inputs={} if automated else inputs,
        payload=inputs if automated else None,
        depth=state.depth if automated else 0,
        created_by=event.by,
        triggered_at=step.now,
        rerun_of=RerunOf(identifier=state.run_id, from_node=event.from_node),
        reuse=reuse,
    )
    step.add(PublishInboxEvent(id=f"{state.run_id}:rerun:{step.state.step}", event=triggered))
    step.state.updated_at = step.now
    return step.decision()


def _from_node_problem(state: RunState, graph: Graph, from_node: str | None) -> str | None:
    if from_node is None:
        return None
    node = graph.nodes.get(from_node)
    if node is None:
        return f"fromNode: {from_node!r} is not a node of {state.workflow_identifier}"
    if node.is_trigger:
        return f"fromNode: {from_node!r} is a trigger; re-run without fromNode instead"
    if state.node_run_of(from_node) is None:
        return f"fromNode: node {from_node!r} did not run in {state.run_id}"
    return None


def _inputs_of(trigger: NodeRunState | None) -> dict[str, object]:
    output = trigger.output if trigger is not None else None
    return dict(output) if isinstance(output, dict) else {}


def downstream(graph: Graph, node: str) -> set[str]:
    """``node`` and every node reachable from it."""
    found, queue = {node}, deque([node])
    while queue:
        for edge in graph.edges_out(queue.popleft()):
            target = graph.target(edge)
            if target not in found:
                found.add(target)
                queue.append(target)
    return found


def _reusable(state: RunState, graph: Graph, from_node: str) -> list[ReusedNodeRun]:
    skip = downstream(graph, from_node) | {state.trigger}
    reused = []
    for node in graph.workflow.nodes:
        node_run = state.node_run_of(node.identifier)
        if node.identifier in skip or node_run is None or node_run.in_flight:
            continue
        copy = _copy(node_run, state, graph)
        if node_run.result == "SUCCESS" or (node_run.result == "FAILED" and copy.leads_to):
            reused.append(copy)
    return reused


def _copy(node_run: NodeRunState, state: RunState, graph: Graph) -> ReusedNodeRun:
    leads_to = [graph.target(e) for e in state.taken if graph.source(e) == node_run.node]
    return ReusedNodeRun(
        node_identifier=node_run.node,
        node_run_id=node_run.id,
        result=node_run.result or "SUCCESS",
        output=node_run.output,
        has_stored=node_run.node in state.outputs,
        stored=state.outputs.get(node_run.node),
        leads_to=leads_to,
        links=list(node_run.links),
        external_run_id=node_run.external_run_id,
        attempt=node_run.attempt or 1,
        created_at=node_run.created_at,
        completed_at=node_run.completed_at or node_run.updated_at,
    )


def _derived_run_id(run_id: str, step: int) -> str:
    """A run id that only this command of this run gives (redelivery-safe)."""
    digest = hashlib.blake2b(f"{run_id}\x1frerun\x1f{step}".encode(), digest_size=32).digest()
    return new_run_id(lambda n: digest[:n])
