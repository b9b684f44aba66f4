"""Shared pieces of the engine's integration tests: a local HTTP server, run helpers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer

from switchyard.engine.machine.state import RunState
from switchyard.engine.processor import InboxProcessor
from switchyard.engine.store.runs import RunStore
from switchyard.engine.store.workflows import WorkflowStore
from switchyard.schemas import RunTriggered, encode, parse_workflow
from switchyard.schemas.settings import Settings
from switchyard.topics.connection import kafka_options
from switchyard.topics.producer import EventProducer
from switchyard.topics.reader import read_topic
from switchyard.topics.registry import TopicRegistry
from tests.helpers import LocalHandler, serving, until


class _Echo(LocalHandler):
    """200 with ``{"received": <body>, "path": …}``; a path starting /fail answers 500."""

    def do_POST(self) -> None:
        body = self.body()
        self.record({"path": self.path, "body": body})
        status = 500 if self.path.startswith("/fail") else 200
        self.answer(status, {"received": body, "path": self.path})


@contextmanager
def echo_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    with serving(_Echo) as found:
        yield found


def make_processor(
    settings: Settings, redis: aioredis.Redis, producer: EventProducer, templates: Any
) -> InboxProcessor:
    """An inbox processor on the test's settings, driven by hand (no inbox driver)."""
    return InboxProcessor(
        store=RunStore(redis), workflows=WorkflowStore(redis), producer=producer,
        registry=TopicRegistry.from_settings(settings), templates=templates, secrets={},
        clock=lambda: datetime.now(UTC), inbox_partitions=settings.inbox_partitions,
    )  # fmt: skip


async def define_two_kafka_steps(driver: Driver, prefix: str) -> str:
    """trigger → work (KAFKA) → after (KAFKA), under a fresh identifier."""
    identifier = f"{prefix}-{uuid.uuid4().hex[:6]}"
    await driver.define({"identifier": identifier, "nodes": [
        {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER"}},
        {"identifier": "work", "config": {"type": "KAFKA", "payload": {"n": 1}}},
        {"identifier": "after", "config": {"type": "KAFKA", "payload": {"n": 2}}},
    ], "connections": [
        {"sourceIdentifier": "trigger", "targetIdentifier": "work"},
        {"sourceIdentifier": "work", "targetIdentifier": "after"},
    ]})  # fmt: skip
    return identifier


def new_run_id() -> str:
    return "wfr_" + uuid.uuid4().hex[:16]


class Driver:
    """Talks to the engine the way the bridge and external systems do: Kafka and Redis."""

    def __init__(self, settings: Settings, redis: aioredis.Redis, producer: EventProducer) -> None:
        self.settings = settings
        self.registry = TopicRegistry.from_settings(settings)
        self.runs = RunStore(redis)
        self.workflows = WorkflowStore(redis)
        self.producer = producer

    async def define(self, definition: dict[str, Any]) -> None:
        await self.workflows.save(parse_workflow(definition), create=True, now=datetime.now(UTC))

    async def trigger(self, workflow: str, inputs: dict[str, Any]) -> str:
        run_id = new_run_id()
        event = RunTriggered.model_validate(
            {"runId": run_id, "workflowIdentifier": workflow, "inputs": inputs,
             "createdBy": "tests@example.com", "triggeredAt": datetime.now(UTC)}
        )  # fmt: skip
        await self.send(run_id, encode(event))
        return run_id

    async def send(self, key: str, value: bytes) -> None:
        await self.producer.send_and_wait(self.registry.inbox.name, key, value)

    async def state(self, run_id: str) -> RunState | None:
        return await self.runs.get(run_id)

    async def wait(self, run_id: str, check: Any, within: float = 20.0) -> RunState:
        state = await until(
            lambda: self.state(run_id), lambda s: s is not None and check(s), within=within
        )
        assert state is not None
        return state


async def consume(
    settings: Settings, topic: str, count: int, match: Any, within: float = 20.0
) -> list[Any]:
    """The first ``count`` records of ``topic`` for which ``match(record)`` holds."""
    consumer = AIOKafkaConsumer(
        topic, **kafka_options(settings),
        group_id=f"probe-{uuid.uuid4().hex[:8]}", auto_offset_reset="earliest",
    )  # fmt: skip
    await consumer.start()
    found: list[Any] = []
    try:
        async with asyncio.timeout(within):
            async for record in consumer:
                if match(record):
                    found.append(record)
                    if len(found) >= count:
                        break
    finally:
        await consumer.stop()
    return found


async def read_all(settings: Settings, topic: str) -> list[Any]:
    """Every record now on ``topic`` (up to its end offsets), without a consumer group."""
    return await read_topic(settings, topic)
