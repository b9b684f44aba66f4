"""Secrets never leak: templated into webhook headers and bodies, KAFKA payloads and
outputs, they reach the webhook target and the KAFKA consumer (that is their point),
but nothing stored or served holds them: every Redis key, the run-events and
dead-letter topics, every API response and the engine's own log records."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from switchyard.consumers.webhook import WebhookService
from switchyard.topics.producer import EventProducer
from tests.conftest import Services
from tests.helpers import until
from tests.integration.engine_support import echo_server, read_all
from tests.security.stack import Stack, running_stack, stack_settings, write_auth_file

pytestmark = pytest.mark.integration


def _secrets() -> dict[str, str]:
    tag = uuid.uuid4().hex[:12]
    return {
        "apiToken": f"tok-{tag}-plain",
        # Characters JSON escapes: a verbose log of the request shows it escaped.
        "quoted": f'q"uo\\te-{tag}',
    }


def _needles(secrets: dict[str, str]) -> list[bytes]:
    """Each secret as raw bytes and as it appears inside a JSON string."""
    found: set[bytes] = set()
    for value in secrets.values():
        found.add(value.encode())
        found.add(orjson.dumps(value)[1:-1])
    return sorted(found)


@pytest.fixture
async def stack(
    services: Services, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    auth = write_auth_file(tmp_path_factory.mktemp("secrets"))
    settings = stack_settings(
        services, f"sc{uuid.uuid4().hex[:8]}", auth, secrets=_secrets(),
        webhook_allow_hosts=["127.0.0.1/32"],  # the echo server, once the guard is wired
    )  # fmt: skip
    async with running_stack(settings) as found:
        yield found


@pytest.fixture
async def executor(stack: Stack) -> AsyncIterator[WebhookService]:
    settings = stack.settings
    async with httpx.AsyncClient() as http, EventProducer(settings) as producer:
        service = WebhookService(settings, producer, http, lambda: datetime.now(UTC))
        await service.loop.start()
        task = asyncio.create_task(service.loop.run())
        yield service
        service.loop.stop_soon()
        await task
        await service.loop.stop()


def _workflow(identifier: str, url: str) -> dict[str, Any]:
    secret = '{{ .secrets["apiToken"] }}'
    quoted = '{{ .secrets["quoted"] }}'
    return {
        "identifier": identifier,
        "nodes": [
            {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER"}},
            {"identifier": "call", "verbose": True, "config": {
                "type": "WEBHOOK", "url": url, "method": "POST",
                "headers": {"Authorization": f"Bearer {secret}", "X-Quoted": quoted},
                "body": {"token": secret, "quoted": quoted, "both": f"{secret}/{quoted}"},
            }, "variables": {"echo": "{{ .result.response.data.received }}",
                             "token": secret}},
            {"identifier": "publish", "verbose": True, "config": {"type": "KAFKA", "payload": {
                "token": secret, "quoted": quoted, "echo": "{{ .outputs.call }}",
            }}},
        ],
        "connections": [
            {"sourceIdentifier": "trigger", "targetIdentifier": "call"},
            {"sourceIdentifier": "call", "targetIdentifier": "publish"},
        ],
    }  # fmt: skip


async def _redis_dump(url: str) -> list[tuple[str, bytes]]:
    """Every key of the database and everything it holds, as bytes."""
    client = aioredis.Redis.from_url(url)
    found: list[tuple[str, bytes]] = []
    try:
        async for key in client.scan_iter(count=1000):
            raw_kind = await client.type(key)
            kind = raw_kind.decode() if isinstance(raw_kind, bytes) else str(raw_kind)
            value: Any
            if kind == "string":
                value = await client.get(key)
            elif kind == "hash":
                value = await client.hgetall(key)
            elif kind == "list":
                value = await client.lrange(key, 0, -1)
            elif kind == "set":
                value = await client.smembers(key)
            elif kind == "zset":
                value = await client.zrange(key, 0, -1)
            elif kind == "stream":
                value = await client.xrange(key)
            else:
                value = kind
            found.append((key.decode(errors="replace"), key + repr(value).encode()))
    finally:
        await client.aclose()
    return found


def _leaks(where: str, blob: bytes, needles: list[bytes]) -> list[str]:
    # repr() of bytes escapes quotes and backslashes differently: look in both forms.
    texts = [blob, blob.replace(b"\\\\", b"\\"), blob.replace(b'\\"', b'"')]
    return [f"{where}: {n!r}" for n in needles if any(n in text for text in texts)]


@pytest.mark.usefixtures("executor")
async def test_secrets_reach_their_targets_but_nothing_stored_or_served(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = stack.settings.secrets
    needles = _needles(secrets)
    api = stack.api
    with echo_server() as (url, requests):
        wf = f"sec-{uuid.uuid4().hex[:6]}"
        await api.define(_workflow(wf, f"{url}/hook"))
        run = await api.trigger(wf, {})
        run_id = run["identifier"]

        async def waiting() -> dict[str, Any]:
            return await api.run(run_id)

        state = await until(
            waiting,
            lambda r: any(nr["node"]["identifier"] == "publish" for nr in r["nodeRuns"]),
            within=30,
        )
    # The webhook target got the secrets: that is what they are for.
    assert requests[0]["body"]["token"] == secrets["apiToken"]
    assert requests[0]["body"]["quoted"] == secrets["quoted"]

    # An external consumer completes the KAFKA node echoing the secrets back.
    publish = next(nr for nr in state["nodeRuns"] if nr["node"]["identifier"] == "publish")
    patch = await api.call(
        "PATCH", f"/v1/workflows/nodes/runs/{publish['identifier']}",
        json={"status": "COMPLETED", "result": "SUCCESS",
              "output": {"echo": secrets["apiToken"], secrets["quoted"]: "as a key"},
              "logs": [{"logLevel": "INFO", "log": f"used {secrets['apiToken']}",
                        "tags": {"secret": secrets["quoted"]}}],
              "links": [f"https://example.com/?t={secrets['apiToken']}"]},
    )  # fmt: skip
    assert patch.status_code == 200, patch.text
    final = await until(waiting, lambda r: r["status"] == "COMPLETED", within=30)
    assert final["result"] == "SUCCESS", final

    registry = api.ctx.registry
    # The KAFKA consumer gets the rendered payload, secrets included (its point too).
    requests_topic = await read_all(stack.settings, registry.node_run_requests.name)
    assert any(secrets["apiToken"].encode() in r.value for r in requests_topic)

    leaks: list[str] = []
    for path in (
        f"/v1/workflows/runs/{run_id}",
        f"/v1/workflows/runs?workflowIdentifiers={wf}",
        f"/v1/workflows/{wf}",
        "/v1/workflows",
    ):
        for who in ("admin", "machine", "member"):
            response = await api.call("GET", path, who)
            leaks += _leaks(f"GET {path} as {who}", response.content, needles)
    for key, blob in await _redis_dump(stack.settings.redis_url):
        leaks += _leaks(f"redis {key}", blob, needles)
    for topic in (registry.run_events.name, registry.dead_letter.name):
        for record in await read_all(stack.settings, topic):
            leaks += _leaks(f"topic {topic}", record.value or b"", needles)
    # Our own log records (aiokafka's DEBUG records show every message it sends, as the
    # topics do: keep aiokafka above DEBUG in production).
    worker_leaks: list[str] = []
    for record in caplog.records:
        if not record.name.startswith("switchyard"):
            continue
        found = _leaks(f"log {record.name}", record.getMessage().encode(), needles)
        if record.name == "switchyard.worker":
            worker_leaks += found
        else:
            leaks += found
    assert leaks == []

    # And the masks are where the secrets were.
    call = next(nr for nr in final["nodeRuns"] if nr["node"]["identifier"] == "call")
    assert call["output"]["response"]["data"]["received"]["token"] == "****"
    assert final["variables"]["outputs"]["call"]["token"] == "****"
    lines = [line["log"] for nr in final["nodeRuns"] for line in nr["nodeRunLogs"]]
    assert any("****" in line for line in lines)
    # A verbose webhook node's request and response lines reach the executor's
    # process log too: masked there as well.
    assert worker_leaks == []
