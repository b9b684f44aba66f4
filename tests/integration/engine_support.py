"""Shared pieces of the engine's integration tests: a local HTTP server, run helpers."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer

from switchyard.engine.machine.state import RunState
from switchyard.engine.store.runs import RunStore
from switchyard.engine.store.workflows import WorkflowStore
from switchyard.schemas import RunTriggered, encode, parse_workflow
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from switchyard.topics.reader import read_topic
from switchyard.topics.registry import TopicRegistry
from tests.helpers import until


class _Echo(BaseHTTPRequestHandler):
    """200 with ``{"received": <body>, "path": …}``; a path starting /fail answers 500."""

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = orjson.loads(self.rfile.read(length)) if length else None
        self.server.requests.append({"path": self.path, "body": body})  # type: ignore[attr-defined]
        status = 500 if self.path.startswith("/fail") else 200
        payload = orjson.dumps({"received": body, "path": self.path})
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_: Any) -> None:  # keep test output clean
        return


@contextmanager
def echo_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.requests  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


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
        topic, bootstrap_servers=settings.kafka_bootstrap_servers,
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
    return await read_topic(settings.kafka_bootstrap_servers, topic)
