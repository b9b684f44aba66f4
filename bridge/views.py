"""Reading runs for the API: state + logs + pinned workflow → ``WorkflowRun``, visibility."""

from __future__ import annotations

from dataclasses import dataclass

from switchyard.bridge.context import BridgeContext
from switchyard.bridge.credentials import Actor
from switchyard.bridge.errors import not_found
from switchyard.bridge.permissions import may_view
from switchyard.bridge.responders import responds_to
from switchyard.engine.machine.projection import to_workflow_run
from switchyard.engine.machine.state import RunState
from switchyard.schemas import Workflow, WorkflowRun


@dataclass(frozen=True)
class LoadedRun:
    state: RunState
    workflow: Workflow  # the version the run is pinned to


async def load_run(ctx: BridgeContext, run_id: str) -> LoadedRun | None:
    state = await ctx.runs.get(run_id)
    if state is None:
        return None
    workflow = await ctx.workflows.get(state.workflow_identifier, state.workflow_version)
    if workflow is None:
        return None
    return LoadedRun(state, workflow)


async def allow_anyone(ctx: BridgeContext, identifier: str) -> bool:
    """``allowAnyoneToViewRuns`` of the newest version (deleted workflows included)."""
    meta = await ctx.workflows.meta(identifier)
    if "version" not in meta:
        return False
    workflow = await ctx.workflows.get(identifier, int(meta["version"]))
    return workflow is not None and workflow.allow_anyone_to_view_runs


async def can_view(
    ctx: BridgeContext, actor: Actor, state: RunState, workflow: Workflow | None = None
) -> bool:
    """SPEC §6; ``workflow`` is the run's pinned version when the caller has it (its
    INPUT nodes' responders may view the run)."""
    if actor.is_privileged or state.created_by == actor.name:
        return True
    if may_view(actor, state.created_by, await allow_anyone(ctx, state.workflow_identifier)):
        return True
    if workflow is None:
        workflow = await ctx.workflows.get(state.workflow_identifier, state.workflow_version)
    return workflow is not None and responds_to(actor, workflow)


async def visible_run(ctx: BridgeContext, actor: Actor, run_id: str) -> LoadedRun:
    """The run, or 404 when it is missing or the actor may not see it (the same answer,
    so that a run's existence does not leak)."""
    loaded = await load_run(ctx, run_id)
    if loaded is None or not await can_view(ctx, actor, loaded.state, loaded.workflow):
        raise not_found(f"workflow run {run_id} not found")
    return loaded


async def project(ctx: BridgeContext, loaded: LoadedRun) -> WorkflowRun:
    state = loaded.state
    logs = await ctx.runs.logs(state.run_id, [nr.id for nr in state.node_runs])
    return to_workflow_run(state, logs, loaded.workflow)
