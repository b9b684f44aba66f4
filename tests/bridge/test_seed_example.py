"""Seed 001's Python example, pointed at the bridge, completes an async WEBHOOK node."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from switchyard.bridge.app import create_app
from switchyard.consumers.webhook import WebhookService
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from tests.bridge import seed_001_external_processing as seed
from tests.bridge.support import SECRET, Api, node_run, trigger_node
from tests.helpers import until
from tests.integration.engine_support import echo_server
from tests.ports import serving_app

pytestmark = pytest.mark.integration


@pytest.fixture
async def served(bridge_settings: Settings) -> AsyncIterator[str]:
    """The bridge on a real port, as an external system reaches it."""
    async with serving_app(create_app(bridge_settings)) as url:
        yield url


@pytest.fixture
async def executor(bridge_settings: Settings) -> AsyncIterator[None]:
    async with httpx.AsyncClient() as http, EventProducer(bridge_settings) as producer:
        service = WebhookService(bridge_settings, producer, http, lambda: datetime.now(UTC))
        await service.loop.start()
        task = asyncio.create_task(service.loop.run())
        yield
        service.loop.stop_soon()
        await task
        await service.loop.stop()


@pytest.mark.usefixtures("engine", "executor")
async def test_the_seed_python_example_completes_a_node_run(
    api: Api, served: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(seed, "PORT_API", served)
    monkeypatch.setattr(seed, "CLIENT_ID", "machine")
    monkeypatch.setattr(seed, "CLIENT_SECRET", SECRET)
    wf_id = f"seed-{uuid.uuid4().hex[:8]}"
    with echo_server() as (receiver, received):
        await api.define({
            "identifier": wf_id,
            "nodes": [trigger_node(), {"identifier": "deploy", "config": {
                "type": "WEBHOOK", "url": f"{receiver}/hook", "synchronized": False,
                "body": {"service": "{{ .outputs.trigger.name }}"},
            }}],
            "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "deploy"}],
        })  # fmt: skip
        run = await api.trigger(wf_id, {"name": "checkout"})
        delivered = await until(lambda: asyncio.sleep(0, list(received)), within=20)
    [webhook] = delivered
    webhook_data: dict[str, Any] = webhook["body"]
    assert webhook_data["payload"] == {"service": "checkout"}
    assert webhook_data["context"]["workflowRunId"] == run["identifier"]

    await asyncio.to_thread(seed.process_webhook, webhook_data)

    final = await until(
        lambda: api.run(run["identifier"]), lambda r: r["status"] == "COMPLETED", within=20
    )
    assert final["result"] == "SUCCESS"
    deploy = node_run(final, "deploy")
    assert deploy["output"] == {"resourceId": "abc123", "deployed": "checkout"}
    assert [line["log"] for line in deploy["nodeRunLogs"]][-2:] == [
        "Processing started",
        "Operation completed: {'resourceId': 'abc123', 'deployed': 'checkout'}",
    ]
