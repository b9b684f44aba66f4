"""Blueprints and entities in Redis; every entity change is written with its event.

A write reads the entity, computes the new one and its event with the pure rules of
:mod:`switchyard.schemas.entity_rules`, then ``write_entity.lua`` stores both only if
the entity is still what was read (compare-and-set on its exact JSON); when another
write got in between, the script hands back the entity it found and the write is
computed again. So a merge never loses a concurrent change and an event's ``before``
is exactly the entity it replaced. The event goes to the outbox in the same call and
is then published (:mod:`switchyard.engine.store.entity_outbox`).

An ``UPSERT_ENTITY`` node run's write also records a marker (``sy:ent:nr:{<bp>}:<node
run>``) in that call: a redelivered request finds it and gets the stored result back,
without a second write or event.

Every script call touches one Redis Cluster hash slot: the entity, its blueprint's
index, outbox and markers all carry the blueprint's tag (``{<bp>}``). Keys of several
blueprints are written in separate calls, each safe to repeat.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

import orjson
import redis.asyncio as aioredis

from switchyard.engine.store import keys
from switchyard.engine.store.entity_outbox import EntityEventPublisher
from switchyard.schemas import encode
from switchyard.schemas.entities import (
    Blueprint,
    Entity,
    EntityAction,
    EntityDiff,
    EntityEvent,
    EntityEventContext,
    EntityOrigin,
)
from switchyard.schemas.entity_rules import (
    NODE_MARKER_TTL_S,
    BlueprintInput,
    EntityInput,
    new_blueprint,
    next_entity,
    same_content,
)

_ATTEMPTS = 50  # compare-and-set rounds before a write gives up (only under contention)


def _lua(name: str) -> str:
    return resources.files("switchyard.engine.store").joinpath("lua", name).read_text()


def _text(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _raw(value: object) -> bytes | None:
    """A Redis string reply as bytes (the client is not decoding; None when missing)."""
    if value is None or isinstance(value, bytes):
        return value
    return str(value).encode()


class BlueprintExists(Exception):
    """A create named a blueprint identifier that is taken."""


class BlueprintMissing(Exception):
    """A write or read named a blueprint that does not exist."""


class EntityExists(Exception):
    """A create-only write named an entity that exists."""


class EntityMissing(Exception):
    """A delete named an entity that does not exist."""


class WriteContention(Exception):
    """The entity changed under every one of the write's compare-and-set attempts."""


@dataclass(frozen=True)
class Written:
    """What a write did: the entity after it (None: deleted), its event (None when
    nothing changed), whether it created the entity, and whether this is a node run's
    earlier write handed back (``replayed``: nothing was written now)."""

    entity: Entity | None
    event: EntityEvent | None
    created: bool
    replayed: bool = False


@dataclass(frozen=True)
class WriteBy:
    """Who writes: ``by`` (the API caller's name or the run id), the event id to use,
    and for an ``UPSERT_ENTITY`` node its origin (which also makes the write once-only)."""

    by: str
    event_id: str
    now: datetime
    origin: EntityOrigin | None = None


def _entity_json(entity: Entity) -> dict[str, Any]:
    document: dict[str, Any] = entity.model_dump(mode="json")
    return document


