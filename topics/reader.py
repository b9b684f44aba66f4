"""Reading a whole topic as it stands (audits, the chaos check, tests): no consumer group."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from switchyard.schemas.settings import Settings
from switchyard.topics.connection import kafka_options


async def read_topic(brokers: Settings | str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record now on ``topic``, partition by partition, up to its end offsets.

    ``brokers``: the settings (their TLS/SASL too), or plaintext bootstrap servers.
    """
    options = (
        kafka_options(brokers) if isinstance(brokers, Settings) else {"bootstrap_servers": brokers}
    )
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    if not partitions:
        raise ValueError(f"topic {topic} does not exist")
    consumer = AIOKafkaConsumer(**options, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        records: list[ConsumerRecord[bytes, bytes]] = []
        for tp in partitions:
            if ends[tp] <= starts[tp]:
                continue
            consumer.seek(tp, starts[tp])
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                records += batch.get(tp, [])
        return records
    finally:
        await consumer.stop()
