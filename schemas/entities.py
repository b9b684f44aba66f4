"""The entity store's shapes: blueprints, entities and the entity event.

A blueprint is a type of entity (Port's): a property schema (the same JSON-schema-like
subset as a self-service form, checked by :func:`switchyard.schemas.inputs.check_value`)
and named relations to other blueprints. Every change of an entity, through the API or
an ``UPSERT_ENTITY`` node, is recorded with one :class:`EntityEvent` on the
``entity-events`` topic, keyed by ``<blueprint>/<identifier>``; the event-trigger
matcher consumes it. ``id`` is the dedupe key: an event may be published twice (the
outbox relay after a crash), never lost.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from switchyard.schemas.base import FrozenWireModel, WireModel
from switchyard.schemas.timestamps import Timestamp
from switchyard.schemas.user_inputs import InputProperty

EntityAction = Literal["CREATE", "UPDATE", "DELETE"]


class EntityDiff(FrozenWireModel):
    """The entity before and after the change, as the API returns it."""

    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


class EntityEventContext(FrozenWireModel):
    blueprint_identifier: str
    entity_identifier: str


class EntityOrigin(FrozenWireModel):
    """Set when an ``UPSERT_ENTITY`` node made the change: which run, and its chain
    depth (the trigger matcher refuses to start a run deeper than its limit)."""

    workflow_identifier: str
    workflow_run_identifier: str
    node_run_identifier: str
    depth: int = Field(ge=0)


class EntityEvent(FrozenWireModel):
    """One change of one entity."""

    id: str  # unique per change; for a node's write derived from its node-run id
    action: EntityAction
    diff: EntityDiff  # before None on CREATE, after None on DELETE
    context: EntityEventContext
    by: str  # the API caller's name, or the workflow run id for a node's write
    origin: EntityOrigin | None = None
    at: Timestamp

    def key(self) -> str:
        return f"{self.context.blueprint_identifier}/{self.context.entity_identifier}"


class BlueprintSchema(WireModel):
    """``schema`` of a blueprint: its properties and the names that are required."""

    # Port's blueprint schema may carry UI-only keys; keep them rather than refuse.
    model_config = ConfigDict(extra="allow")

    properties: dict[str, InputProperty] = Field(default_factory=dict)
    required: list[str] = Field(default_factory=list)


class BlueprintRelation(WireModel):
    """A named relation to entities of ``target``: one identifier, or a list if ``many``."""

    model_config = ConfigDict(extra="allow")

    title: str | None = None
    description: str | None = None
    target: str = Field(min_length=1)
    many: bool = False
    required: bool = False


class Blueprint(WireModel):
    """A stored blueprint, as ``GET /v1/blueprints/{bp}`` returns it."""

    identifier: str
    title: str
    icon: str | None = None
    description: str | None = None
    blueprint_schema: BlueprintSchema = Field(default_factory=BlueprintSchema, alias="schema")
    relations: dict[str, BlueprintRelation] = Field(default_factory=dict)
    created_at: Timestamp
    updated_at: Timestamp
    created_by: str
    updated_by: str


class Entity(WireModel):
    """A stored entity, as ``GET /v1/blueprints/{bp}/entities/{id}`` returns it.

    ``relations`` values are an identifier (or ``None``) for a single relation and a
    list of identifiers for a ``many`` one; the target entities need not exist.
    """

    identifier: str
    title: str | None = None
    icon: str | None = None
    blueprint: str
    properties: dict[str, Any] = Field(default_factory=dict)
    relations: dict[str, Any] = Field(default_factory=dict)
    team: list[str] = Field(default_factory=list)
    created_at: Timestamp
    updated_at: Timestamp
    created_by: str
    updated_by: str
