"""The AI executor against a local OpenAI-compatible server (a fake of the endpoint, not
of Kafka or Redis), and AI nodes through the real engine and executor."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from switchyard.consumers.ai import AiExecutor, AiService
from switchyard.consumers.context import NodeLogger
from switchyard.engine.machine.state import RunState
from switchyard.schemas import AiRequest
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from tests.helpers import LocalHandler, serving
from tests.integration.engine_support import Driver

NODE_RUN = "wfnr_AiTest0000000001"
KEY = "sk-test-not-a-real-key"


class _Completions(LocalHandler):
    """``POST /v1/chat/completions``: echoes the prompt back as the answer. The user
    prompt ``status <n>`` answers n, ``sleep`` sleeps, ``empty`` has no choices."""

    def do_POST(self) -> None:
        body = self.body()
        count = self.record(
            {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
        )
        prompt = body["messages"][-1]["content"]
        answer: dict[str, Any]
        status, answer = 200, {
            "id": f"chatcmpl-{count}",
            "object": "chat.completion",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": f"echo: {prompt}"}}],
        }  # fmt: skip
        if prompt.startswith("status "):
            status, answer = int(prompt.split()[1]), {"error": {"message": "rate limited"}}
        elif prompt == "sleep":
            time.sleep(1.5)
        elif prompt == "empty":
            answer = {"id": "chatcmpl-x", "choices": []}
        self.answer(status, answer)


@pytest.fixture
def completions() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    with serving(_Completions) as (url, seen):
        yield f"{url}/v1", seen


@pytest.fixture
def ai_settings(completions: tuple[str, list[dict[str, Any]]]) -> Settings:
    url, _ = completions
    return Settings(
        ai_base_url=url, ai_api_key=SecretStr(KEY), ai_model="test-model", ai_timeout_s=0.5
    )


@pytest.fixture
async def executor(ai_settings: Settings) -> AsyncIterator[AiExecutor]:
    async with httpx.AsyncClient() as http:
        yield AiExecutor(http, ai_settings)


def _request(prompt: str, **fields: Any) -> AiRequest:
    return AiRequest.model_validate({
        "userPrompt": prompt, **fields,
        "context": {"workflowIdentifier": "wf-ai", "workflowRunId": "wfr_AiTest0000000001",
                    "nodeRunId": NODE_RUN, "nodeIdentifier": "ask", "runId": NODE_RUN},
    })  # fmt: skip


def _log() -> NodeLogger:
    return NodeLogger(lambda: datetime.now(UTC), NODE_RUN)


async def test_a_completion_is_the_nodes_response(
    executor: AiExecutor, completions: tuple[str, list[dict[str, Any]]]
) -> None:
    _, seen = completions
    outcome = await executor.execute(_request("hello", systemPrompt="be brief"), _log())
    assert (outcome.status, outcome.result) == ("COMPLETED", "SUCCESS")
    assert outcome.output == {"response": "echo: hello", "invocationIdentifier": "chatcmpl-1"}
    [call] = seen
    assert call["path"] == "/v1/chat/completions"
    assert call["auth"] == f"Bearer {KEY}"
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]
    assert call["body"] == {"model": "test-model", "messages": messages}


async def test_an_output_schema_asks_for_json_and_the_nodes_model_wins(
    executor: AiExecutor, completions: tuple[str, list[dict[str, Any]]]
) -> None:
    _, seen = completions
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    await executor.execute(_request("hi", model="other", outputSchema=schema), _log())
    body = seen[0]["body"]
    assert body["model"] == "other"
    assert body["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "output", "schema": schema}
    }  # fmt: skip


@pytest.mark.parametrize(
    ("prompt", "check"),
    [
        ("status 429", lambda out: out["response"]["status"] == 429),
        ("sleep", lambda out: out["timeout"] is True),
        ("empty", lambda out: "without choices[0].message.content" in out["error"]["message"]),
    ],
)
async def test_failures_fail_the_node_saying_why(
    executor: AiExecutor, prompt: str, check: Any
) -> None:
    log = _log()
    outcome = await executor.execute(_request(prompt), log)
    assert outcome.result == "FAILED"
    assert outcome.output is not None
    assert check(outcome.output), outcome.output
    assert [line.log_level for line in log.lines] == ["ERROR"]
    assert all(KEY not in line.log for line in log.lines)


async def test_no_endpoint_on_the_executor_fails_the_node() -> None:
    async with httpx.AsyncClient() as http:
        outcome = await AiExecutor(http, Settings()).execute(_request("hi"), _log())
    assert outcome.result == "FAILED"
    assert outcome.output is not None
    assert "SWITCHYARD_AI_BASE_URL" in outcome.output["error"]["message"]


# -- through the real engine and executor ------------------------------------------------


@pytest.fixture
def settings(settings: Settings, ai_settings: Settings) -> Settings:
    """The engine and executor both see the endpoint (the engine: that AI nodes run)."""
    return settings.model_copy(
        update={k: getattr(ai_settings, k) for k in ("ai_base_url", "ai_api_key", "ai_model")}
    )


@pytest.fixture
async def ai_service(topics: Settings, producer: EventProducer) -> AsyncIterator[AiService]:
    async with httpx.AsyncClient() as http:
        service = AiService(topics, producer, http, lambda: datetime.now(UTC))
        async with service.loop:
            yield service


@pytest.mark.integration
@pytest.mark.usefixtures("engine", "ai_service")
async def test_an_ai_node_feeds_the_next_node_through_the_real_stack(driver: Driver) -> None:
    ask = {"type": "AI", "userPrompt": "run {{ .workflowRun.identifier }}"}
    after = {"type": "KAFKA", "payload": {"said": "{{ .outputs.ask.response }}"}}
    chain = [
        {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER"}},
        {"identifier": "ask", "config": ask},
        {"identifier": "after", "config": after},
    ]
    identifier = f"ai-{uuid.uuid4().hex[:6]}"
    definition: dict[str, Any] = {
        "identifier": identifier, "nodes": chain,
        "connections": [{"sourceIdentifier": a["identifier"], "targetIdentifier": b["identifier"]}
                        for a, b in itertools.pairwise(chain)],
    }  # fmt: skip
    await driver.define(definition)
    run_id = await driver.trigger(identifier, {})

    def asked(state: RunState) -> bool:
        return state.node_run_of("after") is not None

    state = await driver.wait(run_id, asked)
    assert state.outputs["ask"]["response"] == f"echo: run {run_id}"
    assert state.outputs["ask"]["invocationIdentifier"].startswith("chatcmpl-")
