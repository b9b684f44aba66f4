"""The entity store's rules, as pure functions: what a blueprint and an entity must
be, and what an upsert (replace or merge) makes of the stored entity.

Shared by the bridge (HTTP 422) and the entity executor (the node fails with the
message). Properties are checked with the self-service form's value checks
(:func:`switchyard.schemas.inputs.check_value`): type, enum, format, bounds. A
relation names entities of its target blueprint by identifier (a list when
``many``); the target entities need not exist (Port's default as well: relations may
be set before their targets are ingested).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

import orjson
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from switchyard.schemas.base import WireModel
from switchyard.schemas.entities import Blueprint, BlueprintRelation, BlueprintSchema, Entity
from switchyard.schemas.errors import Problem, ProblemsError
from switchyard.schemas.inputs import check_value
from switchyard.schemas.problems import problems_from

# Port's patterns: blueprints ^[A-Za-z0-9@_=\-]+$, entities ^[A-Za-z0-9@_.+:\\/=-]+$.
_BLUEPRINT_ID = re.compile(r"^[A-Za-z0-9@_=\-]{1,100}$")
_ENTITY_ID = re.compile(r"^[A-Za-z0-9@_.+:\\/=-]{1,1000}$")
NODE_MARKER_TTL_S = 7 * 24 * 3600  # how long a node run's write is remembered


class BlueprintInvalid(ProblemsError):
    """A blueprint definition breaks a rule (HTTP 422)."""


class EntityInvalid(ProblemsError):
    """An entity does not match its blueprint, or its body is malformed (HTTP 422)."""


def check_blueprint_identifier(value: str) -> str:
    if not _BLUEPRINT_ID.match(value):
        raise ValueError(f"must be 1 to 100 letters, digits, '@', '_', '=' or '-' (got {value!r})")
    return value


def check_entity_identifier(value: str) -> str:
    if not _ENTITY_ID.match(value):
        raise ValueError(
            f"must be 1 to 1000 letters, digits or '@ _ . + : \\ / = -' (got {value!r})"
        )
    return value


def _storable(value: WireModel) -> None:
    # JSON allows numbers the store can't keep (orjson stops at 64-bit integers): a
    # problem naming the body, not a failure when the document is written.
    try:
        orjson.dumps(value.model_dump(mode="json"))
    except TypeError as error:
        raise ValueError(f"can't be stored: {error}") from None


class BlueprintInput(WireModel):
    """``POST /v1/blueprints``. Port's other blueprint fields (calculation, mirror and
    aggregation properties, ownership, changelogDestination...) are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")

    identifier: str
    title: str | None = Field(default=None, max_length=200)
    icon: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    blueprint_schema: BlueprintSchema = Field(default_factory=BlueprintSchema, alias="schema")
    relations: dict[str, BlueprintRelation] = Field(default_factory=dict)

    @field_validator("identifier")
    @classmethod
    def _identifier_ok(cls, value: str) -> str:
        return check_blueprint_identifier(value)

    @model_validator(mode="after")
    def _fits_the_store(self) -> BlueprintInput:
        _storable(self)
        return self


