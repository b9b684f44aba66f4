"""``GET/PATCH /v1/organization``: the organization Port's clients read and set.

Ocean reads ``featureFlags`` at start-up; Port's execution agent says how it takes
agent webhooks with ``PATCH {settings: {portAgentStreamerName: "POLLING"|"KAFKA"}}``,
which the engine reads from ``sy:org`` (a hash: ``settings`` and ``featureFlags``, each
a JSON document). A PATCH merges ``settings`` key by key and replaces
``featureFlags``; the merge is a compare-and-set (a one-key script: redis-py's
async Redis Cluster client runs a WATCH/MULTI transaction's commands on a loop of
another thread, which fails), so two PATCHes never lose each other's keys. Machine
credentials and Admins only.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis
from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field

from switchyard.bridge.auth import Ctx, CurrentActor
from switchyard.bridge.context import BridgeContext
from switchyard.bridge.credentials import Actor
from switchyard.bridge.errors import forbidden, json_response
from switchyard.bridge.models import ERRORS, JsonObject, Lenient
from switchyard.bridge.permissions import may_operate
from switchyard.engine.store import keys

router = APIRouter(tags=["organization"])

# Set both documents if neither changed since they were read ('' for one not there).
_COMPARE_AND_SET = """
local stored = redis.call('HMGET', KEYS[1], 'settings', 'featureFlags')
if (stored[1] or '') ~= ARGV[1] or (stored[2] or '') ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'settings', ARGV[3], 'featureFlags', ARGV[4])
return 1
"""


class OrganizationChanges(Lenient):
    settings: JsonObject | None = Field(
        default=None, description="Merged into the stored settings, key by key."
    )
    featureFlags: list[str] | None = Field(
        default=None, max_length=1000, description="Replaces the stored feature flags."
    )


class OrganizationResponse(BaseModel):
    ok: bool
    organization: dict[str, Any] = Field(description="id, name, featureFlags, settings")


def _check(actor: Actor) -> None:
    if not may_operate(actor):
        raise forbidden(
            f"{actor.name} may not read or change the organization (Admins and machines may)"
        )


def _document(value: object, default: Any) -> Any:
    return orjson.loads(value) if isinstance(value, bytes | str) else default


def _answer(ctx: BridgeContext, settings: dict[str, Any], flags: list[str]) -> Response:
    org_id = str(getattr(ctx.settings, "org_id", "switchyard"))
    organization = {"id": org_id, "name": org_id, "featureFlags": flags, "settings": settings}
    return json_response({"ok": True, "organization": organization})


async def _read(client: aioredis.Redis) -> tuple[dict[str, Any], list[str]]:
    settings, flags = await client.hmget(keys.ORG, ["settings", "featureFlags"])
    return _document(settings, {}), _document(flags, [])


def _raw(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode() if value else b""


@router.get(
    "/v1/organization",
    response_model=OrganizationResponse,
    summary="The organization: feature flags and settings",
    responses=ERRORS,
)
async def get_organization(ctx: Ctx, actor: CurrentActor) -> Response:
    _check(actor)
    settings, flags = await _read(ctx.redis)
    return _answer(ctx, settings, flags)


@router.patch(
    "/v1/organization",
    response_model=OrganizationResponse,
    summary="Merge settings into the organization's, or replace its feature flags",
    responses=ERRORS,
)
async def patch_organization(body: OrganizationChanges, ctx: Ctx, actor: CurrentActor) -> Response:
    _check(actor)
    swap = ctx.redis.register_script(_COMPARE_AND_SET)
    while True:
        read = await ctx.redis.hmget(keys.ORG, ["settings", "featureFlags"])
        stored, flags = _document(read[0], {}), _document(read[1], [])
        settings = {**stored, **(body.settings or {})}
        if body.featureFlags is not None:
            flags = body.featureFlags
        new = [orjson.dumps(settings), orjson.dumps(flags)]
        if int(await swap(keys=[keys.ORG], args=[_raw(read[0]), _raw(read[1]), *new])):
            return _answer(ctx, settings, flags)
