"""The ``seq`` workload: a sequential chain of N KAFKA steps served by a no-op SDK
worker, one run at a time at idle, run after run: what one step costs end to end, and
the engine's share of it.

Per step, from Kafka's message timestamps (producer clocks, all on this machine):
*overhead* is a step's completion report produced (``NodeRunUpdated`` on the inbox) →
the next step's request published; *total* is a step's request → the next step's
request (the last step's: → ``run.completed``), i.e. the worker's round trip plus the
overhead. The trigger → first request and the whole run are reported beside them.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from benchmarks.load import distribution
from benchmarks.switchyard_target import observe_from_end, stop_observing
from benchmarks.workloads import seq_step
from switchyard.schemas import RunTriggered, encode, new_run_id, node_run_id
from switchyard.schemas.settings import Settings
from switchyard.topics.connection import kafka_options
from switchyard.topics.registry import TopicRegistry


@dataclass
class SeqRun:
    """One run's timestamps (ms since the epoch), by step number from 1."""

    run_id: str
    triggered_ms: int
    requested: dict[int, int] = field(default_factory=dict)
    reported: dict[int, int] = field(default_factory=dict)
    completed_ms: int | None = None

    def overheads(self, steps: int) -> list[float]:
        return [float(self.requested[k + 1] - self.reported[k]) for k in range(1, steps)
                if k in self.reported and k + 1 in self.requested]  # fmt: skip

    def totals(self, steps: int) -> list[float]:
        ends = {**{k: self.requested.get(k + 1) for k in range(1, steps)},
                steps: self.completed_ms}  # fmt: skip
        return [float(end - self.requested[k]) for k, end in ends.items()
                if end is not None and k in self.requested]  # fmt: skip


class SeqTarget:
    """Fires one ``bench-seq`` run and follows its steps on the inbox, the request topic
    and the run events."""

    def __init__(self, settings: Settings, steps: int, workflow: str = "bench-seq") -> None:
        self.settings = settings
        self.steps = steps
        self.workflow = workflow
        self.registry = TopicRegistry.from_settings(settings)
        self._steps_of: dict[str, int] = {}  # node run id → step number
        self._run: SeqRun | None = None
        self._done = asyncio.Event()
        self._producer = AIOKafkaProducer(
            **kafka_options(settings),
            acks="all", enable_idempotence=True, linger_ms=0,
        )  # fmt: skip
        self._consumer = AIOKafkaConsumer(
            **kafka_options(settings),
            group_id=None, enable_auto_commit=False, fetch_max_wait_ms=5,
        )  # fmt: skip
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SeqTarget:
        await self._producer.start()
        await self._consumer.start()
        topics = [self.registry.run_events.name, self.registry.inbox.name,
                  self.registry.node_run_requests.name]  # fmt: skip
        await observe_from_end(self._consumer, topics, self.settings.inbox_partitions)
        self._task = asyncio.create_task(self._observe())
        return self

    async def __aexit__(self, *_: object) -> None:
        await stop_observing(self._task, self._consumer, self._producer)

    async def run_once(self, n: int, within: float = 30.0) -> SeqRun | None:
        """One run, start to completion; None if it did not complete ``within`` seconds."""
        run_id = new_run_id(os.urandom)
        self._steps_of = {node_run_id(run_id, seq_step(k)): k for k in range(1, self.steps + 1)}
        now_ms = int(time.time() * 1000)
        self._run = SeqRun(run_id=run_id, triggered_ms=now_ms)
        self._done.clear()
        event = RunTriggered(
            run_id=run_id, workflow_identifier=self.workflow,
            inputs={"service": f"svc-{n % 97}", "n": n}, created_by="bench",
            triggered_at=datetime.now(UTC),
        )  # fmt: skip
        await self._producer.send_and_wait(
            self.registry.inbox.name, encode(event), key=run_id.encode(), timestamp_ms=now_ms
        )
        try:
            await asyncio.wait_for(self._done.wait(), within)
        except TimeoutError:
            return None
        return self._run

    async def _observe(self) -> None:
        events, inbox = self.registry.run_events.name, self.registry.inbox.name
        while True:
            batches = await self._consumer.getmany(timeout_ms=100, max_records=1000)
            for tp, records in batches.items():
                for record in records:
                    if tp.topic == events:
                        self._run_event(record.value, record.timestamp)
                    elif tp.topic == inbox:
                        self._inbox(record.value, record.timestamp)
                    else:
                        self._request(record.value, record.timestamp)

    def _run_event(self, value: bytes, ts: int) -> None:
        run = self._run
        if run is None or b'"run.completed"' not in value:
            return
        if orjson.loads(value)["runId"] == run.run_id:
            run.completed_ms = ts
            self._done.set()

    def _inbox(self, value: bytes, ts: int) -> None:
        if self._run is None or b'"NodeRunUpdated"' not in value:
            return
        update = orjson.loads(value)
        step = self._steps_of.get(update.get("nodeRunId", ""))
        if step is not None and update.get("status") == "COMPLETED":
            self._run.reported[step] = ts

    def _request(self, value: bytes, ts: int) -> None:
        if self._run is None:
            return
        step = self._steps_of.get(orjson.loads(value)["context"]["nodeRunId"])
        if step is not None:
            self._run.requested.setdefault(step, ts)


def figures(runs: list[SeqRun], steps: int, unfinished: int) -> dict[str, Any]:
    """Per-step overhead and total, trigger → first request and the run, as distributions."""
    overheads = [v for run in runs for v in run.overheads(steps)]
    totals = [v for run in runs for v in run.totals(steps)]
    firsts = [float(run.requested[1] - run.triggered_ms) for run in runs if 1 in run.requested]
    latencies = [float(run.completed_ms - run.triggered_ms) for run in runs if run.completed_ms]
    return {
        "steps": steps, "runs": len(runs), "unfinished": unfinished,
        "step_overhead_ms": distribution(overheads), "step_total_ms": distribution(totals),
        "first_request_ms": distribution(firsts), "run_ms": distribution(latencies),
    }  # fmt: skip


async def measure(settings: Settings, steps: int, seconds: float, warmup: int = 3
                  ) -> dict[str, Any]:  # fmt: skip
    """Runs one after another for ``seconds`` (after ``warmup`` unmeasured runs)."""
    runs: list[SeqRun] = []
    unfinished = 0
    async with SeqTarget(settings, steps) as target:
        for n in range(warmup):
            await target.run_once(n)
        until = time.monotonic() + seconds
        n = warmup
        while time.monotonic() < until:
            run = await target.run_once(n)
            n += 1
            if run is None:
                unfinished += 1
            else:
                runs.append(run)
    return figures(runs, steps, unfinished)
