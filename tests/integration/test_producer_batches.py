"""``EventProducer.send_many`` on the real broker: one record batch per partition, yet
every message lands where ``send`` would put it, in order per partition, with its
headers; a partition's messages beyond one batch's size go in further batches."""

from __future__ import annotations

import uuid

import pytest

from switchyard.schemas.settings import Settings
from switchyard.topics.partitioning import partition_of
from switchyard.topics.producer import EventProducer, Outgoing
from switchyard.topics.registry import TopicRegistry
from tests.integration.engine_support import read_all

pytestmark = pytest.mark.integration


async def test_many_messages_land_in_their_key_s_partition_in_order_with_their_headers(
    topics: Settings,
) -> None:
    topic = TopicRegistry.from_settings(topics).run_events.name
    keys = [f"wfr_{uuid.uuid4().hex[:16]}" for _ in range(5)]
    # 2,000 messages of ~300 B: each partition's share is more than one 16 KB batch.
    messages: list[Outgoing] = [
        (topic, keys[n % 5], b'{"n": %d, "pad": "%s"}' % (n, b"x" * 280), None,
         (("traceparent", b"00-%032x-%016x-01" % (n + 1, n + 1)),) if n % 7 == 0 else None)
        for n in range(2000)
    ]  # fmt: skip
    given_partition = (topic, keys[0], b'{"n": -1}', 0, None)
    async with EventProducer(topics) as producer:
        futures = await producer.send_many([*messages, given_partition])
        await producer.flush_sent(futures)
        count = await producer.partition_count(topic)
    assert len(futures) > len({partition_of(k.encode(), count) for k in keys})  # split

    mine = [r for r in await read_all(topics, topic) if r.key and r.key.decode() in keys]
    assert len(mine) == 2001
    for key in keys:
        records = [r for r in mine if r.key.decode() == key and r.value != b'{"n": -1}']
        assert {r.partition for r in records} == {partition_of(key.encode(), count)}
        sent = [m for m in messages if m[1] == key]
        assert [r.value for r in records] == [m[2] for m in sent]  # in order
        assert [list(r.headers) for r in records] == [list(m[4] or ()) for m in sent]
    [pinned] = [r for r in mine if r.value == b'{"n": -1}']
    assert pinned.partition == 0