class EntityStore:
    """Blueprints and entities; shares the caller's Redis client and producer."""

    def __init__(self, client: aioredis.Redis, publisher: EntityEventPublisher) -> None:
        self.client = client
        self.publisher = publisher
        self._write = client.register_script(_lua("write_entity.lua"))

    # -- blueprints ---------------------------------------------------------------------

    async def create_blueprint(self, body: BlueprintInput, by: str, now: datetime) -> Blueprint:
        """Store a new blueprint (:class:`BlueprintInvalid`, :class:`BlueprintExists`)."""
        targets = {r.target for r in body.relations.values()} - {body.identifier}
        known = {target for target in targets if await self.blueprint(target) is not None}
        blueprint = new_blueprint(body, known, by, now)
        # Two slots, so two calls, the index first: a crash in between leaves an id
        # without a blueprint (readers skip it, a retried create fills it), never a
        # blueprint the relay, walking the index for outboxes, would not find.
        await self.client.zadd(
            keys.BLUEPRINTS, {blueprint.identifier: int(now.timestamp() * 1000)}, nx=True
        )
        document = orjson.dumps(blueprint.model_dump(mode="json", exclude_none=True))
        if not await self.client.set(keys.blueprint(blueprint.identifier), document, nx=True):
            raise BlueprintExists(f"blueprint {blueprint.identifier} already exists")
        return blueprint

    async def blueprint(self, identifier: str) -> Blueprint | None:
        raw = await self.client.get(keys.blueprint(identifier))
        return None if raw is None else Blueprint.model_validate_json(raw)

    async def blueprints(self) -> list[Blueprint]:
        ids = [_text(raw) for raw in await self.client.zrange(keys.BLUEPRINTS, 0, -1)]
        if not ids:
            return []
        # One GET each (a pipeline): blueprints live in different slots, which one MGET
        # can't span on a Redis Cluster.
        async with self.client.pipeline(transaction=False) as pipe:
            for identifier in ids:
                pipe.get(keys.blueprint(identifier))
            raws = await pipe.execute()
        return [Blueprint.model_validate_json(raw) for raw in raws if raw is not None]

    # -- entities -----------------------------------------------------------------------

    async def get(self, blueprint: str, identifier: str) -> Entity | None:
        raw = await self.client.get(keys.entity(blueprint, identifier))
        return None if raw is None else Entity.model_validate_json(raw)

    async def page(self, blueprint: str, *, limit: int, offset: int = 0) -> list[Entity]:
        """The blueprint's entities, oldest first."""
        index = keys.entities_of(blueprint)
        ids = [_text(raw) for raw in await self.client.zrange(index, offset, offset + limit - 1)]
        if not ids:
            return []
        raws = await self.client.mget([keys.entity(blueprint, identifier) for identifier in ids])
        return [Entity.model_validate_json(raw) for raw in raws if raw is not None]

    async def count(self, blueprint: str) -> int:
        return int(await self.client.zcard(keys.entities_of(blueprint)))

    async def upsert(
        self,
        blueprint_id: str,
        change: EntityInput,
        identifier: str,
        who: WriteBy,
        *,
        merge: bool,
        create_only: bool = False,
    ) -> Written:
        """Create ``identifier``, or replace it (``merge`` False) or merge ``change`` into
        it; ``create_only``: :class:`EntityExists` when it exists. Raises
        :class:`BlueprintMissing`, :class:`EntityInvalid` (its rules)."""
        blueprint = await self.blueprint(blueprint_id)
        if blueprint is None:
            raise BlueprintMissing(f"blueprint {blueprint_id} does not exist")
        key = keys.entity(blueprint_id, identifier)
        raw = _raw(await self.client.get(key))
        for _ in range(_ATTEMPTS):
            current = None if raw is None else Entity.model_validate_json(raw)
            if create_only and current is not None:
                raise EntityExists(f"entity {identifier} of blueprint {blueprint_id} exists")
            after = next_entity(current, change, blueprint=blueprint, identifier=identifier,
                                merge=merge, by=who.by, now=who.now)  # fmt: skip
            if current is not None and same_content(current, after):
                written = Written(current, None, created=False)
            else:
                action: EntityAction = "CREATE" if current is None else "UPDATE"
                written = Written(after, self._event(action, current, after, who), current is None)
            reply = await self._commit(blueprint_id, identifier, raw, written, who)
            if reply[0] == b"ok":
                if written.event is not None:
                    await self.publisher.publish(written.event)
                return written
            if reply[0] == b"done":
                return _replayed(reply[1])
            raw = reply[1] or None
        raise WriteContention(f"entity {identifier} kept changing; try again")

    async def delete(self, blueprint_id: str, identifier: str, who: WriteBy) -> Written:
        """Delete an entity (:class:`EntityMissing` when there is none)."""
        key = keys.entity(blueprint_id, identifier)
        raw = _raw(await self.client.get(key))
        for _ in range(_ATTEMPTS):
            if raw is None:
                raise EntityMissing(f"entity {identifier} of blueprint {blueprint_id} not found")
            current = Entity.model_validate_json(raw)
            written = Written(None, self._event("DELETE", current, None, who), created=False)
            reply = await self._commit(blueprint_id, identifier, raw, written, who)
            if reply[0] == b"ok":
                assert written.event is not None
                await self.publisher.publish(written.event)
                return written
            if reply[0] == b"done":
                return _replayed(reply[1])
            raw = reply[1] or None
        raise WriteContention(f"entity {identifier} kept changing; try again")

    @staticmethod
    def _event(
        action: EntityAction, before: Entity | None, after: Entity | None, who: WriteBy
    ) -> EntityEvent:
        entity = after or before
        assert entity is not None
        return EntityEvent(
            id=who.event_id,
            action=action,
            diff=EntityDiff(
                before=None if before is None else _entity_json(before),
                after=None if after is None else _entity_json(after),
            ),
            context=EntityEventContext(
                blueprint_identifier=entity.blueprint, entity_identifier=entity.identifier
            ),
            by=who.by,
            origin=who.origin,
            at=who.now,
        )

    async def _commit(
        self, blueprint_id: str, identifier: str, expected: bytes | None, written: Written,
        who: WriteBy,
    ) -> list[bytes]:  # fmt: skip
        """``write_entity.lua``: ``[b"ok"]``, ``[b"changed", stored]`` or ``[b"done", marker]``."""
        event = written.event
        if event is None:
            new = b"="  # nothing changed: only the node run's marker is recorded
        elif written.entity is None:
            new = b""
        else:
            new = orjson.dumps(_entity_json(written.entity))
        script_keys = [
            keys.entity(blueprint_id, identifier),
            keys.entities_of(blueprint_id),
            keys.entity_outbox(blueprint_id),
            keys.entity_outbox_at(blueprint_id),
        ]
        marker = b""
        if who.origin is not None:
            legacy = await self.client.get(keys.entity_node_run(who.origin.node_run_identifier))
            if legacy is not None:  # written by a release before issue 17: done then
                return [b"done", _raw(legacy) or b""]
            script_keys.append(
                keys.entity_node_run_of(blueprint_id, who.origin.node_run_identifier)
            )
            marker = orjson.dumps(
                {"eventId": None if event is None else event.id,
                 "entity": None if written.entity is None else _entity_json(written.entity),
                 "created": written.created}
            )  # fmt: skip
        reply: list[bytes] = await self._write(
            keys=script_keys,
            args=[expected or b"", new, "" if event is None else event.id,
                  b"" if event is None else encode(event), int(who.now.timestamp() * 1000),
                  identifier, NODE_MARKER_TTL_S, marker],
        )  # fmt: skip
        return reply


def _replayed(raw: bytes) -> Written:
    marker = orjson.loads(raw)
    entity = None if marker["entity"] is None else Entity.model_validate(marker["entity"])
    return Written(entity, None, created=bool(marker["created"]), replayed=True)
