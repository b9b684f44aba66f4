"""The stored state of one run: small, JSON, one value per run in Redis.

Node runs are kept without their logs (the store appends logs separately, from
``AppendLogs`` effects). What the graph walk needs is kept as connection indexes
(``taken``) and node identifiers (``dead``); everything else is derived from the
workflow version the run is pinned to.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from switchyard.schemas import (
    NodeRunId,
    NodeRunResult,
    NodeRunStatus,
    RerunOf,
    RunId,
    RunResult,
    RunStatus,
    StatusLabel,
)

STATE_FORMAT = 1


class NodeRunState(BaseModel):
    """One node run as the engine keeps it; ``output`` is the raw (masked) output."""

    model_config = ConfigDict(extra="forbid")

    id: NodeRunId
    node: str
    status: NodeRunStatus = "IN_PROGRESS"
    result: NodeRunResult | None = None
    output: Any = None
    links: list[str] = Field(default_factory=list)
    external_run_id: str | None = None
    # INTEGRATION_ACTION: the (rendered) installation its claim is pending for.
    installation_id: str | None = None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    # Action nodes: 1-based attempt, and the attempt this one retries.
    attempt: int | None = None
    retry_of: NodeRunId | None = None
    # A partial re-run's copy: the old run's node run it was copied from.
    reused_from: NodeRunId | None = None
    # When the engine fails it (node timeout); its timer is armed until then.
    deadline: datetime | None = None
    # A FAILED attempt whose retry is pending: when the next attempt starts.
    retry_at: datetime | None = None
    # It ended by its deadline: a late report is benign, not a fault.
    timed_out: bool = False
    status_label: StatusLabel | None = None

    @property
    def in_flight(self) -> bool:
        return self.status == "IN_PROGRESS"

    @property
    def retry_pending(self) -> bool:
        return self.retry_at is not None


class RunState(BaseModel):
    """Everything the machine knows about a run between two events.

    Invariant (checked by :func:`problems`): a run that is not COMPLETED has at least
    one IN_PROGRESS node run, the thing it is waiting on; a COMPLETED run has none.
    """

    model_config = ConfigDict(extra="forbid")

    format: int = STATE_FORMAT
    run_id: RunId
    workflow_identifier: str
    workflow_version: int
    # The trigger node that fired: templates see its output as .outputs.trigger too.
    trigger: str
    created_by: str
    idempotency_key: str | None = None
    status: RunStatus = "IN_PROGRESS"
    result: RunResult | None = None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    # variables.outputs: stored (masked, reshaped by `variables`) output per node.
    outputs: dict[str, Any] = Field(default_factory=dict)
    node_runs: list[NodeRunState] = Field(default_factory=list)
    # The walk: connections followed (by index) and nodes no path can reach any more.
    taken: list[int] = Field(default_factory=list)
    dead: list[str] = Field(default_factory=list)
    # Last RunEvent seq emitted, and events applied (part of effect ids).
    seq: int = 0
    step: int = 0
    # The workflow's timeoutSeconds: when the run is cancelled (forced) and FAILED.
    deadline: datetime | None = None
    rerun_of: RerunOf | None = None
    status_label: StatusLabel | None = None
    # The chain depth of an event-triggered run (RunTriggered.depth), carried by the
    # entity events its UPSERT_ENTITY nodes cause.
    depth: int = 0

    def node_run(self, node_run_id: str) -> NodeRunState | None:
        return next((nr for nr in self.node_runs if nr.id == node_run_id), None)

    def node_run_of(self, node_identifier: str) -> NodeRunState | None:
        """The node's latest node run (its last attempt), if it ran."""
        return next((nr for nr in reversed(self.node_runs) if nr.node == node_identifier), None)

    @property
    def waiting_on(self) -> list[str]:
        """Ids of the node runs the run is waiting on: IN_PROGRESS ones, and FAILED
        attempts whose retry is pending."""
        return [nr.id for nr in self.node_runs if nr.in_flight or nr.retry_pending]

    @property
    def is_completed(self) -> bool:
        return self.status == "COMPLETED"


def problems(state: RunState) -> list[str]:
    """Broken invariants of ``state`` (empty when sound); the tests check every step."""
    found = []
    if not state.is_completed and not state.waiting_on:
        found.append(f"{state.run_id} is {state.status} but waits on no node run")
    if state.is_completed and state.waiting_on:
        found.append(f"{state.run_id} is COMPLETED but {state.waiting_on} are IN_PROGRESS")
    if state.is_completed != (state.result is not None):
        found.append(f"{state.run_id}: status {state.status} with result {state.result}")
    return found


def clone_state(state: RunState) -> RunState:
    """A working copy the machine may change without touching ``state``.

    Only the containers the machine mutates are copied (the outputs dict, the lists,
    each node run); the JSON values inside are always replaced, never changed in
    place, so they are shared. A deep copy cost 11% of the engine's time; the
    harness checks after every event of every test that the given state is unchanged.
    """
    return state.model_copy(
        update={
            "outputs": dict(state.outputs),
            "node_runs": [
                nr.model_copy(update={"links": list(nr.links)}) for nr in state.node_runs
            ],
            "taken": list(state.taken),
            "dead": list(state.dead),
        }
    )


def dump_state(state: RunState) -> bytes:
    """The stored JSON; defaults are left out to keep it small."""
    return state.model_dump_json(exclude_defaults=True).encode()


def load_state(raw: bytes | str) -> RunState:
    return RunState.model_validate_json(raw)
