"""Entity events from the Redis outbox to the ``entity-events`` topic.

A change and its event are written together by ``write_entity.lua`` (the event into
its blueprint's outbox, ``sy:ent:outbox:{<bp>}``); the writer then publishes the
event and forgets it once Kafka acknowledged it. A writer that dies (or loses Kafka)
in between leaves the event in the outbox, and :class:`EntityOutboxRelay` publishes it
a few seconds later, walking the blueprints (``sy:bps``). So an event is never lost
but may be published twice (the writer's ack was lost, or the relay raced a slow
writer): consumers dedupe on the event ``id``.

Outboxes are per blueprint so that a write touches one Redis Cluster slot. Releases
before issue 17 had one global outbox (``sy:ent:outbox``); the relay still empties
it, so an upgraded store publishes what an older release left there (no layout step
needed: nothing writes it any more, and it drains within a pass or two).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

import redis.asyncio as aioredis
from aiokafka.errors import KafkaError

from switchyard.engine.store import keys
from switchyard.schemas import DecodeError, decode, encode
from switchyard.schemas.entities import EntityEvent
from switchyard.topics.producer import EventProducer

log = logging.getLogger("switchyard.entities")

# Both keys carry the blueprint's tag: one slot, one atomic call on a cluster too.
_FORGET = """
redis.call('HDEL', KEYS[1], unpack(ARGV))
redis.call('ZREM', KEYS[2], unpack(ARGV))
return 1
"""


def _text(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


class EntityEventPublisher:
    """Publishes outbox events keyed ``<blueprint>/<identifier>`` and forgets them."""

    def __init__(self, client: aioredis.Redis, producer: EventProducer, topic: str) -> None:
        self.client = client
        self.producer = producer
        self.topic = topic
        self._forget = client.register_script(_FORGET)

    async def publish(self, event: EntityEvent) -> bool:
        """Publish one just-written event; False (left to the relay) when Kafka failed."""
        try:
            await (await self.producer.send(self.topic, event.key(), encode(event)))
        except KafkaError as error:
            log.warning("entity event %s left in the outbox for the relay: %r", event.id, error)
            return False
        await self.forget(event.context.blueprint_identifier, [event.id])
        return True

    async def forget(self, blueprint: str | None, event_ids: Sequence[str]) -> None:
        """Drop published events from ``blueprint``'s outbox (None: the legacy one)."""
        if not event_ids:
            return
        if blueprint is not None:
            outbox = [keys.entity_outbox(blueprint), keys.entity_outbox_at(blueprint)]
            await self._forget(keys=outbox, args=list(event_ids))
            return
        # The legacy keys sit in two slots: the hash first, so a crash in between
        # leaves an id whose event is gone, which the next pass drops as "gone".
        await self.client.hdel(keys.LEGACY_ENTITY_OUTBOX, *event_ids)
        await self.client.zrem(keys.LEGACY_ENTITY_OUTBOX_AT, *event_ids)

    async def publish_left_over(self, now: datetime, min_age_s: float, batch: int = 200) -> int:
        """Publish the outbox events written more than ``min_age_s`` before ``now`` (their
        writer had time to publish them itself), of every blueprint and of an older
        release's global outbox; returns how many were published."""
        cutoff = int((now.timestamp() - min_age_s) * 1000)
        published = await self._left_over(None, cutoff, batch)
        for raw in await self.client.zrange(keys.BLUEPRINTS, 0, -1):
            published += await self._left_over(_text(raw), cutoff, batch)
        return published

    async def _left_over(self, blueprint: str | None, cutoff: int, batch: int) -> int:
        """One outbox's leftovers (None: the legacy global one)."""
        if blueprint is None:
            outbox, written_at = keys.LEGACY_ENTITY_OUTBOX, keys.LEGACY_ENTITY_OUTBOX_AT
        else:
            outbox, written_at = keys.entity_outbox(blueprint), keys.entity_outbox_at(blueprint)
        found = await self.client.zrangebyscore(written_at, "-inf", cutoff, start=0, num=batch)
        ids = [_text(raw) for raw in found]
        if not ids:
            return 0
        values = await self.client.hmget(outbox, ids)
        futures, sent, gone = [], [], []
        for event_id, value in zip(ids, values, strict=True):
            if value is None:  # published and forgotten between the two reads
                gone.append(event_id)
                continue
            raw = value if isinstance(value, bytes) else str(value).encode()
            try:
                event = decode(raw, EntityEvent)
            except DecodeError as error:
                log.error("dropping undecodable outbox entry %s: %s", event_id, error.reason)
                gone.append(event_id)
                continue
            futures.append(await self.producer.send(self.topic, event.key(), raw))
            sent.append(event_id)
        await EventProducer.flush_sent(futures)
        await self.forget(blueprint, sent + gone)
        return len(sent)


class EntityOutboxRelay:
    """Runs :meth:`EntityEventPublisher.publish_left_over` every ``interval_s``.

    Lifecycle: ``start()`` once (a second start is an error), ``stop()`` is idempotent.
    """

    def __init__(
        self,
        publisher: EntityEventPublisher,
        clock: Callable[[], datetime],
        *,
        interval_s: float = 2.0,
        min_age_s: float = 5.0,
    ) -> None:
        self.publisher = publisher
        self.clock = clock
        self.interval_s = interval_s
        self.min_age_s = min_age_s
        self.published = 0
        self._task: asyncio.Task[None] | None = None
        self._state = "new"

    async def start(self) -> None:
        if self._state != "new":
            raise RuntimeError(f"EntityOutboxRelay.start() called when {self._state}")
        self._task = asyncio.create_task(self._loop(), name="entity-outbox-relay")
        self._state = "started"

    async def stop(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._state = "stopped"

    async def __aenter__(self) -> EntityOutboxRelay:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def _loop(self) -> None:
        while True:
            try:
                self.published += await self.publisher.publish_left_over(
                    self.clock(), self.min_age_s
                )
            except (KafkaError, aioredis.RedisError) as error:
                # Kafka or Redis away: the events stay in the outbox for the next pass.
                log.warning("entity outbox relay pass failed: %r", error)
            await asyncio.sleep(self.interval_s)
