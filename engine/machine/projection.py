"""The API shape of a run, from the stored state, logs and the pinned workflow."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from switchyard.engine.machine.graph import Graph
from switchyard.engine.machine.state import NodeRunState, RunState
from switchyard.engine.machine.waits import waits
from switchyard.schemas import (
    NodeRef,
    NodeRun,
    NodeRunLog,
    RunVariables,
    Workflow,
    WorkflowRef,
    WorkflowRun,
)


def to_workflow_run(
    state: RunState, logs_by_node_run: Mapping[str, Sequence[NodeRunLog]], workflow: Workflow
) -> WorkflowRun:
    """``GET /v1/workflows/runs/{id}``'s ``workflowRun``; ``workflow`` is the pinned
    version (it gives node titles, icons and types)."""
    return WorkflowRun(
        identifier=state.run_id,
        status=state.status,
        result=state.result,
        node_runs=[
            _node_run(nr, logs_by_node_run.get(nr.id, ()), workflow) for nr in state.node_runs
        ],
        variables=RunVariables(outputs=dict(state.outputs)),
        workflow=WorkflowRef(identifier=state.workflow_identifier, version=state.workflow_version),
        workflow_version_id=state.workflow_version,
        created_at=state.created_at,
        updated_at=state.updated_at,
        completed_at=state.completed_at,
        created_by=state.created_by,
        rerun_of=state.rerun_of,
        status_label=state.status_label,
        waiting_on=waits(state, Graph.of(workflow)),
    )


def _node_run(node_run: NodeRunState, logs: Sequence[NodeRunLog], workflow: Workflow) -> NodeRun:
    node = workflow.node(node_run.node)
    return NodeRun(
        identifier=node_run.id,
        node=NodeRef(identifier=node_run.node),
        node_title=node.title if node else None,
        node_icon=node.icon if node else None,
        node_config_type=node.type if node else "UNKNOWN",
        status=node_run.status,
        result=node_run.result,
        output=node_run.output if node_run.output is not None else {},
        node_run_logs=list(logs),
        links=list(node_run.links),
        external_run_id=node_run.external_run_id,
        created_at=node_run.created_at,
        updated_at=node_run.updated_at,
        completed_at=node_run.completed_at,
        attempt=node_run.attempt,
        retry_of=node_run.retry_of,
        reused_from=node_run.reused_from,
        status_label=node_run.status_label,
    )
