"""Timer lateness as users feel it: due → applied by the engine, beside another load.

A probe triggers runs of ``bench-deadline`` (trigger → a KAFKA node with
``timeoutSeconds`` that no worker serves) at a fixed rate; each run's node run is
failed by the engine when its deadline passes. The lateness of one timer is the node
run's ``completedAt - (createdAt + timeoutSeconds)``: the timer service's wait, the
``TimerFired`` hop through Kafka and the engine's apply, all on the engine's clock.
``benchmarks.run`` runs the probe during the chain's open loop at 50% of its
maximum, and while 10,000 runs (each with an armed deadline) are held in flight.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
from typing import Any

from switchyard.engine.store.client import redis_client
from switchyard.engine.store.runs import RunStore
from switchyard.schemas import RunTriggered, encode, new_run_id
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry

WORKFLOW = "bench-deadline"
TIMEOUT_S = 1.0


def workflow() -> dict[str, Any]:
    return {
        "identifier": WORKFLOW,
        "nodes": [
            {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER"}},
            {"identifier": "wait", "config": {"type": "KAFKA", "timeoutSeconds": TIMEOUT_S}},
        ],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "wait"}],
    }


def _percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def probe(settings: Settings, *, rate: float, seconds: float) -> dict[str, Any]:
    """Trigger ``rate`` deadline runs a second for ``seconds``; their lateness (ms)."""
    inbox = TopicRegistry.from_settings(settings).inbox.name
    run_ids: list[str] = []
    async with EventProducer(settings) as producer:
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds:
            run_id = new_run_id(os.urandom)
            event = RunTriggered(
                run_id=run_id, workflow_identifier=WORKFLOW, created_by="bench",
                triggered_at=datetime.now(UTC),
            )  # fmt: skip
            await producer.send_and_wait(inbox, run_id, encode(event))
            run_ids.append(run_id)
            await asyncio.sleep(max(0.0, len(run_ids) / rate - elapsed))
    client = redis_client(settings)
    try:
        late = await _lateness(RunStore(client), run_ids, deadline=time.monotonic() + 60)
    finally:
        await client.aclose()
    ordered = sorted(late)
    if not ordered:
        return {"runs": len(run_ids), "timed_out": 0}
    return {
        "runs": len(run_ids), "timed_out": len(ordered), "timeout_s": TIMEOUT_S,
        "p50_ms": round(_percentile(ordered, 0.50), 1),
        "p99_ms": round(_percentile(ordered, 0.99), 1), "max_ms": round(ordered[-1], 1),
    }  # fmt: skip


async def _lateness(store: RunStore, run_ids: list[str], deadline: float) -> list[float]:
    """Wait until every run's node timed out (or ``deadline``); their lateness in ms."""
    while True:
        stored = await store.load(run_ids)
        late = []
        for state in (s.state for s in stored.values()):
            node_run = state.node_run_of("wait")
            if node_run is None or node_run.completed_at is None or not node_run.timed_out:
                continue
            due = node_run.created_at.timestamp() + TIMEOUT_S
            late.append((node_run.completed_at.timestamp() - due) * 1000)
        if len(late) == len(run_ids) or time.monotonic() > deadline:
            return late
        await asyncio.sleep(0.5)
