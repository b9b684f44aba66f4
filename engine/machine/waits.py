"""What an unfinished run waits on (SPEC §7): never nothing.

Every IN_PROGRESS or CANCELLING run names what it waits on, with the deadline when
one is armed; ``GET /v1/workflows/runs?stuck=true`` lists the runs for which this is
empty, which the machine never lets happen (``problems`` checks it after every
event in the tests).
"""

from __future__ import annotations

from switchyard.engine.machine.graph import Graph
from switchyard.engine.machine.state import NodeRunState, RunState
from switchyard.schemas import InputConfig, IntegrationActionConfig, Wait, WaitKind, WebhookConfig


def waits(state: RunState, graph: Graph) -> list[Wait]:
    """What ``state`` waits on, in node-run order; empty once the run is COMPLETED."""
    if state.is_completed:
        return []
    found = []
    for node_run in state.node_runs:
        if node_run.in_flight:
            found.append(Wait(node_run=node_run.id, kind=_kind(node_run, graph),
                              deadline=node_run.deadline))  # fmt: skip
        elif node_run.retry_pending:
            found.append(Wait(node_run=node_run.id, kind="timer", deadline=node_run.retry_at))
    return found


def _kind(node_run: NodeRunState, graph: Graph) -> WaitKind:
    node = graph.nodes.get(node_run.node)
    config = node.config if node is not None else None
    if isinstance(config, IntegrationActionConfig):
        return "claim"
    if isinstance(config, WebhookConfig) and config.synchronized and not config.agent:
        return "http"
    if isinstance(config, InputConfig):
        return "approval"
    return "worker"  # KAFKA, an async webhook's receiver, Port's execution agent
