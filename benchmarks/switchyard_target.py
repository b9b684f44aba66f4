"""Switchyard as a load-generator target: ``RunTriggered`` produced to the inbox (the
Kafka contract), completion read from the run-events topic.

Every time is a Kafka message timestamp (CreateTime, set by the producing process):
the trigger's, the run's ``run.completed`` event's, and for the engine's per-step
overhead the worker's ``NodeRunUpdated`` on the inbox and the next node's request.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from benchmarks.load import Completion
from benchmarks.workloads import TRANSITION
from switchyard.engine.store.client import redis_client
from switchyard.engine.store.runs import RunStore
from switchyard.schemas import RunTriggered, encode, new_run_id, node_run_id
from switchyard.schemas.settings import Settings
from switchyard.topics.connection import kafka_options
from switchyard.topics.registry import TopicRegistry

# Runs of a measured window whose observed node runs are checked against Redis.
SAMPLE_RUNS = 2000


@dataclass
class _Pending:
    triggered_ms: float
    first_request_ms: float | None = None
    done_ms: float | None = None  # the measured step's NodeRunUpdated on the inbox
    next_ms: float | None = None  # the next node's request
    node_runs: int = 0  # nodeRun.completed run events seen


class SwitchyardTarget:
    """Fires runs of ``workflow``; ``observe_steps`` also times the engine's steps."""

    def __init__(self, settings: Settings, workflow: str, *, observe_steps: bool) -> None:
        self.name = f"switchyard:{workflow}"
        self.settings = settings
        self.workflow = workflow
        self.observe_steps = observe_steps
        self.registry = TopicRegistry.from_settings(settings)
        self.completed: asyncio.Queue[Completion] = asyncio.Queue()
        self._pending: dict[str, _Pending] = {}
        self._by_node_run: dict[str, tuple[str, str]] = {}  # node run → (run, node)
        self._n = 0
        # Every node-run completion of this target's runs seen on the run events.
        self.node_runs_completed = 0
        # While ``sampling`` (a measured window): run id → node-run completions observed,
        # for the runs that complete, to be compared with their stored state afterwards.
        self.sampling = False
        self.sample: dict[str, int] = {}
        self._producer = AIOKafkaProducer(
            **kafka_options(settings),
            acks="all", enable_idempotence=True, linger_ms=2,
        )  # fmt: skip
        self._consumer = AIOKafkaConsumer(
            **kafka_options(settings),
            group_id=None, enable_auto_commit=False,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )  # fmt: skip
        self._task: asyncio.Task[None] | None = None
        self.sizes: dict[str, list[int]] = {}

    async def __aenter__(self) -> SwitchyardTarget:
        await self._producer.start()
        await self._consumer.start()
        topics = [self.registry.run_events.name]
        if self.observe_steps:
            topics += [self.registry.inbox.name, self.registry.node_run_requests.name]
        await observe_from_end(self._consumer, topics, self.settings.inbox_partitions)
        self._task = asyncio.create_task(self._observe())
        return self

    async def __aexit__(self, *_: object) -> None:
        await stop_observing(self._task, self._consumer, self._producer)

    async def trigger(self) -> None:
        self._n += 1
        run_id = new_run_id(os.urandom)
        event = RunTriggered(
            run_id=run_id, workflow_identifier=self.workflow,
            inputs={"service": f"svc-{self._n % 97}", "n": self._n},
            created_by="bench", triggered_at=datetime.now(UTC),
        )  # fmt: skip
        now_ms = int(time.time() * 1000)
        self._pending[run_id] = _Pending(triggered_ms=now_ms)
        if self.observe_steps:
            for node in TRANSITION:
                self._by_node_run[node_run_id(run_id, node)] = (run_id, node)
        await self._producer.send(
            self.registry.inbox.name, encode(event), key=run_id.encode(), timestamp_ms=now_ms
        )

    async def trigger_many(self, count: int, workflow: str) -> None:
        """Fire ``count`` runs of another workflow, unobserved (the in-flight phase)."""
        futures = []
        for n in range(count):
            run_id = new_run_id(os.urandom)
            event = RunTriggered(
                run_id=run_id, workflow_identifier=workflow,
                inputs={"service": "held", "n": n}, created_by="bench",
                triggered_at=datetime.now(UTC),
            )  # fmt: skip
            futures.append(
                await self._producer.send(
                    self.registry.inbox.name, encode(event), key=run_id.encode()
                )
            )
        await asyncio.gather(*futures)

    async def _observe(self) -> None:
        events = self.registry.run_events.name
        requests = self.registry.node_run_requests.name
        while True:
            batches = await self._consumer.getmany(timeout_ms=100, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    self._size(self._kind(tp.topic, record.value), record.value)
                    if tp.topic == events:
                        self._run_event(record.value, record.timestamp)
                    elif tp.topic == requests:
                        self._request(record.value, record.timestamp)
                    else:
                        self._inbox(record.value, record.timestamp)

    def _kind(self, topic: str, value: bytes) -> str:
        if topic != self.registry.inbox.name:
            return topic
        return "trigger" if b'"RunTriggered"' in value else "update"

    def _size(self, topic: str, value: bytes | None) -> None:
        sizes = self.sizes.setdefault(topic, [])
        if len(sizes) < 20_000:
            sizes.append(len(value or b""))

    def _run_event(self, value: bytes, ts: int) -> None:
        if b'"nodeRun.completed"' in value:
            self._node_run_completed(value)
            return
        if b'"run.completed"' not in value:
            return
        event: dict[str, Any] = orjson.loads(value)
        pending = self._pending.pop(event["runId"], None)
        if pending is None:
            return
        transition = None
        if pending.done_ms is not None and pending.next_ms is not None:
            transition = pending.next_ms - pending.done_ms
        first = None
        if pending.first_request_ms is not None:
            first = pending.first_request_ms - pending.triggered_ms
        if self.observe_steps:
            run_id = event["runId"]
            for node in TRANSITION:
                self._by_node_run.pop(node_run_id(run_id, node), None)
        if self.sampling and len(self.sample) < SAMPLE_RUNS:
            self.sample[event["runId"]] = pending.node_runs
        self.completed.put_nowait(Completion(
            run_id=event["runId"], triggered_ms=pending.triggered_ms, completed_ms=ts,
            transition_ms=transition, first_request_ms=first, node_runs=pending.node_runs,
        ))  # fmt: skip

    def _node_run_completed(self, value: bytes) -> None:
        pending = self._pending.get(orjson.loads(value)["runId"])
        if pending is not None:
            pending.node_runs += 1
            self.node_runs_completed += 1

    def _request(self, value: bytes, ts: int) -> None:
        context = orjson.loads(value)["context"]
        found = self._by_node_run.get(context["nodeRunId"])
        if found is None:
            return
        pending = self._pending.get(found[0])
        if pending is None:
            return
        if found[1] == TRANSITION[0]:
            pending.first_request_ms = ts
        else:
            pending.next_ms = ts

    def _inbox(self, value: bytes, ts: int) -> None:
        if b'"NodeRunUpdated"' not in value:
            return
        update = orjson.loads(value)
        found = self._by_node_run.get(update.get("nodeRunId", ""))
        if found is None or found[1] != TRANSITION[0] or update.get("status") != "COMPLETED":
            return
        pending = self._pending.get(found[0])
        if pending is not None:
            pending.done_ms = ts


class NodeRunWindow:
    """Node runs completed in a closed loop's window, as seen on the run events (a
    window hook of :func:`benchmarks.load.closed_loop`)."""

    def __init__(self, target: SwitchyardTarget) -> None:
        self.target = target
        self.started_at = 0.0
        self.first = 0
        self.count = 0
        self.seconds = 0.0

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.first = self.target.node_runs_completed
        self.target.sample.clear()
        self.target.sampling = True

    def stop(self) -> None:
        self.seconds = time.monotonic() - self.started_at
        self.count = self.target.node_runs_completed - self.first
        self.target.sampling = False

    async def checked_in_store(self) -> dict[str, int]:
        """The window's completed runs (up to :data:`SAMPLE_RUNS`) read back from Redis:
        node-run completions observed on the run events against the completed node runs
        their stored state holds, which a counting error on either side would split."""
        sample = dict(self.target.sample)
        client = redis_client(self.target.settings)
        try:
            stored = await RunStore(client).load(sample)
        finally:
            await client.aclose()
        in_store = {
            run_id: sum(1 for nr in run.state.node_runs if nr.status == "COMPLETED")
            for run_id, run in stored.items()
        }
        return {
            "runs": len(sample),
            "runs_found": len(in_store),
            "observed": sum(sample.values()),
            "stored": sum(in_store.values()),
            "runs_differing": sum(1 for r, n in sample.items() if in_store.get(r) != n),
        }

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


async def observe_from_end(consumer: AIOKafkaConsumer, topics: list[str], partitions: int) -> None:
    """Assign every partition of ``topics`` to ``consumer`` at its end, resolved now, so
    nothing produced from here on is missed."""
    parts = [TopicPartition(t, p) for t in topics for p in range(partitions)]
    consumer.assign(parts)
    await consumer.seek_to_end(*parts)
    for tp in parts:
        await consumer.position(tp)


async def stop_observing(
    task: asyncio.Task[None] | None, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer
) -> None:
    """Cancel a target's observer task, then stop its consumer and producer."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await consumer.stop()
    await producer.stop()
