"""Blueprints and entities (SPEC §4 "Entities"), in the hosted product's shapes.

Every entity change emits one entity event on ``entity-events`` (see
:mod:`switchyard.engine.store.entities`). Admins and machine credentials write;
anyone signed in reads. Bodies ignore Port's fields we don't keep (mirror and
calculation properties, ownership...); ``team`` is a string or a list.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from switchyard.bridge.auth import Ctx, CurrentActor
from switchyard.bridge.credentials import Actor
from switchyard.bridge.errors import conflict, forbidden, json_response, not_found
from switchyard.bridge.models import ERRORS, OkResponse
from switchyard.engine.store.entities import (
    BlueprintExists,
    BlueprintMissing,
    EntityExists,
    EntityMissing,
    EntityStore,
    WriteBy,
    WriteContention,
)
from switchyard.engine.store.entity_outbox import EntityEventPublisher
from switchyard.schemas.entities import Blueprint, Entity
from switchyard.schemas.entity_rules import (
    BlueprintInput,
    EntityInput,
    new_entity_identifier,
    new_event_id,
)

router = APIRouter(tags=["entities"])

BlueprintPath = Annotated[
    str,
    Path(pattern=r"^[A-Za-z0-9@_=\-]{1,100}$", description="A blueprint's identifier."),
]
EntityPath = Annotated[
    str,
    Path(pattern=r"^[A-Za-z0-9@_.+:\\=-]{1,1000}$", description="An entity's identifier."),
]


class BlueprintResponse(BaseModel):
    ok: bool
    blueprint: Blueprint


class BlueprintsResponse(BaseModel):
    ok: bool
    blueprints: list[Blueprint] = Field(description="Oldest first.")


class EntityResponse(BaseModel):
    ok: bool
    entity: Entity


class EntitiesResponse(BaseModel):
    ok: bool
    entities: list[Entity] = Field(description="Oldest first, `limit` from `offset`.")
    total: int = Field(description="How many entities the blueprint has.")


def _store(ctx: Ctx) -> EntityStore:
    # Cheap to build (two script handles); the bridge's Redis client and producer.
    publisher = EntityEventPublisher(ctx.redis, ctx.producer, ctx.registry.entity_events.name)
    return EntityStore(ctx.redis, publisher)


def _writer(actor: Actor, what: str) -> None:
    if not actor.is_privileged:
        raise forbidden(f"{actor.name} may not {what} (Admins and machine credentials may)")


def _blueprint_json(blueprint: Blueprint) -> dict[str, Any]:
    document: dict[str, Any] = blueprint.model_dump(mode="json", exclude_none=True)
    return document


def _who(ctx: Ctx, actor: Actor) -> WriteBy:
    return WriteBy(by=actor.name, event_id=new_event_id(os.urandom), now=ctx.clock())


@router.post(
    "/v1/blueprints",
    status_code=201,
    response_model=BlueprintResponse,
    summary="Create a blueprint",
    description="A blueprint is a type of entity: `schema.properties` (the property schema "
    "of a self-service form: type, enum, format, bounds), `schema.required`, and "
    "`relations` `{name: {target, many, required, title}}` to blueprints that exist (or "
    "itself). 409 when the identifier is taken.",
    responses=ERRORS,
)
async def create_blueprint(body: BlueprintInput, ctx: Ctx, actor: CurrentActor) -> Response:
    _writer(actor, "create blueprints")
    try:
        blueprint = await _store(ctx).create_blueprint(body, actor.name, ctx.clock())
    except BlueprintExists:
        raise conflict(f"identifier: blueprint {body.identifier} already exists") from None
    return json_response({"ok": True, "blueprint": _blueprint_json(blueprint)}, 201)


@router.get(
    "/v1/blueprints",
    response_model=BlueprintsResponse,
    summary="List blueprints",
    description="Every blueprint, oldest first.",
    responses=ERRORS,
)
async def list_blueprints(ctx: Ctx, _: CurrentActor) -> Response:
    found = [_blueprint_json(blueprint) for blueprint in await _store(ctx).blueprints()]
    return json_response({"ok": True, "blueprints": found})


@router.get(
    "/v1/blueprints/{blueprint_id}",
    response_model=BlueprintResponse,
    summary="Get a blueprint",
    description="404 when there is no blueprint of that identifier.",
    responses=ERRORS,
)
async def get_blueprint(blueprint_id: BlueprintPath, ctx: Ctx, _: CurrentActor) -> Response:
    blueprint = await _store(ctx).blueprint(blueprint_id)
    if blueprint is None:
        raise not_found(f"blueprint {blueprint_id} not found")
    return json_response({"ok": True, "blueprint": _blueprint_json(blueprint)})


@router.post(
    "/v1/blueprints/{blueprint_id}/entities",
    response_model=EntityResponse,
    status_code=201,
    summary="Create, replace or merge an entity",
    description="`upsert=false` (default): create; 409 if the identifier exists. "
    "`upsert=true`: create or replace it; with `merge=true` as well: create it or change "
    "only the given properties, relations and fields (a property or relation given as "
    "`null` is removed). 201 on create, 200 on update. Without `identifier` one is "
    "generated. Properties are checked against the blueprint's schema, relations "
    "against its relations (the target entities need not exist). Every change emits one "
    "entity event on `entity-events`; a write that changes nothing emits none.",
    responses={**ERRORS, 200: {"model": EntityResponse, "description": "Updated."}},
)
async def upsert_entity(
    blueprint_id: BlueprintPath,
    body: EntityInput,
    ctx: Ctx,
    actor: CurrentActor,
    upsert: Annotated[bool, Query(description="Replace the entity if it exists.")] = False,
    merge: Annotated[
        bool, Query(description="With upsert: change only what the body gives.")
    ] = False,
) -> Response:
    _writer(actor, "write entities")
    identifier = body.identifier or new_entity_identifier(os.urandom)
    try:
        written = await _store(ctx).upsert(
            blueprint_id, body, identifier, _who(ctx, actor),
            merge=upsert and merge, create_only=not upsert,
        )  # fmt: skip
    except BlueprintMissing:
        raise not_found(f"blueprint {blueprint_id} not found") from None
    except EntityExists:
        raise conflict(
            f"identifier: entity {identifier} of blueprint {blueprint_id} already exists "
            "(send upsert=true to replace it)"
        ) from None
    except WriteContention as error:
        raise conflict(str(error)) from None
    assert written.entity is not None
    return json_response(
        {"ok": True, "entity": written.entity.model_dump(mode="json")},
        201 if written.created else 200,
    )


@router.get(
    "/v1/blueprints/{blueprint_id}/entities",
    response_model=EntitiesResponse,
    summary="List a blueprint's entities",
    description="Oldest first; page with `limit` (1-1000) and `offset`.",
    responses=ERRORS,
)
async def list_entities(
    blueprint_id: BlueprintPath,
    ctx: Ctx,
    _: CurrentActor,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 100,
    # Bounded: Redis refuses ranges past 64-bit integers (a 422, not a 500).
    offset: Annotated[int, Query(ge=0, le=10**12, description="Skip this many.")] = 0,
) -> Response:
    store = _store(ctx)
    if await store.blueprint(blueprint_id) is None:
        raise not_found(f"blueprint {blueprint_id} not found")
    entities = await store.page(blueprint_id, limit=limit, offset=offset)
    return json_response(
        {"ok": True, "entities": [entity.model_dump(mode="json") for entity in entities],
         "total": await store.count(blueprint_id)}
    )  # fmt: skip


@router.get(
    "/v1/blueprints/{blueprint_id}/entities/{entity_id}",
    response_model=EntityResponse,
    summary="Get an entity",
    description="404 when the blueprint or the entity does not exist.",
    responses=ERRORS,
)
async def get_entity(
    blueprint_id: BlueprintPath, entity_id: EntityPath, ctx: Ctx, _: CurrentActor
) -> Response:
    entity = await _store(ctx).get(blueprint_id, entity_id)
    if entity is None:
        raise not_found(f"entity {entity_id} of blueprint {blueprint_id} not found")
    return json_response({"ok": True, "entity": entity.model_dump(mode="json")})


@router.delete(
    "/v1/blueprints/{blueprint_id}/entities/{entity_id}",
    response_model=OkResponse,
    summary="Delete an entity",
    description="Emits a DELETE entity event (its `diff.before` is the deleted entity). "
    "404 when it does not exist.",
    responses=ERRORS,
)
async def delete_entity(
    blueprint_id: BlueprintPath, entity_id: EntityPath, ctx: Ctx, actor: CurrentActor
) -> Response:
    _writer(actor, "delete entities")
    try:
        await _store(ctx).delete(blueprint_id, entity_id, _who(ctx, actor))
    except EntityMissing:
        raise not_found(f"entity {entity_id} of blueprint {blueprint_id} not found") from None
    except WriteContention as error:
        raise conflict(str(error)) from None
    return json_response({"ok": True})