class EntityInput(WireModel):
    """What a write gives (an API body or a rendered ``UPSERT_ENTITY`` mapping): only
    the fields present change on a merge. Port's other entity fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    identifier: str | None = None
    title: str | None = Field(default=None, max_length=1000)
    icon: str | None = Field(default=None, max_length=200)
    team: str | list[str] | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    relations: dict[str, Any] = Field(default_factory=dict)

    @field_validator("identifier")
    @classmethod
    def _identifier_ok(cls, value: str | None) -> str | None:
        return None if value is None else check_entity_identifier(value)

    @model_validator(mode="after")
    def _fits_the_store(self) -> EntityInput:
        _storable(self)
        return self


def parse_entity_input(data: object, prefix: str = "") -> EntityInput:
    """``data`` as an :class:`EntityInput`, or :class:`EntityInvalid` naming each field."""
    try:
        return EntityInput.model_validate(data)
    except ValidationError as error:
        raise EntityInvalid(problems_from(error, prefix=prefix)) from None


def new_blueprint(
    body: BlueprintInput, known: Collection[str], by: str, now: datetime
) -> Blueprint:
    """The blueprint to store, or :class:`BlueprintInvalid`. ``known``: the blueprints
    that exist (a relation's target must be one of them, or this blueprint itself)."""
    problems: list[Problem] = [
        (f"schema.required[{index}]", f"{name!r} is not a property of the schema")
        for index, name in enumerate(body.blueprint_schema.required)
        if name not in body.blueprint_schema.properties
    ]
    problems += [
        (f"relations.{name}.target", f"blueprint {relation.target} does not exist")
        for name, relation in body.relations.items()
        if relation.target != body.identifier and relation.target not in known
    ]
    if problems:
        raise BlueprintInvalid(problems)
    return Blueprint(
        identifier=body.identifier,
        title=body.title or body.identifier,
        icon=body.icon,
        description=body.description,
        blueprint_schema=body.blueprint_schema,
        relations=body.relations,
        created_at=now,
        updated_at=now,
        created_by=by,
        updated_by=by,
    )


def _team(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _set(values: dict[str, Any]) -> dict[str, Any]:
    # null means "not set": given on a merge it removes the key.
    return {key: value for key, value in values.items() if value is not None}


def next_entity(
    current: Entity | None,
    change: EntityInput,
    *,
    blueprint: Blueprint,
    identifier: str,
    merge: bool,
    by: str,
    now: datetime,
) -> Entity:
    """What the store holds after writing ``change`` over ``current`` (None: a create).

    ``merge``: only the fields, properties and relations ``change`` gives are changed;
    otherwise the entity is replaced (its creation stamp kept). Raises
    :class:`EntityInvalid` when the result does not match ``blueprint``.
    """
    given = change.model_fields_set
    if current is None or not merge:
        entity = Entity(
            identifier=identifier,
            title=change.title,
            icon=change.icon,
            blueprint=blueprint.identifier,
            properties=_set(change.properties),
            relations=_set(change.relations),
            team=_team(change.team),
            created_at=current.created_at if current else now,
            updated_at=now,
            created_by=current.created_by if current else by,
            updated_by=by,
        )
    else:
        # Validated again (not model_copy): the stamps are cut to milliseconds as stored.
        # model_dump() is camelCase (serialize_by_alias), so the changes are too.
        entity = Entity.model_validate(
            current.model_dump()
            | {
                "title": change.title if "title" in given else current.title,
                "icon": change.icon if "icon" in given else current.icon,
                "team": _team(change.team) if "team" in given else current.team,
                "properties": _set({**current.properties, **change.properties}),
                "relations": _set({**current.relations, **change.relations}),
                "updatedAt": now,
                "updatedBy": by,
            }
        )
    problems = entity_problems(blueprint, entity)
    if problems:
        raise EntityInvalid(problems)
    return entity


def entity_problems(blueprint: Blueprint, entity: Entity) -> list[Problem]:
    """Every way ``entity`` breaks ``blueprint``'s schema and relations."""
    schema = blueprint.blueprint_schema
    problems: list[Problem] = []
    for name, value in entity.properties.items():
        prop = schema.properties.get(name)
        if prop is None:
            known = ", ".join(schema.properties) or "none"
            problems.append((f"properties.{name}",
                             f"is not a property of blueprint {blueprint.identifier} "
                             f"(properties: {known})"))  # fmt: skip
            continue
        problems += [(f"properties.{name}{sub}", msg) for sub, msg in check_value(prop, value)]
    problems += [
        (f"properties.{name}", "is required")
        for name in schema.required
        if name not in entity.properties
    ]
    for name, value in entity.relations.items():
        relation = blueprint.relations.get(name)
        if relation is None:
            known = ", ".join(blueprint.relations) or "none"
            problems.append((f"relations.{name}",
                             f"is not a relation of blueprint {blueprint.identifier} "
                             f"(relations: {known})"))  # fmt: skip
            continue
        problem = _relation_problem(relation, value)
        if problem:
            problems.append((f"relations.{name}", problem))
    problems += [
        (f"relations.{name}", "is required")
        for name, relation in blueprint.relations.items()
        if relation.required and not entity.relations.get(name)
    ]
    return problems


def _relation_problem(relation: BlueprintRelation, value: Any) -> str | None:
    target = f"entities of {relation.target}"
    if relation.many:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            return f"must be a list of identifiers of {target} (got {value!r})"
        return None
    if not isinstance(value, str):
        return f"must be the identifier of one of the {target} (got {value!r})"
    return None


def same_content(a: Entity, b: Entity) -> bool:
    """Equal but for the update stamp: writing ``b`` over ``a`` would change nothing."""
    stamp = {"updated_at", "updated_by"}
    return a.model_dump(exclude=stamp) == b.model_dump(exclude=stamp)


def _digest(value: str) -> str:
    return hashlib.blake2b(value.encode(), digest_size=10).hexdigest()


def node_entity_identifier(node_run_id: str) -> str:
    """The identifier an ``UPSERT_ENTITY`` without one writes: a function of its node
    run, so a redelivered request names the same entity."""
    return f"e_{_digest(node_run_id)}"


def node_event_id(node_run_id: str) -> str:
    """The id of the entity event a node run's write emits (one per node run)."""
    return f"evt_{node_run_id}"


def new_entity_identifier(rand: Callable[[int], bytes]) -> str:
    """A fresh identifier for an API create without one (``rand``: ``os.urandom``)."""
    return f"e_{rand(10).hex()}"


def new_event_id(rand: Callable[[int], bytes]) -> str:
    return f"evt_{rand(16).hex()}"
