"""Each example of ``examples/`` against the real broker, Redis, engine and API."""

from __future__ import annotations

import uuid

import pytest

from examples import deploy_kafka_worker, integration_claim_worker, kafka_producer
from switchyard.consumers import RunsClient
from switchyard.schemas import node_run_id
from switchyard.schemas.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("engine")]


async def test_deploy_kafka_node_is_completed_by_the_kafka_worker(
    topics: Settings, client: RunsClient
) -> None:
    run = await deploy_kafka_worker.main(topics, client, service="api")
    assert (run.status, run.result) == ("COMPLETED", "SUCCESS")
    assert run.variables.outputs["deploy"] == {
        "service": "api", "version": "1.2.3", "url": "https://api.production.example.com"
    }  # fmt: skip
    [_, deploy] = run.node_runs
    assert [(line.log_level, line.log) for line in deploy.node_run_logs][-1] == (
        "INFO", "deploying api to production"
    )  # fmt: skip
    assert deploy.node_run_logs[-1].tags == {"service": "api"}


async def test_a_failing_handler_fails_the_deploy(topics: Settings, client: RunsClient) -> None:
    run = await deploy_kafka_worker.main(topics, client, service="forbidden")
    assert (run.status, run.result) == ("COMPLETED", "FAILED")
    deploy = run.node_runs[-1]
    assert deploy.result == "FAILED"
    assert deploy.output == {
        "error": {"message": "RuntimeError: forbidden may not go to production"}
    }
    assert any(
        line.log_level == "ERROR" and "may not go to production" in line.log
        for line in deploy.node_run_logs
    )


async def test_integration_action_is_claimed_acked_and_completed(client: RunsClient) -> None:
    installation = f"example-{uuid.uuid4().hex[:8]}"
    run = await integration_claim_worker.main(client, ref="v2", installation=installation)
    assert (run.status, run.result) == ("COMPLETED", "SUCCESS")
    dispatch = run.node_runs[-1]
    link = "https://ci.example.com/acme/shop/runs/shop-v2"
    assert dispatch.node_config_type == "INTEGRATION_ACTION"
    assert dispatch.external_run_id == "shop-v2"
    assert dispatch.links == [link]
    assert dispatch.output == {"workflowRunUrl": link, "conclusion": "success"}
    assert [line.log for line in dispatch.node_run_logs][-1] == "dispatched ci.yml on v2"
    assert await client.claim(installation) == []  # acked: never handed out again


async def test_runs_triggered_from_kafka(topics: Settings, client: RunsClient) -> None:
    runs = await kafka_producer.main(topics, client, [3, 30])
    assert [(r.status, r.result) for r in runs] == [("COMPLETED", "SUCCESS")] * 2
    chosen = [r.variables.outputs["big"]["selectedOutlet"] for r in runs]
    assert chosen[0] is None
    assert chosen[1]["identifier"] == "yes"
    assert all(r.created_by == "example-producer" for r in runs)
    assert all(r.node_runs[0].identifier == node_run_id(r.identifier, "trigger") for r in runs)
