"""Claim and ack of pending INTEGRATION_ACTION node runs, atomic in Redis.

The engine puts a pending node run in ``sy:claims:<installation>`` with score 0
(visible now) and its rendered config in ``sy:claim:<node run>``. A claim takes the
members whose score is ≤ now and moves them to now + visibility timeout, in one
script call (:mod:`switchyard.engine.store.claims`: a page of due members at a time,
never all that are pending), so two concurrent claims never return the same node run
and an unacked one comes back after its timeout. An ack sets ``acked`` and takes the
node run out of the set for good; a second ack finds ``acked`` set (409).

A claim item is built from what the script returns, without projecting runs: the
record's ``view`` (the node run as the API shows it) when the engine stored one, else
the node run made from its run's stored state, which the script returns once per run.
It carries no log lines (``nodeRunLogs`` is empty: the run's page has them).

``exclude`` names node uids (what Port's workers send: ``nodeUid``, stable for a node
of a workflow) or node run ids. The engine stores the node's ``uid`` in the claim
record when it marks a node run pending, so the script skips both kinds. A record
written before it did has none: the bridge writes it on the first claim, and hands a
node run whose uid is excluded back (visible again) instead of returning it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import Response

from switchyard.bridge import metrics as claim_metrics
from switchyard.bridge.auth import Ctx, CurrentActor
from switchyard.bridge.context import BridgeContext
from switchyard.bridge.credentials import Actor
from switchyard.bridge.errors import conflict, forbidden, json_response, not_found
from switchyard.bridge.models import (
    ERRORS,
    AckRequest,
    AckResponse,
    ClaimedNodeRunsResponse,
    ClaimRequest,
)
from switchyard.bridge.permissions import may_operate
from switchyard.engine.machine.state import RunState, load_state
from switchyard.engine.store.claims import (
    ClaimBatch,
    ClaimedRecord,
    ClaimStore,
    Learned,
    node_run_view,
)
from switchyard.schemas import format_timestamp

router = APIRouter(tags=["claim and ack"])


def _check(actor: Actor) -> None:
    if not may_operate(actor):
        raise forbidden(f"{actor.name} may not claim or ack (Admins and machines may)")


async def _views(ctx: BridgeContext, batch: ClaimBatch) -> dict[str, dict[str, Any]]:
    """The views of the records that carry none, from their runs' states (each parsed
    once); a node run whose run or workflow is gone has none."""
    states: dict[str, RunState] = {}
    views: dict[str, dict[str, Any]] = {}
    for record in batch.records:
        if record.view is not None or record.run_id not in batch.states:
            continue
        state = states.get(record.run_id)
        if state is None:
            state = states[record.run_id] = load_state(batch.states[record.run_id])
        node_run = state.node_run(record.node_run_id)
        workflow = await ctx.workflows.get(state.workflow_identifier, state.workflow_version)
        if node_run is not None and workflow is not None:
            views[record.node_run_id] = node_run_view(node_run, workflow)
    return views


def _item(
    record: ClaimedRecord, view: dict[str, Any], uid: str, until: str, installation: str
) -> dict[str, Any]:
    """The claim item: the node run as the run shows it, plus what workers parse:
    ``nodeUid``, the rendered ``config`` (also under ``node.config``), served as the
    engine stored it (an agent webhook's WEBHOOK config stays what it is)."""
    config = record.config
    return {
        **view,
        "identifier": record.node_run_id,
        "node": {**view["node"], "config": config},
        "config": config,
        "nodeUid": uid,
        "pendingExecution": True,
        "claimedUntil": until,
        "installationId": installation,
        "workflowRun": {"identifier": record.run_id},
    }


async def _claim(ctx: BridgeContext, actor: Actor, body: ClaimRequest) -> Response:
    _check(actor)
    started = time.perf_counter()
    now_ms = int(ctx.clock().timestamp() * 1000)
    store = ClaimStore(ctx.redis, ctx.runs.partitions)
    batch = await store.claim(
        body.installationId, now_ms=now_ms, limit=body.limit,
        visibility_ms=body.visibilityTimeoutMs, exclude=body.exclude,
    )  # fmt: skip
    until = format_timestamp(
        datetime.fromtimestamp((now_ms + body.visibilityTimeoutMs) / 1000, UTC)
    )
    excluded = set(body.exclude)
    made = await _views(ctx, batch)
    node_runs, learned = [], []
    for record in batch.records:
        view = record.view or made.get(record.node_run_id)
        if view is None:
            continue
        uid = str(view["nodeUid"])
        handed_back = uid in excluded
        if uid != record.uid or handed_back:
            learned.append(Learned(record.node_run_id, uid, handed_back, record.tag))
        if not handed_back:
            node_runs.append(_item(record, view, uid, until, body.installationId))
    await store.remember(body.installationId, learned, now_ms)
    claim_metrics.claimed(body.installationId, len(node_runs), time.perf_counter() - started)
    return json_response({"ok": True, "nodeRuns": node_runs})


async def _ack(ctx: BridgeContext, actor: Actor, body: AckRequest) -> Response:
    _check(actor)
    node_run_id = body.nodeRunIdentifier
    outcome, installation = await ClaimStore(ctx.redis, ctx.runs.partitions).ack(node_run_id)
    claim_metrics.acked(installation, outcome)
    if outcome == "unknown":
        raise not_found(f"node run {node_run_id} is not pending for any installation")
    if outcome == "already_acked":
        raise conflict(f"node run {node_run_id} is already acknowledged")
    return json_response({"ok": True, "acked": True})


OrgPath = Annotated[str, PathParam(min_length=1, description="Organization id (ignored).")]


@router.post(
    "/v1/workflows/runs/claim-pending",
    response_model=ClaimedNodeRunsResponse,
    summary="Claim pending node runs of an installation",
    responses=ERRORS,
)
async def claim_pending(body: ClaimRequest, ctx: Ctx, actor: CurrentActor) -> Response:
    return await _claim(ctx, actor, body)


@router.post(
    "/v1/org/{org_id}/workflows/runs/claim-pending",
    response_model=ClaimedNodeRunsResponse,
    summary="Claim pending node runs of an installation (org path)",
    responses=ERRORS,
)
async def claim_pending_org(
    org_id: OrgPath, body: ClaimRequest, ctx: Ctx, actor: CurrentActor
) -> Response:
    return await _claim(ctx, actor, body)


@router.patch(
    "/v1/workflows/runs/ack",
    response_model=AckResponse,
    summary="Acknowledge a claimed node run",
    responses=ERRORS,
)
async def ack(body: AckRequest, ctx: Ctx, actor: CurrentActor) -> Response:
    return await _ack(ctx, actor, body)


@router.patch(
    "/v1/org/{org_id}/workflows/runs/ack",
    response_model=AckResponse,
    summary="Acknowledge a claimed node run (org path)",
    responses=ERRORS,
)
async def ack_org(org_id: OrgPath, body: AckRequest, ctx: Ctx, actor: CurrentActor) -> Response:
    return await _ack(ctx, actor, body)
