"""The tests of this folder run the engine and the runs API on a Redis Cluster of their
own (three masters, started by ``tests/helpers_cluster.py``), with the session's Kafka
and topics of their own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from switchyard.engine.store.client import connect, redis_client
from switchyard.schemas.settings import Settings
from tests.consumers.stack import (  # noqa: F401  (fixtures)
    api,
    client,
    engine,
    templates,
    topics,
)
from tests.helpers_cluster import RedisServer, redis_cluster


@pytest.fixture(scope="package")
def cluster_nodes() -> Iterator[list[RedisServer]]:
    """Three masters, no replicas."""
    with redis_cluster(3, 0) as nodes:
        yield nodes


@pytest.fixture(scope="package")
def cluster_url(cluster_nodes: list[RedisServer]) -> str:
    return cluster_nodes[0].url


@pytest.fixture
def settings(settings: Settings, cluster_url: str) -> Settings:
    """The session's Kafka, topics of the test's own, the cluster for Redis."""
    return settings.model_copy(
        update={
            "redis_url": cluster_url,
            "redis_cluster": True,
            "topic_prefix": f"{settings.topic_prefix}cluster-{uuid.uuid4().hex[:6]}.",
        }
    )


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    """A cluster client (the session's is a single-node one)."""
    cluster = redis_client(settings)
    await connect(cluster)
    yield cluster
    await cluster.aclose()
