"""What a stray costs: a trigger produced to its run's partition vs. to another one.

    python -m benchmarks.strays [--runs 300]

against running Kafka and Redis (``KAFKA_BOOTSTRAP_SERVERS`` and ``REDIS_URL``, else
the settings' defaults: ``switchyard stack up --infra-only``). An engine runs in this
process on topics of its own. Each run is triggered with librdkafka (confluent-kafka),
one at a time (no queueing): first on the run's own partition (librdkafka's
``murmur2`` partitioner, Kafka's Java default), then on a deliberately wrong
partition, which the engine moves before applying. The latency is from the produce
call to the engine's "run created" notification (Redis pub/sub). Durability as in
production: acks=all, idempotent producers, Redis AOF as the stack configures it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from datetime import UTC, datetime

from confluent_kafka import Producer

from switchyard.engine.processor import Outcome
from switchyard.engine.service import EngineService
from switchyard.engine.store import keys
from switchyard.engine.store.client import redis_client
from switchyard.engine.store.workflows import WorkflowStore
from switchyard.engine.templates import JqTemplates, TemplateLimits
from switchyard.schemas import RunTriggered, encode, new_run_id, parse_workflow
from switchyard.schemas.settings import Settings
from switchyard.topics.admin import ensure_topics
from switchyard.topics.partitioning import partition_of
from switchyard.topics.registry import TopicRegistry


def _settings() -> Settings:
    overrides: dict[str, str] = {"topic_prefix": f"bench-strays-{uuid.uuid4().hex[:6]}."}
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        overrides["kafka_bootstrap_servers"] = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    if os.environ.get("REDIS_URL"):
        overrides["redis_url"] = os.environ["REDIS_URL"]
    return Settings(**overrides)  # type: ignore[arg-type]


async def _latencies(
    settings: Settings, workflow: str, runs: int, *, stray: bool, engine: EngineService
) -> list[float]:
    """Milliseconds from produce to "run created", one run at a time."""
    inbox = TopicRegistry.from_settings(settings).inbox.name
    producer = Producer({
        "bootstrap.servers": settings.kafka_bootstrap_servers, "enable.idempotence": True,
        "partitioner": "murmur2", "linger.ms": 0,
    })  # fmt: skip
    client = redis_client(settings)
    pubsub = client.pubsub()
    await pubsub.subscribe(keys.NOTIFY_CHANNEL)
    found: list[float] = []
    try:
        for _ in range(runs):
            run_id = new_run_id(os.urandom)
            home = partition_of(run_id, settings.inbox_partitions)
            event = RunTriggered(
                run_id=run_id, workflow_identifier=workflow, created_by="bench",
                triggered_at=datetime.now(UTC),
            )  # fmt: skip
            started = time.perf_counter()
            if stray:
                wrong = (home + 1) % settings.inbox_partitions
                producer.produce(inbox, encode(event), run_id.encode(), partition=wrong)
            else:
                producer.produce(inbox, encode(event), run_id.encode())
            producer.poll(0)
            deadline = started + 30
            while True:
                # None also stands for a subscribe confirmation: judge by the clock.
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if message is not None and message["data"] == run_id.encode():
                    break
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"{run_id} was not created within 30 s")
            found.append((time.perf_counter() - started) * 1000)
        producer.flush(10)
    finally:
        await pubsub.aclose()
        await client.aclose()
    return found


def _row(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"{name:<28} {statistics.median(ordered):>8.2f} {p99:>8.2f} {len(ordered):>6}"


async def main(runs: int) -> None:
    settings = _settings()
    await ensure_topics(settings)
    workflow = f"strays-{uuid.uuid4().hex[:6]}"
    client = redis_client(settings)
    await WorkflowStore(client).save(
        parse_workflow({"identifier": workflow, "nodes": [
            {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER"}},
            {"identifier": "work", "config": {"type": "KAFKA", "payload": {}}},
        ], "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "work"}]}),
        create=True, now=datetime.now(UTC),
    )  # fmt: skip
    await client.aclose()
    with JqTemplates(TemplateLimits.from_settings(settings)) as templates:
        async with EngineService(settings, templates) as engine:
            await _latencies(settings, workflow, 20, stray=False, engine=engine)  # warm-up
            home = await _latencies(settings, workflow, runs, stray=False, engine=engine)
            moved_before = engine.processor.outcomes[Outcome.MOVED]
            strays = await _latencies(settings, workflow, runs, stray=True, engine=engine)
            moved = engine.processor.outcomes[Outcome.MOVED] - moved_before
    print(f"trigger → run created, ms, one run at a time, {settings.inbox_partitions} partitions")
    print(f"{'':<28} {'p50':>8} {'p99':>8} {'runs':>6}")
    print(_row("on the run's partition", home))
    print(_row("on another partition", strays))
    extra = statistics.median(strays) - statistics.median(home)
    print(f"records moved: {moved}; a stray's extra hop costs {extra:.2f} ms at p50")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="runs per placement")
    asyncio.run(main(parser.parse_args().runs))
