"""The graph a run page and a workflow page draw: ``dot``'s layout of a stored version.

``GET /v1/workflows/runs/{wfr}/layout``: the version the run is pinned to, visible
exactly as the run is (SPEC §6: a Member who may view an open run sees its graph
even when they may not run, nor so read, the workflow).
``GET /v1/workflows/{id}/layout?version=N``: a stored version (the newest by
default), visible as ``GET /v1/workflows/{id}`` is.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from switchyard.bridge.auth import Ctx, CurrentActor
from switchyard.bridge.credentials import Actor
from switchyard.bridge.errors import ApiError, invalid, json_response, not_found
from switchyard.bridge.graph_layout import GraphLayouts, LayoutFailed
from switchyard.bridge.models import ERRORS
from switchyard.bridge.permissions import may_run
from switchyard.bridge.policy_facts import caller_facts
from switchyard.bridge.runs import RunIdPath
from switchyard.bridge.views import visible_run
from switchyard.schemas import SelfServeTriggerConfig, Workflow
from switchyard.schemas.ids import check_identifier

router = APIRouter(tags=["workflows"])


class LayoutResponse(BaseModel):
    ok: bool
    layout: dict[str, Any] = Field(
        description="`{workflow: {identifier, version}, width, height, nodes: [{identifier, "
        "title, type, x, y, width, height}], edges: [{index, source, target, outlet, "
        "fallback, label, labelAt, points, end}]}` in points, origin top left; `x, y` is a "
        "node's centre; an edge's `points` are a start and cubic Bézier triples."
    )


DESCRIPTION = """Laid out by Graphviz `dot` on the server (kept per version: a stored
version never changes). 503 when `dot` is missing or fails."""


def layouts(request: Request) -> GraphLayouts:
    """The app's layout cache (made by :func:`switchyard.bridge.web.install`)."""
    found = getattr(request.app.state, "layouts", None)
    if not isinstance(found, GraphLayouts):
        raise RuntimeError("the app has no layout cache: call switchyard.bridge.web.install")
    return found


async def _answer(request: Request, workflow: Workflow) -> Response:
    try:
        layout = await layouts(request).layout(workflow)
    except LayoutFailed as error:
        raise ApiError(503, "layout_unavailable", str(error)) from None
    reference = {"identifier": workflow.identifier, "version": workflow.version}
    return json_response({"ok": True, "layout": {"workflow": reference, **layout}})


@router.get(
    "/v1/workflows/runs/{run_id}/layout",
    response_model=LayoutResponse,
    summary="The graph of the version a run is pinned to, laid out",
    description=DESCRIPTION,
    responses=ERRORS,
)
async def run_layout(
    request: Request, run_id: RunIdPath, ctx: Ctx, actor: CurrentActor
) -> Response:
    loaded = await visible_run(ctx, actor, run_id)
    return await _answer(request, loaded.workflow)


async def _may_see(ctx: Ctx, actor: Actor, workflow: Workflow) -> bool:
    """As ``GET /v1/workflows/{id}``: Admins, machines, and whoever may run a trigger."""
    if actor.is_privileged:
        return True
    facts = await caller_facts(ctx.redis, actor)
    return any(
        may_run(actor, node.config, facts)
        for node in workflow.nodes
        if isinstance(node.config, SelfServeTriggerConfig)
    )


@router.get(
    "/v1/workflows/{workflow_id}/layout",
    response_model=LayoutResponse,
    summary="A workflow version's graph, laid out",
    description=DESCRIPTION,
    responses=ERRORS,
)
async def workflow_layout(
    request: Request,
    workflow_id: Annotated[str, Path(min_length=1, max_length=60, description="A workflow id.")],
    ctx: Ctx,
    actor: CurrentActor,
    version: Annotated[int | None, Query(ge=1, le=10**9, description="Default: newest.")] = None,
) -> Response:
    try:
        check_identifier(workflow_id)
    except ValueError as error:
        raise invalid(f"workflow_id: {error}") from None
    newest = await ctx.workflows.get(workflow_id)
    # Visibility is the newest version's (as GET /v1/workflows/{id}), so an old
    # version's laxer permissions do not reopen a workflow.
    if newest is None or not await _may_see(ctx, actor, newest):
        raise not_found(f"workflow {workflow_id} not found")
    workflow = newest if version is None else await ctx.workflows.get(workflow_id, version)
    if workflow is None:
        raise not_found(f"workflow {workflow_id} has no version {version}")
    return await _answer(request, workflow)
