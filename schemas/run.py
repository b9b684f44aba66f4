"""The runs API's read models: a workflow run and its node runs (seed 001, SPEC §4).

These are what ``GET /v1/workflows/runs/{id}`` returns; the engine's stored state is
smaller and turned into these by ``switchyard.engine.machine.to_workflow_run``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from switchyard.schemas.base import WireModel
from switchyard.schemas.ids import Identifier, NodeRunId, RunId
from switchyard.schemas.timestamps import Timestamp

RunStatus = Literal["IN_PROGRESS", "CANCELLING", "COMPLETED"]
RunResult = Literal["SUCCESS", "FAILED", "CANCELLED"]
NodeRunStatus = Literal["IN_PROGRESS", "COMPLETED"]
NodeRunResult = Literal["SUCCESS", "FAILED", "CANCELLED"]
LogLevel = Literal["DEBUG", "INFO", "WARN", "ERROR"]


class NodeRunLog(WireModel):
    """One log line of a node run."""

    log_level: LogLevel
    log: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    created_at: Timestamp


class NodeRef(WireModel):
    identifier: Identifier


class WorkflowRef(WireModel):
    identifier: Identifier
    version: int


class NodeRun(WireModel):
    """One execution of one node inside a run."""

    identifier: NodeRunId
    node: NodeRef
    node_title: str | None = None
    node_icon: str | None = None
    node_config_type: str
    status: NodeRunStatus
    result: NodeRunResult | None = None
    output: Any = Field(default_factory=dict)
    node_run_logs: list[NodeRunLog] = Field(default_factory=list)
    links: list[str] = Field(default_factory=list)
    external_run_id: str | None = None
    created_at: Timestamp
    updated_at: Timestamp
    completed_at: Timestamp | None = None


class RunVariables(WireModel):
    outputs: dict[str, Any] = Field(default_factory=dict)


class WorkflowRun(WireModel):
    """A run as the API shows it; ``result`` and ``completedAt`` are null until COMPLETED."""

    identifier: RunId
    status: RunStatus
    result: RunResult | None = None
    node_runs: list[NodeRun] = Field(default_factory=list)
    variables: RunVariables = Field(default_factory=RunVariables)
    workflow: WorkflowRef
    # SPEC's older name for workflow.version; both are returned (notes §5.1).
    workflow_version_id: int
    created_at: Timestamp
    updated_at: Timestamp
    completed_at: Timestamp | None = None
    created_by: str
