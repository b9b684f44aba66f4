"""Claim and ack of pending INTEGRATION_ACTION node runs, atomic in Redis.

The engine puts a pending node run in ``sy:claims:<installation>`` with score 0
(visible now) and its rendered config in ``sy:claim:<node run>``. A claim takes the
members whose score is ≤ now and moves them to now + visibility timeout, in one
script, so two concurrent claims never return the same node run and an unacked one
comes back after its timeout. An ack sets ``acked`` and takes the node run out of
the set for good; a second ack finds ``acked`` set (409).

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

import orjson
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
from switchyard.bridge.views import load_run, project
from switchyard.engine.store import keys
from switchyard.schemas import format_timestamp, node_uid

router = APIRouter(tags=["claim and ack"])

# KEYS[1] sy:claims:<installation>. ARGV: now ms, limit, visibility ms, claim key
# prefix, then node run ids and node uids to skip. Returns [id, run, config, uid, ...]
# of the claimed ones (uid '' when the record has none yet).
_CLAIM = """
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local skip = {}
for i = 5, #ARGV do skip[ARGV[i]] = true end
local out = {}
local count = 0
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, id in ipairs(due) do
  if count >= limit then break end
  if not skip[id] then
    local claim = redis.call('HMGET', ARGV[4] .. id, 'run', 'config', 'acked', 'uid')
    if not claim[1] or claim[3] == '1' then
      redis.call('ZREM', KEYS[1], id)
    elseif not (claim[4] and skip[claim[4]]) then
      redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), id)
      table.insert(out, id)
      table.insert(out, claim[1])
      table.insert(out, claim[2] or '{}')
      table.insert(out, claim[4] or '')
      count = count + 1
    end
  end
end
return out
"""

# KEYS[1] sy:claim:<node run>, KEYS[2] sy:claims:<installation>. ARGV: uid, node run
# id, a score to hand the node run back at ('' to keep it claimed). A record the engine
# removed meanwhile (the node run ended) is not brought back.
_REMEMBER = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'uid', ARGV[1])
if ARGV[3] ~= '' then redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[2]) end
return 1
"""

# KEYS[1] sy:claim:<node run>. ARGV: node run id, claims key prefix.
# Returns [1, installation] acked now, [0, ''] unknown, [-1, installation] already acked.
_ACK = """
local claim = redis.call('HMGET', KEYS[1], 'installation', 'acked')
if not claim[1] then return {0, ''} end
if claim[2] == '1' then
  redis.call('ZREM', ARGV[2] .. claim[1], ARGV[1])
  return {-1, claim[1]}
end
redis.call('HSET', KEYS[1], 'acked', '1')
redis.call('ZREM', ARGV[2] .. claim[1], ARGV[1])
return {1, claim[1]}
"""


def _check(actor: Actor) -> None:
    if not may_operate(actor):
        raise forbidden(f"{actor.name} may not claim or ack (Admins and machines may)")


async def _claimed_node_run(
    ctx: BridgeContext, node_run_id: str, run_id: str, config: Any, until: datetime, inst: str
) -> dict[str, Any] | None:
    """The claim item: the node run as the run shows it, plus what workers parse:
    ``nodeUid``, the rendered ``config`` (also under ``node.config``), served as the
    engine stored it (an agent webhook's WEBHOOK config stays what it is)."""
    loaded = await load_run(ctx, run_id)
    if loaded is None:
        return None
    run = await project(ctx, loaded)
    node_run = next((nr for nr in run.node_runs if nr.identifier == node_run_id), None)
    if node_run is None:
        return None
    item = node_run.model_dump(mode="json", by_alias=True)
    item["node"]["config"] = config
    item.update(
        config=config,
        nodeUid=node_uid(run.workflow.identifier, node_run.node.identifier),
        pendingExecution=True,
        claimedUntil=format_timestamp(until),
        installationId=inst,
        workflowRun={"identifier": run_id},
    )
    return item


async def _claim(ctx: BridgeContext, actor: Actor, body: ClaimRequest) -> Response:
    _check(actor)
    started = time.perf_counter()
    now = ctx.clock()
    now_ms = int(now.timestamp() * 1000)
    claims_key = keys.claims(body.installationId)
    reply = await ctx.redis.eval(
        _CLAIM, 1, claims_key, now_ms, body.limit, body.visibilityTimeoutMs, keys.claim(""),
        *body.exclude,
    )  # fmt: skip
    until = datetime.fromtimestamp((now_ms + body.visibilityTimeoutMs) / 1000, UTC)
    excluded = set(body.exclude)
    node_runs = []
    for i in range(0, len(reply), 4):
        node_run_id, run_id, raw, known_uid = (_text(part) for part in reply[i : i + 4])
        item = await _claimed_node_run(
            ctx, node_run_id, run_id, orjson.loads(raw), until, body.installationId
        )
        if item is None:
            continue
        uid = item["nodeUid"]
        handed_back = uid in excluded
        if uid != known_uid or handed_back:
            back_at = str(now_ms) if handed_back else ""
            await ctx.redis.eval(
                _REMEMBER, 2, keys.claim(node_run_id), claims_key, uid, node_run_id, back_at
            )
        if not handed_back:
            node_runs.append(item)
    claim_metrics.claimed(body.installationId, len(node_runs), time.perf_counter() - started)
    return json_response({"ok": True, "nodeRuns": node_runs})


async def _ack(ctx: BridgeContext, actor: Actor, body: AckRequest) -> Response:
    _check(actor)
    node_run_id = body.nodeRunIdentifier
    result, installation = await ctx.redis.eval(
        _ACK, 1, keys.claim(node_run_id), node_run_id, keys.claims("")
    )
    outcome = {1: "acked", 0: "unknown", -1: "already_acked"}[result]
    claim_metrics.acked(_text(installation), outcome)
    if result == 0:
        raise not_found(f"node run {node_run_id} is not pending for any installation")
    if result == -1:
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


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
