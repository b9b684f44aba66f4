"""A fresh Redis Cluster client, connected (``client.connect``) before its first calls,
serves many at once, each once. Left to load its slot map lazily, redis-py 8's first
concurrent calls race its connections: one fails with an AttributeError, another is
sent twice after a reset (so an INCR counts two), on most fresh clients."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from switchyard.engine.store.client import connect, redis_client
from switchyard.schemas.settings import Settings

pytestmark = pytest.mark.integration

CLIENTS = 10
CALLS = 24


async def test_a_connected_client_serves_concurrent_first_calls_each_once(
    settings: Settings, redis: aioredis.Redis
) -> None:
    names = [f"sy:test:{{p{i}}}:{uuid.uuid4().hex[:8]}" for i in range(CALLS)]
    try:
        for _ in range(CLIENTS):
            fresh = redis_client(settings)
            try:
                await connect(fresh)
                await asyncio.gather(*(fresh.incr(name) for name in names))
            finally:
                await fresh.aclose()
        counts = [int(await redis.get(name) or 0) for name in names]
        assert counts == [CLIENTS] * CALLS
    finally:
        for name in names:
            await redis.delete(name)
