"""Agent webhooks against the real engine, topics and bridge, with a stand-in for Port's
execution agent written from the contract (README: Execution agent), not from its code:
it reads <org id>.runs, checks the signature byte for byte, calls the URL and reports by
PATCH. In polling mode the node run is claimable by _PORT_EXEC_AGENT instead."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from switchyard.bridge.app import create_app
from switchyard.bridge.credentials import hash_secret
from switchyard.engine.service import EngineService
from switchyard.engine.store import keys
from switchyard.engine.templates import JqTemplates, TemplateLimits
from switchyard.schemas.settings import Settings
from switchyard.topics.admin import ensure_topics
from tests.bridge.support import SECRET, TOKEN_SECRET, Api, node_run
from tests.helpers import private_redis_db, until
from tests.integration.engine_support import consume, echo_server, read_all

pytestmark = pytest.mark.integration

AGENT_ID = "port-agent"
AGENT_SECRET = "agent-secret-Zoë-0123456789"
BODY = {"name": "{{ .outputs.trigger.name }}", "note": "déploiement — 東京 ✓",
        "ratio": 0.1, "big": 1e100, "nested": {"z": [1, {"y": None}], "a": True}}  # fmt: skip


@pytest.fixture
async def agent_settings(
    settings: Settings, session_tag: str, tmp_path: Path
) -> AsyncIterator[Settings]:
    auth = {
        "users": [{"email": "admin@example.com", "role": "Admin", "clientId": "admin",
                   "clientSecretHash": hash_secret(SECRET)}],
        "machines": [{"name": "port-agent", "clientId": AGENT_ID,
                      "clientSecretHash": hash_secret(AGENT_SECRET)}],
    }  # fmt: skip
    path = tmp_path / "auth.json"
    path.write_bytes(orjson.dumps(auth))
    own = private_redis_db(settings, session_tag).model_copy(
        update={
            "org_id": f"test-{uuid.uuid4().hex[:10]}",
            "agent_client_id": AGENT_ID,
            "agent_client_secret": SecretStr(AGENT_SECRET),
            "auth_file": path,
            "token_secret": SecretStr(TOKEN_SECRET),
            "trigger_wait_ms": 10_000,
        }
    )
    await ensure_topics(own)
    client = aioredis.Redis.from_url(own.redis_url)
    saved = await client.hget(keys.ORG, "settings")
    yield own
    # Put the organization's settings back: other tests of this database expect KAFKA.
    if saved is None:
        await client.hdel(keys.ORG, "settings")
    else:
        await client.hset(keys.ORG, "settings", saved)
    await client.aclose()


@pytest.fixture
async def stack(agent_settings: Settings) -> AsyncIterator[Api]:
    """The engine and the bridge app over the same Kafka, Redis and org id."""
    with JqTemplates(TemplateLimits.from_settings(agent_settings)) as templates:
        async with EngineService(agent_settings, templates):
            app = create_app(agent_settings)
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://b") as c:
                    yield Api(c, app)


def _workflow(identifier: str, url: str) -> dict[str, Any]:
    return {
        "identifier": identifier,
        "nodes": [
            {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {
                "properties": {"name": {"type": "string"}}, "required": ["name"]}}},
            {"identifier": "hook", "config": {
                "type": "WEBHOOK", "url": f"{url}/deploy", "agent": True, "synchronized": True,
                "headers": {"X-Team": "platform"}, "body": BODY}},
        ],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "hook"}],
    }  # fmt: skip


def verify(raw: bytes, secret: str) -> dict[str, Any] | None:
    """What an agent does with a message: the parsed message without the signature
    keys when ``X-Port-Signature`` is ``v1,`` + base64 HMAC-SHA256 (keyed with the
    secret) of "<X-Port-Timestamp>.<the rest as compact JSON, non-ASCII kept>"."""
    message = json.loads(raw.decode("utf-8"))
    headers = message.get("headers", {})
    got, timestamp = headers.pop("X-Port-Signature", None), headers.pop("X-Port-Timestamp", None)
    if got is None or timestamp is None:
        return None
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    mac = hmac.new(secret.encode(), f"{timestamp}.{text}".encode(), hashlib.sha256).digest()
    ok = hmac.compare_digest(got, "v1," + base64.b64encode(mac).decode())
    return message if ok else None


async def _token(api: Api) -> str:
    login = {"clientId": AGENT_ID, "clientSecret": AGENT_SECRET}
    response = await api.call("POST", "/v1/auth/access_token", None, json=login)
    assert response.status_code == 200, response.text
    token: str = response.json()["accessToken"]
    return token


async def test_the_agent_verifies_calls_and_reports_and_the_run_completes(
    stack: Api, agent_settings: Settings
) -> None:
    api = stack
    with echo_server() as (url, received):
        identifier = f"agent-wf-{uuid.uuid4().hex[:6]}"  # Redis outlives a test session
        await api.define(_workflow(identifier, url))
        run = await api.trigger(identifier, {"name": "ada"})
        nr_id = node_run(run, "hook")["identifier"]
        topic = f"{agent_settings.org_id}.runs"
        [record] = await consume(agent_settings, topic, 1, lambda r: nr_id.encode() in r.value)
        assert record.key == run["identifier"].encode()
        assert "déploiement — 東京 ✓".encode() in record.value  # sent unescaped

        message = verify(record.value, AGENT_SECRET)
        assert message is not None, "the signature does not verify"
        assert message["headers"] == {}
        method = message["payload"]["action"]["invocationMethod"]
        assert method == {"type": "WEBHOOK", "url": f"{url}/deploy", "method": "POST",
                          "headers": {"X-Team": "platform"}, "agent": True,
                          "synchronized": True}  # fmt: skip
        assert message["context"]["runId"] == nr_id
        assert message["context"]["workflowRunId"] == run["identifier"]
        assert message["payload"]["name"] == "ada"
        assert message["payload"]["ratio"] == 0.1
        assert message["payload"]["nested"] == {"z": [1, {"y": None}], "a": True}

        # Tampered with: the same bytes but another value fail verification.
        assert verify(record.value.replace(b'"ada"', b'"eve"'), AGENT_SECRET) is None
        assert verify(record.value, "not the agent's secret") is None

        # The agent posts the message to the URL and reports the response.
        async with httpx.AsyncClient() as http:
            answer = await http.request(method["method"], method["url"], json=message)
        assert received[-1]["body"]["context"]["runId"] == nr_id
        report = {
            "status": "COMPLETED",
            "result": "SUCCESS",
            "output": {"response": {"status": answer.status_code, "data": answer.json()}},
        }
        headers = {"Authorization": f"Bearer {await _token(api)}"}
        patched = await api.call("PATCH", f"/v1/workflows/nodes/runs/{nr_id}", None,
                                 headers=headers, json=report)  # fmt: skip
        assert patched.status_code == 200, patched.text

    done = await until(lambda: api.run(run["identifier"]), lambda r: r["status"] == "COMPLETED")
    assert done["result"] == "SUCCESS"
    hook = node_run(done, "hook")
    assert hook["output"]["response"]["status"] == 200
    assert hook["output"]["response"]["data"]["received"]["payload"]["name"] == "ada"


async def test_polling_mode_makes_the_node_run_claimable_and_publishes_nothing(
    stack: Api, agent_settings: Settings
) -> None:
    api = stack
    client = aioredis.Redis.from_url(agent_settings.redis_url)
    await client.hset(keys.ORG, "settings", orjson.dumps({"portAgentStreamerName": "POLLING"}))
    await client.aclose()
    identifier = f"agent-poll-{uuid.uuid4().hex[:6]}"
    await api.define(_workflow(identifier, "http://intranet.test"))
    run = await api.trigger(identifier, {"name": "ada"})
    nr_id = node_run(run, "hook")["identifier"]
    headers = {"Authorization": f"Bearer {await _token(api)}"}

    async def claim() -> list[dict[str, Any]]:
        response = await api.call(
            "POST", "/v1/workflows/runs/claim-pending", None, headers=headers,
            json={"installationId": "_PORT_EXEC_AGENT", "limit": 10},
        )  # fmt: skip
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["nodeRuns"]
        return found

    [item] = await until(claim, bool)
    assert item["identifier"] == nr_id
    body = {**BODY, "name": "ada"}
    assert item["config"] == {"type": "WEBHOOK", "url": "http://intranet.test/deploy",
                              "method": "POST", "headers": {"X-Team": "platform"},
                              "agent": True, "synchronized": True, "body": body}  # fmt: skip
    ack = await api.call("PATCH", "/v1/workflows/runs/ack", None, headers=headers,
                         json={"nodeRunIdentifier": nr_id})  # fmt: skip
    assert ack.status_code == 200, ack.text
    report = {"status": "COMPLETED", "result": "SUCCESS",
              "output": {"response": {"status": 201, "data": {}}}}  # fmt: skip
    patched = await api.call("PATCH", f"/v1/workflows/nodes/runs/{nr_id}", None,
                             headers=headers, json=report)  # fmt: skip
    assert patched.status_code == 200, patched.text
    done = await until(lambda: api.run(run["identifier"]), lambda r: r["status"] == "COMPLETED")
    assert done["result"] == "SUCCESS"
    # Every message of the run's steps was published before the run completed.
    assert await read_all(agent_settings, f"{agent_settings.org_id}.runs") == []
