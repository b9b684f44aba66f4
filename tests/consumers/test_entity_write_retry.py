"""The entity executor waits out Redis being away instead of failing the node.

Seen in the chaos run: a ``kill -9`` of Redis made UPSERT_ENTITY nodes in flight FAILED
with ``ConnectionError: Connection closed by server``, and so their runs.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from switchyard.consumers.context import NodeLogger
from switchyard.consumers.entities import EntityExecutor
from switchyard.engine.store.entities import EntityStore, Written
from switchyard.engine.store.entity_outbox import EntityEventPublisher
from switchyard.schemas import EntityRequest
from switchyard.schemas.entity_rules import BlueprintInput
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry

pytestmark = pytest.mark.integration


class _CutTwice(EntityStore):
    """The real store, whose first two writes find the connection closed (Redis
    restarting), as the chaos run's Redis kill left them."""

    cuts = 2

    async def upsert(self, *args: Any, **kwargs: Any) -> Written:
        if self.cuts:
            self.cuts -= 1
            raise RedisConnectionError("Connection closed by server.")
        return await super().upsert(*args, **kwargs)


async def test_a_write_cut_off_by_a_redis_restart_is_made_once_it_is_back(
    topics: Settings, redis: aioredis.Redis, producer: EventProducer
) -> None:
    blueprint = f"retry-{uuid.uuid4().hex[:8]}"
    topic = TopicRegistry.from_settings(topics).entity_events.name
    store = _CutTwice(redis, EntityEventPublisher(redis, producer, topic))
    body = BlueprintInput.model_validate({"identifier": blueprint, "schema": {}})
    await store.create_blueprint(body, "tests", datetime.now(UTC))
    node_run = f"wfnr_{uuid.uuid4().hex[:16]}"
    request = EntityRequest.model_validate({
        "blueprintIdentifier": blueprint, "entity": {"identifier": "kept", "title": "t"},
        "context": {"workflowIdentifier": "wf-ent", "workflowRunId": "wfr_EntRetry00000001",
                    "nodeRunId": node_run, "nodeIdentifier": "upsert", "runId": node_run},
    })  # fmt: skip
    executor = EntityExecutor(store, lambda: datetime.now(UTC))
    outcome = await executor.execute(request, NodeLogger(lambda: datetime.now(UTC), node_run))
    assert outcome.result == "SUCCESS", outcome.output
    assert store.cuts == 0
    written = await store.get(blueprint, "kept")
    assert written is not None
    assert written.title == "t"
    assert executor.writes == 1
