"""Pub/sub through the Redis Cluster client: the bridge's run announcements and the
timer service's wake-up channel subscribe on a fresh cluster client (whose slot map
is loaded by its first command; SUBSCRIBE used to fail with a KeyError before it)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import cast

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from switchyard.bridge.notify import RunNotifier
from switchyard.engine.store.client import redis_client
from switchyard.schemas.settings import Settings
from tests.helpers_cluster import redis_cluster

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster_url() -> Iterator[str]:
    with redis_cluster(3, 0) as nodes:
        yield f"redis://127.0.0.1:{nodes[0].port}/0"


@pytest.fixture
async def cluster(cluster_url: str) -> AsyncIterator[aioredis.Redis]:
    client = redis_client(Settings(redis_url=cluster_url, redis_cluster=True))
    # Typed as Redis by the factory (engine/store/client.py says why): checked here.
    assert isinstance(cast(object, client), RedisCluster)
    try:
        yield client
    finally:
        await client.aclose()


async def test_the_bridge_is_told_of_a_new_run_through_a_cluster(cluster: aioredis.Redis) -> None:
    notifier = RunNotifier(cluster)  # the client's first command is the SUBSCRIBE's
    await notifier.start()
    try:
        run_id = f"wfr_{uuid.uuid4().hex[:16]}"
        announced = notifier.expect(run_id)
        publisher = redis_client(Settings(redis_url=_url(cluster), redis_cluster=True))
        try:
            # PUBLISH goes to one node; the cluster's bus carries it to the subscriber's.
            while not announced.done():
                await publisher.publish("sy:notify", run_id)
                await asyncio.wait({announced}, timeout=0.2)
        finally:
            await publisher.aclose()
        assert announced.done()
        assert not announced.cancelled()
    finally:
        await notifier.stop()


def _url(client: aioredis.Redis) -> str:
    node = client.get_default_node()  # type: ignore[attr-defined]
    return f"redis://{node.host}:{node.port}/0"
