"""A deploy workflow whose KAFKA node is done by a Kafka worker (the worker SDK).

    switchyard stack up                                  # Kafka, Redis, engine, API
    .venv/bin/python -m examples.deploy_kafka_worker     # defines, triggers, works, prints

The same handler runs as a standalone worker with
``switchyard worker run examples.deploy_kafka_worker:deploy --node deploy``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from examples.common import api_client, define, wait_until_completed
from switchyard.consumers import KafkaWorker, RunsClient, WorkContext
from switchyard.schemas import WorkflowRun
from switchyard.schemas.settings import Settings

WORKFLOW_ID = "example-deploy"

WORKFLOW: dict[str, Any] = {
    "identifier": WORKFLOW_ID,
    "title": "Deploy a service (Kafka worker example)",
    "nodes": [
        {"identifier": "trigger", "title": "Deploy", "config": {
            "type": "SELF_SERVE_TRIGGER",
            "userInputs": {
                "properties": {
                    "service": {"type": "string"},
                    "environment": {"type": "string", "enum": ["staging", "production"]},
                },
                "required": ["service", "environment"],
            },
        }},
        {"identifier": "deploy", "title": "Deploy", "config": {
            "type": "KAFKA",
            "payload": {"service": "{{ .outputs.trigger.service }}",
                        "environment": "{{ .outputs.trigger.environment }}"},
        }},
    ],
    "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "deploy"}],
}  # fmt: skip


async def deploy(ctx: WorkContext) -> dict[str, Any]:
    """The worker's handler: "deploys" and returns the node's output."""
    service, environment = ctx.payload["service"], ctx.payload["environment"]
    ctx.log.info(f"deploying {service} to {environment}", service=service)
    if environment == "production" and service == "forbidden":
        raise RuntimeError(f"{service} may not go to production")  # → FAILED, ERROR log
    return {"service": service, "version": "1.2.3",
            "url": f"https://{service}.{environment}.example.com"}  # fmt: skip


async def main(settings: Settings, client: RunsClient, service: str = "api") -> WorkflowRun:
    await define(client, WORKFLOW)
    async with KafkaWorker(settings, deploy, workflows=[WORKFLOW_ID], node_identifiers=["deploy"]):
        triggered = await client.trigger(
            WORKFLOW_ID, {"service": service, "environment": "production"}
        )
        return await wait_until_completed(client, triggered.run_id)


async def _cli() -> None:
    settings = Settings()
    async with api_client(settings) as client:
        run = await main(settings, client)
    print(f"{run.identifier}: {run.status} {run.result}")
    print(f"deploy output: {run.variables.outputs.get('deploy')}")


if __name__ == "__main__":
    asyncio.run(_cli())
