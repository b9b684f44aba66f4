"""An external producer that triggers runs by writing ``RunTriggered`` to the inbox.

    switchyard stack up
    .venv/bin/python -m examples.kafka_producer

The event is keyed by its run id (the engine's partitioning, see docs/kafka.md) and
validated like an HTTP trigger: bad inputs land on the dead-letter topic with a reason.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from typing import Any

from examples.common import api_client, define, wait_until_completed
from switchyard.consumers import RunsClient
from switchyard.schemas import RunTriggered, WorkflowRun, encode, new_run_id
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry

WORKFLOW_ID = "example-produced"

WORKFLOW: dict[str, Any] = {
    "identifier": WORKFLOW_ID,
    "title": "Triggered from Kafka",
    "nodes": [
        {"identifier": "trigger", "config": {
            "type": "SELF_SERVE_TRIGGER",
            "userInputs": {"properties": {"count": {"type": "number", "minimum": 1}},
                           "required": ["count"]},
        }},
        {"identifier": "big", "config": {"type": "CONDITION", "outlets": [
            {"identifier": "yes", "expression": ".outputs.trigger.count > 10"}]}},
    ],
    "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "big"}],
}  # fmt: skip


async def produce(settings: Settings, counts: list[int]) -> list[str]:
    """One RunTriggered per count; returns the run ids (chosen by the producer)."""
    inbox = TopicRegistry.from_settings(settings).inbox.name
    run_ids = []
    async with EventProducer(settings) as producer:
        for count in counts:
            run_id = new_run_id(os.urandom)
            event = RunTriggered(
                run_id=run_id, workflow_identifier=WORKFLOW_ID, inputs={"count": count},
                created_by="example-producer", triggered_at=datetime.now(UTC),
            )  # fmt: skip
            await producer.send_and_wait(inbox, run_id, encode(event))
            run_ids.append(run_id)
    return run_ids


async def main(settings: Settings, client: RunsClient, counts: list[int]) -> list[WorkflowRun]:
    await define(client, WORKFLOW)
    run_ids = await produce(settings, counts)
    return [await wait_until_completed(client, run_id) for run_id in run_ids]


async def _cli() -> None:
    settings = Settings()
    async with api_client(settings) as client:
        runs = await main(settings, client, [3, 30])
    for run in runs:
        chosen = run.variables.outputs["big"]["selectedOutlet"]
        print(f"{run.identifier}: {run.status} {run.result} outlet={chosen}")


if __name__ == "__main__":
    asyncio.run(_cli())
