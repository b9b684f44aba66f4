"""`topics ensure` rides out a broker that the metadata lists before it listens."""

from __future__ import annotations

from typing import Any, cast

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import NodeNotReadyError, TopicAuthorizationFailedError

from switchyard.topics.admin import _partition_counts_retried
from switchyard.topics.registry import Topic

TOPICS = (
    Topic("sy.inbox", "runId", "InboxEvent", 12, 0, "inbox"),
    Topic("sy.events", "runId", "RunEvent", 3, 0, "events"),
)


class FlakyAdmin:
    """Answers describe_topics after `failures` raises of `error`."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return [
            {"topic": "sy.inbox", "error_code": 0, "partitions": [{}] * 12},
            {"topic": "sy.events", "error_code": 3, "partitions": []},
        ]


def _admin(fake: FlakyAdmin) -> AIOKafkaAdminClient:
    return cast(AIOKafkaAdminClient, fake)


async def test_a_node_not_ready_yet_is_retried_until_it_answers() -> None:
    fake = FlakyAdmin(2, NodeNotReadyError("node 1 not ready"))
    counts = await _partition_counts_retried(_admin(fake), TOPICS, within=10.0)
    assert counts == {"sy.inbox": 12}
    assert fake.calls == 3


async def test_a_broker_that_never_answers_fails_after_the_deadline() -> None:
    fake = FlakyAdmin(1_000, NodeNotReadyError("node 1 not ready"))
    with pytest.raises(NodeNotReadyError):
        await _partition_counts_retried(_admin(fake), TOPICS, within=0.6)
    assert 2 <= fake.calls <= 4


async def test_a_non_retriable_error_is_raised_at_once() -> None:
    fake = FlakyAdmin(1, TopicAuthorizationFailedError("not allowed"))
    with pytest.raises(TopicAuthorizationFailedError):
        await _partition_counts_retried(_admin(fake), TOPICS, within=10.0)
    assert fake.calls == 1
