"""Node runs: PATCH (both paths), the logs endpoint, lookup by external run id.

The bridge checks what it can (the body, that the node run exists and is not
COMPLETED) and publishes ``NodeRunUpdated``; the engine applies it, and records the
``externalRunId`` that ``GET /v1/workflows/nodes/runs?external_run_id=`` looks up. A
worker looks its node run up right after reporting the id (Ocean's executors do), so
the bridge also notes it itself, for a few minutes, before publishing: the lookup
finds the node run as soon as the PATCH has answered.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from switchyard.bridge.auth import Ctx, CurrentActor
from switchyard.bridge.context import BridgeContext
from switchyard.bridge.credentials import Actor
from switchyard.bridge.errors import conflict, forbidden, json_response, not_found
from switchyard.bridge.models import ERRORS, LogLine, LogsRequest, NodeRunPatch, OkResponse
from switchyard.bridge.permissions import may_operate
from switchyard.bridge.runs import RunIdPath
from switchyard.bridge.views import LoadedRun, load_run, project
from switchyard.engine.machine.state import NodeRunState
from switchyard.engine.store import keys
from switchyard.engine.store.claims import ClaimStore
from switchyard.schemas import InputConfig, LogEntry, NodeRunUpdated, encode, node_uid
from switchyard.schemas.ids import NODE_RUN_ID_PATTERN

router = APIRouter(tags=["node runs"])

# How long the bridge's own note of a reported externalRunId lasts: the engine has
# applied the PATCH long before (milliseconds, normally).
_REPORTED_TTL_S = 600

NodeRunIdPath = Annotated[
    str, Path(pattern=NODE_RUN_ID_PATTERN, description="wfnr_ + 16 letters/digits")
]


async def _open_node_run(
    ctx: BridgeContext, actor: Actor, node_run_id: str, run_id: str | None
) -> tuple[LoadedRun, NodeRunState]:
    """The run and node run to update: 403, 404 or 409 (COMPLETED is frozen)."""
    if not may_operate(actor):
        raise forbidden(f"{actor.name} may not update node runs (Admins and machines may)")
    owner = await ctx.runs.run_of_node_run(node_run_id)
    if owner is None or (run_id is not None and owner != run_id):
        where = f" in workflow run {run_id}" if run_id else ""
        raise not_found(f"node run {node_run_id} not found{where}")
    loaded = await load_run(ctx, owner)
    node_run = loaded.state.node_run(node_run_id) if loaded else None
    if loaded is None or node_run is None:
        raise not_found(f"node run {node_run_id} not found")
    if node_run.status == "COMPLETED":
        # Also a late report for a node run the engine ended itself (a timeout, a
        # cancel): the engine would refuse it, so the sender learns it here.
        why = ": it timed out" if node_run.timed_out else ""
        raise conflict(
            f"node run {node_run_id} is COMPLETED ({node_run.result}{why}); it is frozen"
        )
    return loaded, node_run


def _entries(lines: list[LogLine]) -> list[LogEntry]:
    return [LogEntry(log_level=line.logLevel, log=line.log, tags=line.tags) for line in lines]


async def _claimed_owner(
    ctx: BridgeContext, actor: Actor, node_run_id: str, run_id: str | None
) -> str | None:
    """The run of a node run with a claim record, the claim/ack path's cheap check: the
    record lives exactly while its node run is open and is never an INPUT's, so the
    run's state need not be read (None: take the full check)."""
    if not may_operate(actor):
        raise forbidden(f"{actor.name} may not update node runs (Admins and machines may)")
    owner = await ClaimStore(ctx.redis, ctx.runs.partitions).owner(node_run_id)
    return owner if owner is not None and run_id in (None, owner) else None


async def _patched_run(
    ctx: BridgeContext, actor: Actor, node_run_id: str, run_id: str | None, body: NodeRunPatch
) -> str:
    """The run of the node run a PATCH may update: 403, 404 or 409 as :func:`_open_node_run`."""
    owner = await _claimed_owner(ctx, actor, node_run_id, run_id)
    if owner is not None:
        return owner
    loaded, node_run = await _open_node_run(ctx, actor, node_run_id, run_id)
    if body.status == "COMPLETED" or body.output is not None:
        node = loaded.workflow.node(node_run.node)
        if node is not None and isinstance(node.config, InputConfig):
            # The engine would refuse it (input_needs_response); say so here.
            raise conflict(
                f"node run {node_run_id} is an INPUT: its responders complete it with POST "
                f"/v1/workflows/nodes/runs/{node_run_id}/respond; a PATCH may only add logs"
            )
    return loaded.state.run_id


