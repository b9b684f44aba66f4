"""Re-run: ``POST /v1/workflows/runs/{wfr}/rerun`` (SPEC §4, §7).

The bridge checks what it can against the old run's state and the workflow version
the new run will use (who may, whether the old run is finished, ``fromNode``,
``inputs``), picks the new run's id and publishes ``RunCommand(rerun)`` keyed by
the OLD run: that run's partition owner decides (and, with ``force``, cancels a run
still in progress in the same step), then publishes the new run's ``RunTriggered``
with ``rerunOf`` (and, for a partial re-run, the node runs to reuse). The answer
waits for the new run as a trigger's does: 201 with it, or 202 with its id.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import Response

from switchyard.bridge.auth import Ctx, CurrentActor
from switchyard.bridge.context import BridgeContext
from switchyard.bridge.errors import conflict, forbidden, invalid
from switchyard.bridge.models import ACCEPTED, ERRORS, RerunRequest, WorkflowRunResponse
from switchyard.bridge.permissions import may_cancel
from switchyard.bridge.runs import RunIdPath, answer
from switchyard.bridge.views import LoadedRun, visible_run
from switchyard.engine.machine.state import RunState
from switchyard.engine.machine.trigger import pick_trigger
from switchyard.schemas import (
    InputsInvalid,
    RunCommand,
    SelfServeTriggerConfig,
    TriggerConfig,
    Workflow,
    encode,
    new_run_id,
    validate_inputs,
)

router = APIRouter(tags=["runs"])


DESCRIPTION = """A new run that repeats this one, linked to it by `rerunOf: {identifier,
fromNode}`. Without `fromNode`: a whole re-run, with the old run's inputs or the given
ones (validated as a trigger's, `body.inputs.<field>`). With `fromNode`: a partial
re-run; the node runs that are not downstream of it are reused with their outputs
(each marked `reusedFrom`) and execution restarts at `fromNode`, which must have run
in the old run. `version`: the old run's workflow version (`pinned`, the default) or
the newest (`latest`). Allowed to the run's creator, Admins and machines. 409 while
the old run is not COMPLETED, unless `force: true` (it is then cancelled first)."""


@router.post(
    "/v1/workflows/runs/{run_id}/rerun",
    status_code=201,
    response_model=WorkflowRunResponse,
    summary="Re-run a run, whole or from a node",
    description=DESCRIPTION,
    responses={**ACCEPTED, **ERRORS},
)
async def rerun_run(
    run_id: RunIdPath,
    ctx: Ctx,
    actor: CurrentActor,
    body: Annotated[RerunRequest | None, Body()] = None,
) -> Response:
    request = body or RerunRequest()
    loaded = await visible_run(ctx, actor, run_id)
    state = loaded.state
    if not may_cancel(actor, state.created_by):
        raise forbidden(
            f"{actor.name} may not re-run run {run_id} (its creator, Admins and machines may)"
        )
    if not state.is_completed and not request.force:
        raise conflict(
            f"workflow run {run_id} is {state.status}; re-run it once it is COMPLETED, "
            "or give body.force: true to cancel it first"
        )
    workflow = await _version_used(ctx, loaded, request)
    trigger = _trigger_of(workflow, state)
    if request.fromNode is not None:
        _check_from_node(state, workflow, request.fromNode)
    new_id = new_run_id(os.urandom)
    command = RunCommand(
        run_id=run_id,
        command="rerun",
        force=request.force,
        by=actor.name,
        new_run_id=new_id,
        inputs=_inputs(trigger, state, workflow, request),
        from_node=request.fromNode,
        version=request.version,
    )
    return await answer(ctx, actor, new_id, publish=encode(command), key=run_id)


def _label(workflow: Workflow) -> str:
    return f"{workflow.identifier} v{workflow.version}"


async def _version_used(ctx: BridgeContext, loaded: LoadedRun, request: RerunRequest) -> Workflow:
    if request.version == "pinned":
        return loaded.workflow
    identifier = loaded.state.workflow_identifier
    latest = await ctx.workflows.get(identifier)
    if latest is None:
        raise invalid(
            f"body.version: workflow {identifier} is deleted, so it has no latest version; "
            "re-run with version: pinned"
        )
    return latest


def _trigger_of(workflow: Workflow, state: RunState) -> TriggerConfig:
    """The old run's trigger as ``workflow`` has it (a newer version may lack it). An
    event- or schedule-triggered run is re-run with the old trigger's output."""
    node = workflow.node(state.trigger)
    automated = node is not None and not isinstance(node.config, SelfServeTriggerConfig)
    trigger = pick_trigger(workflow, state.trigger, automated=automated)
    if isinstance(trigger, str):
        raise invalid(f"body.version: {trigger} (in {_label(workflow)}); re-run pinned")
    assert isinstance(trigger.config, TriggerConfig)
    if not trigger.config.published:
        raise invalid(f"body.version: trigger {trigger.identifier} of {_label(workflow)} "
                      "is not published")  # fmt: skip
    return trigger.config


def _check_from_node(state: RunState, workflow: Workflow, from_node: str) -> None:
    node = workflow.node(from_node)
    if node is None:
        raise invalid(f"body.fromNode: {from_node!r} is not a node of {_label(workflow)}")
    if node.is_trigger:
        raise invalid(
            f"body.fromNode: {from_node!r} is a trigger; leave fromNode out for a whole re-run"
        )
    if state.node_run_of(from_node) is None:
        ran = ", ".join(dict.fromkeys(nr.node for nr in state.node_runs)) or "none"
        raise invalid(
            f"body.fromNode: {from_node!r} did not run in {state.run_id} (nodes that ran: {ran})"
        )


def _inputs(
    trigger: TriggerConfig, state: RunState, workflow: Workflow, request: RerunRequest
) -> dict[str, Any] | None:
    """The inputs to send: the given ones, validated; None (the engine copies the old
    run's) when left out, after checking the old ones fit a newer version's trigger."""
    if not isinstance(trigger, SelfServeTriggerConfig):
        if request.inputs is not None:
            raise invalid(
                f"body.inputs: {state.run_id} was started by its {trigger.type}, which has no "
                "inputs; leave inputs out (the re-run gets the old trigger's output)"
            )
        return None
    if request.inputs is not None:
        try:
            return validate_inputs(trigger, request.inputs)
        except InputsInvalid as error:
            raise InputsInvalid([(f"body.{path}", text) for path, text in error.problems]) from None
    if request.version == "latest" and workflow.version != state.workflow_version:
        old = state.node_run_of(state.trigger)
        try:
            validate_inputs(trigger, old.output if old and old.output is not None else {})
        except InputsInvalid as error:
            raise invalid(
                f"body.inputs: left out, and the inputs of {state.run_id} do not fit the "
                f"trigger of {_label(workflow)} ({error}); give inputs"
            ) from None
    return None
