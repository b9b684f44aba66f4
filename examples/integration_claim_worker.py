"""An INTEGRATION_ACTION node done by a claim/ack worker (Port's pull protocol).

    switchyard stack up
    .venv/bin/python -m examples.integration_claim_worker

As a standalone worker: ``switchyard worker run
examples.integration_claim_worker:dispatch --installation-id example-github``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from examples.common import api_client, define, wait_until_completed
from switchyard.consumers import ClaimWorker, Outcome, RunsClient, WorkContext
from switchyard.schemas import WorkflowRun
from switchyard.schemas.settings import Settings

WORKFLOW_ID = "example-dispatch"
INSTALLATION = "example-github"


def workflow(installation: str = INSTALLATION) -> dict[str, Any]:
    return {
        "identifier": WORKFLOW_ID,
        "title": "Dispatch a CI workflow (claim/ack example)",
        "nodes": [
            {"identifier": "trigger", "config": {
                "type": "SELF_SERVE_TRIGGER",
                "userInputs": {"properties": {"ref": {"type": "string"}}, "required": ["ref"]},
            }},
            {"identifier": "dispatch", "title": "Run CI", "config": {
                "type": "INTEGRATION_ACTION", "installationId": installation,
                "integrationProvider": "github-ocean",
                "integrationInvocationType": "dispatch_workflow",
                "integrationActionExecutionProperties": {
                    "org": "acme", "repo": "shop", "workflow": "ci.yml",
                    "workflowInputs": {"ref": "{{ .outputs.trigger.ref }}"},
                },
            }},
        ],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "dispatch"}],
    }  # fmt: skip


async def dispatch(ctx: WorkContext) -> Outcome:
    """Start the "external job", report it started (Port's IN_PROGRESS PATCH), finish."""
    props = ctx.payload
    job = f"{props['repo']}-{props['workflowInputs']['ref']}"
    link = f"https://ci.example.com/{props['org']}/{props['repo']}/runs/{job}"
    ctx.log.info(f"dispatched {props['workflow']} on {props['workflowInputs']['ref']}")
    await ctx.progress(external_run_id=job, links=[link], output={"workflowRunUrl": link})
    return Outcome.success({"workflowRunUrl": link, "conclusion": "success"})


async def main(
    client: RunsClient, ref: str = "main", installation: str = INSTALLATION
) -> WorkflowRun:
    await define(client, workflow(installation))
    async with ClaimWorker(client, installation, dispatch, visibility_timeout_ms=10_000):
        triggered = await client.trigger(WORKFLOW_ID, {"ref": ref})
        return await wait_until_completed(client, triggered.run_id)


async def _cli() -> None:
    async with api_client(Settings()) as client:
        run = await main(client)
    print(f"{run.identifier}: {run.status} {run.result}")
    print(f"dispatch output: {run.variables.outputs.get('dispatch')}")


if __name__ == "__main__":
    asyncio.run(_cli())