async def _patch(
    ctx: BridgeContext, actor: Actor, node_run_id: str, run_id: str | None, body: NodeRunPatch
) -> Response:
    event = NodeRunUpdated(
        run_id=await _patched_run(ctx, actor, node_run_id, run_id, body),
        node_run_id=node_run_id,
        status=body.status or "IN_PROGRESS",
        result=body.result,
        output=body.output,
        logs=_entries(body.logs),
        links=body.links,
        external_run_id=body.externalRunId,
        status_label=body.statusLabel,
        sent_at=ctx.clock(),
    )
    if body.externalRunId is not None:
        pending = keys.reported_external_run(body.externalRunId)
        await ctx.redis.set(pending, node_run_id, ex=_REPORTED_TTL_S)
    await ctx.producer.send_and_wait(ctx.registry.inbox.name, event.run_id, encode(event))
    return json_response({"ok": True})


@router.patch(
    "/v1/workflows/nodes/runs/{node_run_id}",
    response_model=OkResponse,
    summary="Update a node run",
    responses=ERRORS,
)
async def patch_node_run(
    node_run_id: NodeRunIdPath, body: NodeRunPatch, ctx: Ctx, actor: CurrentActor
) -> Response:
    return await _patch(ctx, actor, node_run_id, None, body)


@router.patch(
    "/v1/workflows/runs/{run_id}/nodes/{node_run_id}",
    response_model=OkResponse,
    summary="Update a node run of a run",
    responses=ERRORS,
)
async def patch_node_run_of_run(
    run_id: RunIdPath, node_run_id: NodeRunIdPath, body: NodeRunPatch, ctx: Ctx, actor: CurrentActor
) -> Response:
    return await _patch(ctx, actor, node_run_id, run_id, body)


@router.post(
    "/v1/workflows/nodes/runs/{node_run_id}/logs",
    response_model=OkResponse,
    summary="Append log lines to a node run",
    responses=ERRORS,
)
async def post_logs(
    node_run_id: NodeRunIdPath, body: LogsRequest, ctx: Ctx, actor: CurrentActor
) -> Response:
    loaded, _ = await _open_node_run(ctx, actor, node_run_id, None)
    event = NodeRunUpdated(
        run_id=loaded.state.run_id,
        node_run_id=node_run_id,
        status="IN_PROGRESS",
        logs=_entries(body.logs),
        sent_at=ctx.clock(),
    )
    await ctx.producer.send_and_wait(ctx.registry.inbox.name, event.run_id, encode(event))
    return json_response({"ok": True})


async def _rendered_config(ctx: BridgeContext, loaded: LoadedRun, node_run_id: str) -> Any:
    """The config a worker claimed (rendered, in the claim record while the node run is
    pending or acked), else the node's definition."""
    tag = ctx.runs.tag_of(loaded.state.run_id)
    raw = await ctx.redis.hget(keys.claim(node_run_id, tag), "config")
    if raw is not None:
        return orjson.loads(raw)
    node_run = loaded.state.node_run(node_run_id)
    node = loaded.workflow.node(node_run.node) if node_run else None
    return node.config.model_dump(mode="json", by_alias=True, exclude_none=True) if node else {}


@router.get(
    "/v1/workflows/nodes/runs",
    summary="Find node runs by external run id",
    responses=ERRORS,
)
async def find_node_runs(
    ctx: Ctx,
    actor: CurrentActor,
    external_run_id: Annotated[str, Query(min_length=1, description="From a PATCH.")],
    include: Annotated[
        list[str] | None, Query(description="nodeConfig (the config is always included)")
    ] = None,
) -> Response:
    if not may_operate(actor):
        raise forbidden(f"{actor.name} may not read node runs by external id")
    found: list[dict[str, Any]] = []
    applied = await ctx.runs.node_run_of_external(external_run_id)
    reported = await ctx.redis.get(keys.reported_external_run(external_run_id))
    node_run_id = applied or reported
    owner = await ctx.runs.run_of_node_run(_text(node_run_id)) if node_run_id else None
    loaded = await load_run(ctx, owner) if owner else None
    if loaded is not None:
        run = await project(ctx, loaded)
        for node_run in run.node_runs:
            # Reported but not applied yet: the node run the PATCH named.
            just_reported = node_run.external_run_id is None and node_run.identifier == _text(
                reported or b""
            )
            if node_run.external_run_id == external_run_id or just_reported:
                item = node_run.model_dump(mode="json", by_alias=True)
                config = await _rendered_config(ctx, loaded, node_run.identifier)
                item["node"]["config"] = config
                item.update(
                    config=config,
                    nodeUid=node_uid(run.workflow.identifier, node_run.node.identifier),
                    workflowRun={"identifier": run.identifier},
                )
                if just_reported:
                    item["externalRunId"] = external_run_id
                found.append(item)
    return json_response({"ok": True, "runs": found, "nodeRuns": found})


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
