"""The built-in entity executor: ``UPSERT_ENTITY`` nodes against the entity store.

A handler of the worker SDK on the entity-requests topic, like the AI executor. Each
request is an upsert with merge: the entity is created if missing, otherwise only
the given fields, properties and relations change. Without ``identifier`` the node
writes the entity named after its node run. The node completes with
``{response: {data: <entity>}}``; a missing blueprint or a value the blueprint
refuses fails it with the message (and an ERROR log).

Exactly once: the write records a marker of the node run in the same Lua call
(``sy:ent:nr:{<bp>}:<node run>``, 7 days). A redelivered request (a crash before the
offset commit, a rebalance, a second executor) finds it and completes the node with
the stored entity, without writing again or emitting a second entity event. The
event's ``id`` is derived from the node-run id, ``by`` is the run id and ``origin``
names the run and its chain depth (the trigger matcher stops loops with it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime

import redis.asyncio as aioredis
from aiokafka.errors import KafkaError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from switchyard.consumers.context import NodeLogger, Outcome, WorkContext
from switchyard.consumers.kafka_worker import KafkaWorker
from switchyard.engine.store.entities import BlueprintMissing, EntityStore, WriteBy, Written
from switchyard.engine.store.entity_outbox import EntityEventPublisher, EntityOutboxRelay
from switchyard.schemas import EntityRequest
from switchyard.schemas.entities import EntityOrigin
from switchyard.schemas.entity_rules import (
    EntityInput,
    EntityInvalid,
    node_entity_identifier,
    node_event_id,
    parse_entity_input,
)
from switchyard.schemas.errors import format_problems
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry

log = logging.getLogger("switchyard.entities")


class EntityExecutor:
    """The handler: one :class:`EntityRequest` (the context's payload) to one outcome."""

    def __init__(self, store: EntityStore, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.clock = clock
        self.writes = 0  # requests that wrote (not replays): what tests count

    async def __call__(self, ctx: WorkContext) -> Outcome:
        request: EntityRequest = ctx.payload
        return await self.execute(request, ctx.log)

    async def execute(self, request: EntityRequest, log: NodeLogger) -> Outcome:
        context = request.context
        blueprint = request.blueprint_identifier
        try:
            change = parse_entity_input(request.entity, prefix="mapping")
            identifier = change.identifier or node_entity_identifier(context.node_run_id)
            origin = EntityOrigin(
                workflow_identifier=context.workflow_identifier,
                workflow_run_identifier=context.workflow_run_id,
                node_run_identifier=context.node_run_id,
                depth=request.depth,
            )
            who = WriteBy(by=context.workflow_run_id, event_id=node_event_id(context.node_run_id),
                          now=self.clock(), origin=origin)  # fmt: skip
            written = await self._upsert(blueprint, change, identifier, who)
        except BlueprintMissing as error:
            return _failed(log, f"blueprintIdentifier: {error}")
        except EntityInvalid as error:
            # The rules name entity fields (properties.x); the node's are under mapping.
            problems = [(p if p.startswith("mapping") else f"mapping.{p}", m)
                        for p, m in error.problems]  # fmt: skip
            return _failed(log, f"{format_problems(problems)} (blueprint {blueprint})")
        assert written.entity is not None
        entity = written.entity.model_dump(mode="json")
        if written.replayed:
            log.info(f"entity {identifier} was written by an earlier delivery of this node run")
        else:
            self.writes += 1
            verb = "created" if written.created else "updated" if written.event else "unchanged"
            log.info(f"entity {identifier} of blueprint {request.blueprint_identifier} {verb}")
        return Outcome.success({"response": {"data": entity}})

    async def _upsert(
        self, blueprint: str, change: EntityInput, identifier: str, who: WriteBy
    ) -> Written:
        """The write, tried again while Redis or Kafka is away (a restart, a failover):
        that is no failure of the node. Trying again is safe: a write that was made
        left its node-run marker, and the retry replays it (the outbox relay publishes
        an event whose publish was cut off)."""
        delay = _FIRST_RETRY_S
        deadline = time.monotonic() + _RETRY_FOR_S
        while True:
            try:
                return await self.store.upsert(blueprint, change, identifier, who, merge=True)
            except _UNAVAILABLE as error:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("entity write of %s failed (%r); retrying in %.1f s",
                            who.event_id, error, delay)  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_RETRY_S)


# Redis or Kafka not answering for a while (a restart, a failover).
_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, KafkaError)
_FIRST_RETRY_S = 0.1
_MAX_RETRY_S = 2.0
_RETRY_FOR_S = 120.0


def _failed(log: NodeLogger, message: str) -> Outcome:
    log.error(message)
    return Outcome.failed({"error": {"message": message}})


class EntityService:
    """The entity executor as a consumer group of the entity-requests topic (``loop``),
    and the outbox relay (``relay``) that publishes events a crash left behind."""

    def __init__(
        self, settings: Settings, producer: EventProducer, redis: aioredis.Redis,
        clock: Callable[[], datetime],
    ) -> None:  # fmt: skip
        registry = TopicRegistry.from_settings(settings)
        publisher = EntityEventPublisher(redis, producer, registry.entity_events.name)
        self.executor = EntityExecutor(EntityStore(redis, publisher), clock)
        self.relay = EntityOutboxRelay(publisher, clock)
        self.loop: KafkaWorker[EntityRequest] = KafkaWorker(
            settings,
            self.executor,
            group=f"{settings.engine_group}-entity-executor",
            instance_id=f"{settings.executor_instance_id}-entities"
            if settings.executor_instance_id
            else None,
            max_records=50,
            producer=producer,
            clock=clock,
            topic=registry.entity_requests.name,
            message_type=EntityRequest,
            metrics_name="upsert_entity",
        )
