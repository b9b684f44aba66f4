"""The runs API's read models: a workflow run and its node runs (seed 001, SPEC §4).

These are what ``GET /v1/workflows/runs/{id}`` returns; the engine's stored state is
smaller and turned into these by ``switchyard.engine.machine.to_workflow_run``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from switchyard.schemas.base import WireModel
from switchyard.schemas.ids import Identifier, NodeRunId, RunId
from switchyard.schemas.timestamps import Timestamp

RunStatus = Literal["IN_PROGRESS", "CANCELLING", "COMPLETED"]
RunResult = Literal["SUCCESS", "FAILED", "CANCELLED"]
NodeRunStatus = Literal["IN_PROGRESS", "COMPLETED"]
NodeRunResult = Literal["SUCCESS", "FAILED", "CANCELLED"]
LogLevel = Literal["DEBUG", "INFO", "WARN", "ERROR"]
# What an IN_PROGRESS run waits on: a worker's report (KAFKA, async webhook), a
# claim (INTEGRATION_ACTION), an HTTP call (synchronized webhook), an approval
# (INPUT), or a timer (a retry's backoff).
WaitKind = Literal["worker", "claim", "http", "approval", "timer"]


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


class StatusLabel(WireModel):
    """A short label shown on a node run (or run): set by a worker's PATCH, or by the
    CONDITION outlet taken (``statusLabel``; the run's from ``workflowStatusLabel``)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    text: str = Field(min_length=1, max_length=200)
    variant: str | None = Field(default=None, max_length=40)


class Wait(WireModel):
    """One thing an IN_PROGRESS run waits on (SPEC §7): a run that waits on nothing
    is stuck, which the engine never lets happen."""

    node_run: NodeRunId
    kind: WaitKind
    deadline: Timestamp | None = None


class RerunOf(WireModel):
    """The run a re-run repeats; ``from_node`` set for a partial re-run (SPEC §7)."""

    model_config = ConfigDict(frozen=True)

    identifier: RunId
    from_node: Identifier | None = None


class NodeRun(WireModel):
    """One execution of one node inside a run.

    ``attempt`` (1-based) is set on action node runs, ``retry_of`` on attempts after
    the first, ``reused_from`` on node runs a partial re-run copied from the old run.
    """

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
    attempt: int | None = None
    retry_of: NodeRunId | None = None
    reused_from: NodeRunId | None = None
    status_label: StatusLabel | None = None


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
    rerun_of: RerunOf | None = None
    status_label: StatusLabel | None = None
    # Empty once COMPLETED; while not, never empty (GET /v1/workflows/runs?stuck=true).
    waiting_on: list[Wait] = Field(default_factory=list)
