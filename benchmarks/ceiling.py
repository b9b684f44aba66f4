"""The limit: the chain's Kafka traffic with no engine logic, on the same broker.

A relay process stands in for the engine and a worker process for the KAFKA worker;
per run they move the same messages, of the same sizes, over the same number of hops
as Switchyard's ``chain`` run: trigger → inbox → request 1 → update 1 → request 2 →
update 2 → completed, with the run events beside them. Same clients and settings as
the engine (acks=all, idempotent producer, commit after the batch's acks). Its runs/s
is the ceiling the engine is compared to.

    python -m benchmarks.ceiling relay|worker   (started by benchmarks.run)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import time
from dataclasses import asdict, dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from benchmarks.load import Completion

IN, REQ, EVENTS = "bench-raw.in", "bench-raw.req", "bench-raw.events"
PARTITIONS = 12


@dataclass(frozen=True)
class Shape:
    """Message sizes (bytes) and run events per step, measured on Switchyard's chain."""

    trigger: int = 300
    request: int = 250
    update: int = 200
    event: int = 200
    # Run events the engine emits when it applies the trigger, update 1 and update 2.
    events_per_step: tuple[int, int, int] = (5, 2, 3)


def _message(kind: bytes, run_id: bytes, size: int) -> bytes:
    head = kind + b"|" + run_id + b"|"
    return head + b"x" * max(0, size - len(head))


def _producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                            enable_idempotence=True, linger_ms=2)  # fmt: skip


def _consumer(bootstrap: str, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                            enable_auto_commit=False, auto_offset_reset="earliest",
                            max_poll_records=500)  # fmt: skip


async def ensure_topics(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for name in (IN, REQ, EVENTS):
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(name, PARTITIONS, 1)])
    finally:
        await admin.close()


def _relay_step(kind: bytes, run_id: bytes, shape: Shape) -> list[tuple[str, bytes]]:
    """What the engine would publish for one inbox message (no decisions, no Redis)."""
    step = {b"T": 0, b"U1": 1, b"U2": 2}[kind]
    out = [(EVENTS, _message(b"E", run_id, shape.event))] * (shape.events_per_step[step] - 1)
    if step == 0:
        out.append((REQ, _message(b"R1", run_id, shape.request)))
    elif step == 1:
        out.append((REQ, _message(b"R2", run_id, shape.request)))
    out.append((EVENTS, _message(b"C" if step == 2 else b"E", run_id, shape.event)))
    return out


async def serve(role: str, bootstrap: str, shape: Shape, stop: asyncio.Event) -> None:
    topic, group = (IN, "bench-raw-relay") if role == "relay" else (REQ, "bench-raw-worker")
    producer = _producer(bootstrap)
    consumer = _consumer(bootstrap, topic, group)
    await producer.start()
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100)
            futures = []
            for records in batches.values():
                for record in records:
                    kind, run_id, _ = record.value.split(b"|", 2)
                    if role == "relay":
                        for out_topic, value in _relay_step(kind, run_id, shape):
                            futures.append(await producer.send(out_topic, value, key=run_id))
                    else:
                        reply = b"U1" if kind == b"R1" else b"U2"
                        value = _message(reply, run_id, shape.update)
                        futures.append(await producer.send(IN, value, key=run_id))
            await asyncio.gather(*futures)
            if batches:
                await consumer.commit({tp: rs[-1].offset + 1 for tp, rs in batches.items()})
    finally:
        await consumer.stop()
        await producer.stop()


class RawTarget:
    """The load generator's view of the raw pipeline: same trigger, same timestamps."""

    name = "raw-kafka"

    def __init__(self, bootstrap: str, shape: Shape) -> None:
        self.shape = shape
        self.completed: asyncio.Queue[Completion] = asyncio.Queue()
        self._pending: dict[bytes, int] = {}
        self._producer = _producer(bootstrap)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RawTarget:
        await self._producer.start()
        await self._consumer.start()
        parts = [TopicPartition(EVENTS, p) for p in range(PARTITIONS)]
        self._consumer.assign(parts)
        await self._consumer.seek_to_end(*parts)
        for tp in parts:
            await self._consumer.position(tp)
        self._task = asyncio.create_task(self._observe())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()
        await self._producer.stop()

    async def trigger(self) -> None:
        run_id = os.urandom(10).hex().encode()
        now_ms = int(time.time() * 1000)
        self._pending[run_id] = now_ms
        value = _message(b"T", run_id, self.shape.trigger)
        await self._producer.send(IN, value, key=run_id, timestamp_ms=now_ms)

    async def _observe(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=100, max_records=5000)
            for records in batches.values():
                for record in records:
                    if record.value[:2] != b"C|":
                        continue
                    run_id = record.value.split(b"|", 2)[1]
                    triggered = self._pending.pop(run_id, None)
                    if triggered is not None:
                        self.completed.put_nowait(
                            Completion(run_id.decode(), triggered, record.timestamp)
                        )


def shape_argument(shape: Shape) -> str:
    return json.dumps(asdict(shape))


async def _main(role: str, bootstrap: str, shape_json: str) -> None:
    data = json.loads(shape_json)
    data["events_per_step"] = tuple(data["events_per_step"])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(role, bootstrap, Shape(**data), stop)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("role", choices=["relay", "worker"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--shape", default=shape_argument(Shape()))
    args = parser.parse_args()
    asyncio.run(_main(args.role, args.bootstrap, args.shape))
