"""Workflow CRUD (SPEC §1): create, list, get, update (a new version), soft delete.

Definitions go through ``parse_workflow`` (every schema and graph problem in one
422). Admins and machine credentials edit; anyone signed in reads, and a Member's
list holds the workflows they may run.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import Response

from switchyard.bridge.auth import Ctx, CurrentActor
from switchyard.bridge.context import BridgeContext
from switchyard.bridge.credentials import Actor
from switchyard.bridge.errors import conflict, forbidden, invalid, json_response, not_found
from switchyard.bridge.models import ERRORS, WorkflowResponse, WorkflowsResponse
from switchyard.bridge.permissions import may_edit_workflows, may_run
from switchyard.bridge.policy_facts import caller_facts
from switchyard.engine.store import keys
from switchyard.engine.store.workflows import WorkflowExists, WorkflowMissing
from switchyard.schemas import SelfServeTriggerConfig, Workflow, parse_workflow
from switchyard.schemas.ids import check_identifier
from switchyard.schemas.policy import PolicyFacts

router = APIRouter(tags=["workflows"])

WorkflowIdPath = Annotated[str, Path(min_length=1, max_length=60, description="A workflow id.")]
Definition = Annotated[
    dict[str, Any],
    Body(
        description="A workflow in Port's JSON format: identifier, title, icon, description, "
        "category, allowAnyoneToViewRuns, nodes[], connections[] (see the Workflow schema).",
    ),
]


def _identifier(value: str) -> str:
    try:
        return check_identifier(value)
    except ValueError as error:
        raise invalid(f"workflow_id: {error}") from None


def _dump(workflow: Workflow) -> dict[str, Any]:
    return workflow.model_dump(mode="json", by_alias=True, exclude_none=True)


def _may_see(actor: Actor, workflow: Workflow, facts: PolicyFacts | None) -> bool:
    return actor.is_privileged or any(
        may_run(actor, node.config, facts)
        for node in workflow.nodes
        if isinstance(node.config, SelfServeTriggerConfig)
    )


async def _facts(ctx: BridgeContext, actor: Actor) -> PolicyFacts | None:
    """What trigger policies read about the caller (no form: it is not known here)."""
    return None if actor.is_privileged else await caller_facts(ctx.redis, actor)


def _editor(actor: Actor) -> None:
    if not may_edit_workflows(actor):
        raise forbidden(f"{actor.name} may not edit workflows (Admins and machines may)")


@router.post(
    "/v1/workflows",
    status_code=201,
    response_model=WorkflowResponse,
    summary="Create a workflow",
    responses=ERRORS,
)
async def create_workflow(body: Definition, ctx: Ctx, actor: CurrentActor) -> Response:
    _editor(actor)
    workflow = parse_workflow(body)
    try:
        saved = await ctx.workflows.save(workflow, create=True, now=ctx.clock())
    except WorkflowExists:
        raise conflict(f"identifier: workflow {workflow.identifier} already exists") from None
    return json_response({"ok": True, "workflow": _dump(saved)}, 201)


@router.get(
    "/v1/workflows", response_model=WorkflowsResponse, summary="List workflows", responses=ERRORS
)
async def list_workflows(
    ctx: Ctx,
    actor: CurrentActor,
    isDeleted: Annotated[bool, Query(description="List the deleted ones instead.")] = False,
) -> Response:
    found = []
    facts = await _facts(ctx, actor)
    for raw in await ctx.redis.zrange(keys.WORKFLOWS, 0, -1):
        identifier = raw.decode() if isinstance(raw, bytes) else str(raw)
        meta = await ctx.workflows.meta(identifier)
        if "version" not in meta or (meta.get("deleted") == "1") != isDeleted:
            continue
        workflow = await ctx.workflows.get(identifier, int(meta["version"]))
        if workflow is not None and _may_see(actor, workflow, facts):
            found.append(_dump(workflow))
    return json_response({"ok": True, "workflows": found})


@router.get(
    "/v1/workflows/{workflow_id}",
    response_model=WorkflowResponse,
    summary="Get a workflow (its newest version, or ?version=N)",
    description="The newest version; `version=N` returns stored version N (a run's pinned "
    "graph: stored versions stay readable after a delete, as runs do), 404 if the workflow "
    "has no version N, 422 if N is not a positive integer.",
    responses=ERRORS,
)
async def get_workflow(
    workflow_id: WorkflowIdPath,
    ctx: Ctx,
    actor: CurrentActor,
    version: Annotated[
        str | None, Query(description="A stored version (a positive integer).")
    ] = None,
) -> Response:
    pinned = _version(version)
    workflow = await ctx.workflows.get(_identifier(workflow_id), pinned)
    if workflow is None or not _may_see(actor, workflow, await _facts(ctx, actor)):
        which = f"version {pinned} of workflow" if pinned is not None else "workflow"
        raise not_found(f"{which} {workflow_id} not found")
    return json_response({"ok": True, "workflow": _dump(workflow)})


def _version(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1 or len(raw) > 18:
        raise invalid(f"query.version: must be a positive integer (got {raw!r})")
    return int(raw)


@router.put(
    "/v1/workflows/{workflow_id}",
    response_model=WorkflowResponse,
    summary="Replace a workflow (stores a new version)",
    responses=ERRORS,
)
async def update_workflow(
    workflow_id: WorkflowIdPath, body: Definition, ctx: Ctx, actor: CurrentActor
) -> Response:
    _identifier(workflow_id)
    _editor(actor)
    given = body.get("identifier", workflow_id)
    if given != workflow_id:
        raise invalid(f"identifier: must be {workflow_id}, the path's (got {given!r})")
    workflow = parse_workflow({**body, "identifier": workflow_id})
    try:
        saved = await ctx.workflows.save(workflow, create=False, now=ctx.clock())
    except WorkflowMissing:
        raise not_found(f"workflow {workflow_id} not found") from None
    return json_response({"ok": True, "workflow": _dump(saved)})


@router.delete(
    "/v1/workflows/{workflow_id}",
    response_model=WorkflowResponse,
    summary="Delete a workflow (its runs stay readable)",
    responses=ERRORS,
)
async def delete_workflow(workflow_id: WorkflowIdPath, ctx: Ctx, actor: CurrentActor) -> Response:
    _editor(actor)
    workflow = await ctx.workflows.get(_identifier(workflow_id))
    if workflow is None or not await ctx.workflows.delete(workflow_id, ctx.clock()):
        raise not_found(f"workflow {workflow_id} not found")
    return json_response({"ok": True, "workflow": _dump(workflow)})
