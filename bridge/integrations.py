"""The integration registry an Ocean integration talks to around the workflow endpoints.

Port's integration framework (Ocean) looks itself up at start-up
(``GET /v1/integration/{id}``), creates itself when missing (``POST /v1/integration``),
patches what differs from its configuration, and fetches itself again before it acks
a node run (it needs a non-empty ``config``, its mapping). Nothing here runs work: the
registry is a JSON document per integration in ``sy:bridge:integration:<id>``,
enough for an integration built on Ocean to start and work unchanged.

Bodies ignore fields we don't know (logged at debug), as Port's do. Machine
credentials and Admins only.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import Response
from pydantic import BaseModel, Field

from switchyard.bridge.auth import Ctx, CurrentActor
from switchyard.bridge.credentials import Actor
from switchyard.bridge.errors import conflict, forbidden, json_response, not_found
from switchyard.bridge.models import ERRORS, JsonObject, Lenient, OkResponse
from switchyard.bridge.permissions import may_operate
from switchyard.engine.store import keys
from switchyard.schemas import format_timestamp

log = logging.getLogger("switchyard.bridge")
router = APIRouter(tags=["integrations"])

# What Ocean's own empty mapping (PortAppConfig with no resources) sends: a valid,
# non-empty config for an integration created with ``config: {}``.
DEFAULT_CONFIG: dict[str, Any] = {
    "deleteDependentEntities": True,
    "createMissingRelatedEntities": True,
    "enableMergeEntity": True,
    "entityDeletionThreshold": 0.9,
    "resources": [],
}

IntegrationId = Annotated[
    str,
    PathParam(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9@_.:-]+$",
        description="The integration's identifier (its installationId).",
    ),
]


class IntegrationChanges(Lenient):
    """What a PATCH may set; left out: unchanged."""

    installationAppType: str | None = Field(default=None, min_length=1, max_length=200)
    version: str | None = Field(default=None, max_length=100)
    changelogDestination: JsonObject | None = None
    config: JsonObject | None = Field(
        default=None, description="The integration's mapping; {} gets the default."
    )
    actionsProcessingEnabled: bool | None = None
    incrementalSyncEnabled: bool | None = None
    createPortResourcesOrigin: str | None = Field(default=None, max_length=100)
    processingMode: str | None = Field(default=None, max_length=100)
    arePortResourcesInitialized: bool | None = None
    spec: JsonObject | None = None
    oauthBrokerUrl: str | None = Field(default=None, max_length=2000)


class NewIntegration(IntegrationChanges):
    installationId: str = Field(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9@_.:-]+$",
        description="The integration's identifier: what its node runs name as installationId.",
    )


class ConfigChange(Lenient):
    config: JsonObject = Field(description="The integration's mapping; {} gets the default.")


class IntegrationLogs(Lenient):
    logs: list[JsonObject] = Field(default_factory=list, max_length=10_000)


class IntegrationResponse(BaseModel):
    ok: bool
    integration: dict[str, Any] = Field(
        description="identifier, installationId, installationAppType, version, config, ..."
    )


class ProvisionEnabledResponse(BaseModel):
    ok: bool
    integrations: list[str] = Field(description="Integration types Port provisions: none here.")


def _check(actor: Actor) -> None:
    if not may_operate(actor):
        raise forbidden(
            f"{actor.name} may not read or change integrations (Admins and machines may)"
        )


def _changes(body: IntegrationChanges) -> dict[str, Any]:
    changes = body.model_dump(exclude_none=True, exclude={"installationId"})
    if changes.get("config") == {}:
        changes["config"] = DEFAULT_CONFIG
    return changes


async def _load(ctx: Ctx, identifier: str) -> dict[str, Any]:
    raw = await ctx.redis.get(keys.integration(identifier))
    if raw is None:
        raise not_found(f"integration {identifier} not found; create it with POST /v1/integration")
    stored: dict[str, Any] = orjson.loads(raw)
    return stored


def _answer(request: Request, integration: dict[str, Any], status: int = 200) -> Response:
    # Ocean posts its own log lines to logAttributes.ingestUrl, and its resync
    # metrics under metricAttributes.ingestUrl: both are accepted here and dropped.
    here = f"{str(request.base_url).rstrip('/')}/v1/integration/{integration['identifier']}"
    shown = {
        **integration,
        "logAttributes": {"ingestUrl": f"{here}/logs"},
        "metricAttributes": {"ingestUrl": f"{here}/metrics"},
    }
    return json_response({"ok": True, "integration": shown}, status)


@router.get(
    "/v1/integration/provision-enabled",
    response_model=ProvisionEnabledResponse,
    summary="Integration types whose defaults Port provisions (none)",
    responses=ERRORS,
)
async def provision_enabled(ctx: Ctx, actor: CurrentActor) -> Response:
    _check(actor)
    return json_response({"ok": True, "integrations": []})


@router.post(
    "/v1/integration",
    status_code=201,
    response_model=IntegrationResponse,
    summary="Register an integration",
    responses=ERRORS,
)
async def create_integration(
    body: NewIntegration, request: Request, ctx: Ctx, actor: CurrentActor
) -> Response:
    _check(actor)
    now = format_timestamp(ctx.clock())
    integration: dict[str, Any] = {
        "identifier": body.installationId,
        "installationId": body.installationId,
        "installationType": "OnPrem",
        "config": DEFAULT_CONFIG,
        "arePortResourcesInitialized": False,
        "createdBy": actor.name,
        "createdAt": now,
        "updatedAt": now,
        **_changes(body),
    }
    created = await ctx.redis.set(
        keys.integration(body.installationId), orjson.dumps(integration), nx=True
    )
    if not created:
        raise conflict(f"integration {body.installationId} already exists; PATCH it")
    return _answer(request, integration, 201)


@router.get(
    "/v1/integration/{identifier}",
    response_model=IntegrationResponse,
    summary="Get an integration",
    responses=ERRORS,
)
async def get_integration(
    identifier: IntegrationId, request: Request, ctx: Ctx, actor: CurrentActor
) -> Response:
    _check(actor)
    return _answer(request, await _load(ctx, identifier))


async def _update(ctx: Ctx, request: Request, identifier: str, changes: dict[str, Any]) -> Response:
    integration = await _load(ctx, identifier)
    integration.update(changes, updatedAt=format_timestamp(ctx.clock()))
    # XX: an integration is never brought back by a PATCH racing its removal.
    await ctx.redis.set(keys.integration(identifier), orjson.dumps(integration), xx=True)
    return _answer(request, integration)


@router.patch(
    "/v1/integration/{identifier}",
    response_model=IntegrationResponse,
    summary="Update an integration (the fields given)",
    responses=ERRORS,
)
async def patch_integration(
    identifier: IntegrationId,
    body: IntegrationChanges,
    request: Request,
    ctx: Ctx,
    actor: CurrentActor,
) -> Response:
    _check(actor)
    return await _update(ctx, request, identifier, _changes(body))


@router.patch(
    "/v1/integration/{identifier}/config",
    response_model=IntegrationResponse,
    summary="Replace an integration's mapping",
    responses=ERRORS,
)
async def patch_integration_config(
    identifier: IntegrationId, body: ConfigChange, request: Request, ctx: Ctx, actor: CurrentActor
) -> Response:
    _check(actor)
    return await _update(ctx, request, identifier, {"config": body.config or DEFAULT_CONFIG})


@router.post(
    "/v1/integration/{identifier}/logs",
    response_model=OkResponse,
    summary="An integration's own log lines (accepted, logged at debug)",
    responses=ERRORS,
)
async def integration_logs(
    identifier: IntegrationId, body: IntegrationLogs, ctx: Ctx, actor: CurrentActor
) -> Response:
    _check(actor)
    await _load(ctx, identifier)
    log.debug("integration %s sent %d log lines", identifier, len(body.logs))
    return json_response({"ok": True})


class ResyncState(Lenient):
    """What Ocean reports around a resync (it runs none of ours: kept, shown, no more)."""

    status: str | None = Field(default=None, max_length=100)
    lastResyncStart: str | None = Field(default=None, max_length=100)
    lastResyncEnd: str | None = Field(default=None, max_length=100)
    # Bounded: the store keeps 64-bit integers at most.
    nextResync: str | Annotated[int, Field(ge=-(2**63), lt=2**63)] | float | None = None
    intervalInMinuets: int | None = Field(default=None, ge=0, lt=2**63)  # sic: Ocean's spelling


class ResyncRequestResponse(BaseModel):
    ok: bool
    request: dict[str, Any] | None = Field(description="A pending resync request: never.")


@router.patch(
    "/v1/integration/{identifier}/resync-state",
    response_model=IntegrationResponse,
    summary="Record an integration's resync state",
    responses=ERRORS,
)
async def patch_resync_state(
    identifier: IntegrationId, body: ResyncState, request: Request, ctx: Ctx, actor: CurrentActor
) -> Response:
    _check(actor)
    state = {**body.model_dump(), "updatedAt": format_timestamp(ctx.clock())}
    return await _update(ctx, request, identifier, {"resyncState": state})


@router.get(
    "/v1/integration/{identifier}/resync-request",
    response_model=ResyncRequestResponse,
    summary="A resync requested of the integration (none: Switchyard never asks for one)",
    responses=ERRORS,
)
async def get_resync_request(identifier: IntegrationId, ctx: Ctx, actor: CurrentActor) -> Response:
    _check(actor)
    await _load(ctx, identifier)
    return json_response({"ok": True, "request": None})


async def _metrics(ctx: Ctx, actor: Actor, identifier: str, rest: str) -> Response:
    _check(actor)
    await _load(ctx, identifier)
    log.debug("integration %s sent metrics to %s", identifier, rest)
    return json_response({"ok": True})


@router.post(
    "/v1/integration/{identifier}/metrics/{rest:path}",
    response_model=OkResponse,
    summary="An integration's resync metrics (syncMetrics, heartbeat): accepted, dropped",
    responses=ERRORS,
)
async def post_integration_metrics(
    identifier: IntegrationId, rest: str, ctx: Ctx, actor: CurrentActor
) -> Response:
    return await _metrics(ctx, actor, identifier, rest)


@router.put(
    "/v1/integration/{identifier}/metrics/{rest:path}",
    response_model=OkResponse,
    summary="An integration's metrics of one kind of a resync: accepted, dropped",
    responses=ERRORS,
)
async def put_integration_metrics(
    identifier: IntegrationId, rest: str, ctx: Ctx, actor: CurrentActor
) -> Response:
    return await _metrics(ctx, actor, identifier, rest)
