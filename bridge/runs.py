"""Runs: trigger (``POST /v1/workflows/{id}/runs``), list (and ``stuck=true``), get,
cancel; re-run is in :mod:`switchyard.bridge.reruns`.

A trigger is validated here (inputs, trigger permissions), published as
``RunTriggered`` and answered with the run the engine created: the bridge waits for
the engine's ``sy:notify`` announcement (never polls), up to ``trigger_wait_ms``,
then answers 202 with the run id.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query
from fastapi.responses import Response

from switchyard.bridge.auth import Ctx, CurrentActor
from switchyard.bridge.context import BridgeContext
from switchyard.bridge.credentials import Actor
from switchyard.bridge.errors import conflict, forbidden, invalid, json_response, not_found
from switchyard.bridge.models import (
    ACCEPTED,
    ERRORS,
    OkResponse,
    TriggerRequest,
    WorkflowRunResponse,
    WorkflowRunsResponse,
)
from switchyard.bridge.permissions import may_cancel, may_list_stuck, may_run
from switchyard.bridge.policy_facts import caller_facts, needs_facts
from switchyard.bridge.run_filters import run_filters
from switchyard.bridge.run_index import RunQuery, find_runs, find_stuck
from switchyard.bridge.views import project, visible_run
from switchyard.engine.machine.trigger import pick_trigger
from switchyard.engine.store import keys
from switchyard.schemas import (
    RunCommand,
    RunTriggered,
    SelfServeTriggerConfig,
    encode,
    new_run_id,
    validate_inputs,
)
from switchyard.schemas.ids import RUN_ID_PATTERN, check_identifier

router = APIRouter(tags=["runs"])

RunIdPath = Annotated[str, Path(pattern=RUN_ID_PATTERN, description="wfr_ + 16 letters/digits")]
WorkflowIdPath = Annotated[str, Path(min_length=1, max_length=60, description="A workflow id.")]


def idempotency_key(actor: Actor, workflow: str, key: str) -> str:
    """Bridge-owned: an Idempotency-Key → its run id (see keys.py, bridge section)."""
    return f"{keys.PREFIX}bridge:idem:{actor.client_id}:{workflow}:{key}"


@router.post(
    "/v1/workflows/{workflow_id}/runs",
    status_code=201,
    response_model=WorkflowRunResponse,
    summary="Trigger a run",
    responses={**ACCEPTED, **ERRORS},
)
async def trigger_run(
    workflow_id: WorkflowIdPath,
    body: TriggerRequest,
    ctx: Ctx,
    actor: CurrentActor,
    idempotency: Annotated[
        str | None,
        Header(alias="Idempotency-Key", max_length=255, description="Repeat → the same run."),
    ] = None,
) -> Response:
    try:
        check_identifier(workflow_id)
    except ValueError as error:
        raise invalid(f"workflow_id: {error}") from None
    workflow = await ctx.workflows.get(workflow_id)
    if workflow is None:
        raise not_found(f"workflow {workflow_id} not found")
    trigger = pick_trigger(workflow, body.nodeIdentifier)
    if isinstance(trigger, str):
        raise invalid(f"body.nodeIdentifier: {trigger}")
    assert isinstance(trigger.config, SelfServeTriggerConfig)
    if not trigger.config.published:
        raise invalid(f"body.nodeIdentifier: trigger {trigger.identifier} is not published")
    facts = await caller_facts(ctx.redis, actor) if needs_facts(trigger.config) else None
    if not may_run(actor, trigger.config, facts):
        raise forbidden(f"{actor.name} may not run trigger {trigger.identifier} of {workflow_id}")
    inputs = validate_inputs(trigger.config, body.inputs)
    if facts is not None and not may_run(actor, trigger.config, replace(facts, form=inputs)):
        raise forbidden(
            f"{actor.name} may not run trigger {trigger.identifier} of {workflow_id} with these "
            "inputs: its permissions policy does not allow it"
        )
    run_id = new_run_id(os.urandom)
    if idempotency:
        key = idempotency_key(actor, workflow_id, idempotency)
        ttl = ctx.settings.idempotency_ttl_seconds
        earlier = await ctx.redis.set(key, run_id, nx=True, ex=ttl, get=True)
        if earlier is not None:
            return await answer(ctx, actor, _text(earlier), publish=None)
    event = RunTriggered(
        run_id=run_id,
        workflow_identifier=workflow.identifier,
        workflow_version=workflow.version,
        node_identifier=trigger.identifier,
        inputs=inputs,
        created_by=actor.name,
        triggered_at=ctx.clock(),
        idempotency_key=idempotency,
    )
    return await answer(ctx, actor, run_id, publish=encode(event))


async def answer(
    ctx: BridgeContext, actor: Actor, run_id: str, publish: bytes | None, key: str | None = None
) -> Response:
    """Publish (when given, keyed by ``key``, default ``run_id``) and wait for run
    ``run_id``; 201 with it, or 202 with its id. A re-run's command is keyed by the
    old run (its partition owner decides) and waited on by the new run's id."""
    waiter = ctx.notifier.expect(run_id)
    try:
        if publish is not None:
            await ctx.producer.send_and_wait(ctx.registry.inbox.name, key or run_id, publish)
        # One read covers an announcement made before we registered (a repeated
        # Idempotency-Key) or lost while the subscription was re-established.
        if not await ctx.redis.exists(keys.run(run_id, ctx.runs.tag_of(run_id))):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, ctx.settings.trigger_wait_ms / 1000)
    finally:
        ctx.notifier.forget(run_id, waiter)
    if not await ctx.redis.exists(keys.run(run_id, ctx.runs.tag_of(run_id))):
        body = {"ok": True, "workflowRun": {"identifier": run_id, "status": "IN_PROGRESS"}}
        return json_response(body, 202, {"Location": f"/v1/workflows/runs/{run_id}"})
    loaded = await visible_run(ctx, actor, run_id)
    run = await project(ctx, loaded)
    return json_response({"ok": True, "workflowRun": dump(run)}, 201)


def dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True)


@router.get(
    "/v1/workflows/runs",
    response_model=WorkflowRunsResponse,
    summary="List runs, newest first",
    description="Runs the caller may view, newest first; each filter takes repeated values "
    "(`statuses=A&statuses=B`), `statuses[]=A` or `statuses=A,B`, and the filters combine. "
    "`createdAfter`/`createdBefore` (ISO 8601, inclusive) bound `createdAt`; "
    "`entity=<blueprint>/<entity>` keeps the runs associated with that entity (recorded "
    "as each run starts). "
    "`stuck=true` (Admins and machines; 403 for others) lists only the unfinished runs whose "
    "`waitingOn` is empty, i.e. that wait on nothing: always empty in a sound system.",
    responses=ERRORS,
)
async def list_runs(
    ctx: Ctx,
    actor: CurrentActor,
    filters: Annotated[RunQuery, Depends(run_filters)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    # Bounded: Redis refuses range indexes past 64 bits (a 500 before the bound).
    offset: Annotated[int, Query(ge=0, le=10**12)] = 0,
    stuck: Annotated[
        bool,
        Query(
            description="Only runs that are not COMPLETED and wait on nothing "
            "(empty waitingOn); Admins and machines only."
        ),
    ] = False,
) -> Response:
    if stuck and not may_list_stuck(actor):
        raise forbidden(f"{actor.name} may not list stuck runs (Admins and machines may)")
    query = replace(filters, limit=limit, offset=offset)
    found = await (find_stuck if stuck else find_runs)(ctx, actor, query)
    runs = [await project(ctx, loaded) for loaded in found]
    return json_response({"ok": True, "workflowRuns": [dump(run) for run in runs]})


@router.get(
    "/v1/workflows/runs/{run_id}",
    response_model=WorkflowRunResponse,
    summary="Get a run",
    responses=ERRORS,
)
async def get_run(run_id: RunIdPath, ctx: Ctx, actor: CurrentActor) -> Response:
    run = await project(ctx, await visible_run(ctx, actor, run_id))
    return json_response({"ok": True, "workflowRun": dump(run)})


@router.post(
    "/v1/workflows/runs/{run_id}/cancel",
    response_model=OkResponse,
    summary="Cancel a run (graceful, or force=true)",
    responses=ERRORS,
)
async def cancel_run(
    run_id: RunIdPath,
    ctx: Ctx,
    actor: CurrentActor,
    force: Annotated[bool, Query(description="End running node runs at once.")] = False,
) -> Response:
    loaded = await visible_run(ctx, actor, run_id)
    if not may_cancel(actor, loaded.state.created_by):
        raise forbidden(f"{actor.name} may not cancel run {run_id}")
    if loaded.state.is_completed:
        raise conflict(f"workflow run {run_id} is already COMPLETED")
    command = RunCommand(run_id=run_id, command="cancel", force=force, by=actor.name)
    await ctx.producer.send_and_wait(ctx.registry.inbox.name, run_id, encode(command))
    return json_response({"ok": True})


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
