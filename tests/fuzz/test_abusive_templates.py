"""Abusive templates in a workflow, through the real engine: each fails its node with a
clear message within the configured bound, and the engine serves the next run."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from switchyard.engine.service import EngineService
from switchyard.engine.templates import JqTemplates, TemplateLimits
from switchyard.schemas.settings import Settings
from switchyard.topics.admin import ensure_topics
from switchyard.topics.producer import EventProducer
from tests.integration.engine_support import Driver

pytestmark = pytest.mark.integration

TIMEOUT_MS = 300
OUTPUT_BYTES = 64 * 1024


@pytest.fixture
async def bounded(settings: Settings) -> Settings:
    tuned = settings.model_copy(
        update={"template_timeout_ms": TIMEOUT_MS, "template_max_output_bytes": OUTPUT_BYTES}
    )
    await ensure_topics(tuned)
    return tuned


@pytest.fixture
def templates(bounded: Settings) -> Iterator[JqTemplates]:
    with JqTemplates(TemplateLimits.from_settings(bounded)) as found:
        yield found


@pytest.fixture
async def driver(bounded: Settings) -> AsyncIterator[Driver]:
    client = aioredis.Redis.from_url(bounded.redis_url)
    async with EventProducer(bounded) as producer:
        yield Driver(bounded, client, producer)
    await client.aclose()


@pytest.fixture
async def engine(bounded: Settings, templates: JqTemplates) -> AsyncIterator[EngineService]:
    async with EngineService(bounded, templates) as service:
        yield service


ABUSE = {
    # name: (template, words the node's ERROR log must hold)
    "infinite recursion": ("{{ def f: f; f }}", f"{TIMEOUT_MS} ms"),
    "recursion with an argument": ("{{ def f(x): f(x + 1); f(0) }}", ""),
    "unbounded repeat": ("{{ [repeat(1)] }}", ""),
    "endless range": ("{{ [range(0; infinite)] | length }}", ""),
    "huge range": ("{{ [range(100000000)] }}", ""),
    "huge string": ('{{ "x" * 100000000 }}', ""),
    "doubling string": ('{{ reduce range(40) as $i ("x"; . + .) }}', ""),
    "deep nesting": ("{{ reduce range(100000) as $i (0; [.]) }}", ""),
    "deep parse": ('{{ ("[" * 100000) | fromjson }}', ""),
    "until forever": ("{{ 0 | until(false; .) }}", f"{TIMEOUT_MS} ms"),
    "syntax error": ("{{ .outputs[ }}", ""),
    "error builtin": ('{{ error("boom") }}', "boom"),
}


def _workflow(identifier: str, template: str) -> dict[str, object]:
    return {"identifier": identifier, "nodes": [
        {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER"}},
        {"identifier": "abuse", "config": {"type": "KAFKA", "payload": {"x": template}}},
    ], "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "abuse"}]}  # fmt: skip


@pytest.mark.usefixtures("engine")
@pytest.mark.parametrize("name", list(ABUSE))
async def test_an_abusive_template_fails_its_node_within_the_bound(
    driver: Driver, name: str
) -> None:
    template, words = ABUSE[name]
    workflow = f"abuse-{uuid.uuid4().hex[:6]}"
    await driver.define(_workflow(workflow, template))
    started = time.monotonic()
    run_id = await driver.trigger(workflow, {})
    state = await driver.wait(run_id, lambda s: s.status == "COMPLETED", within=30)
    took = time.monotonic() - started
    assert state.result == "FAILED"
    node = state.node_run_of("abuse")
    assert node is not None
    assert (node.status, node.result) == ("COMPLETED", "FAILED")
    logs = await driver.runs.logs(run_id, [node.id])
    errors = [entry.log for entry in logs[node.id] if entry.log_level == "ERROR"]
    assert errors, "no ERROR log"
    message = errors[-1]
    assert message.startswith("template failed:"), message
    assert template.strip("{} ")[:20] in message, message  # names the expression
    assert words in message, message
    assert node.output is not None
    assert node.output["error"]["message"] == message
    # Within the bound: the template's time limit plus the engine's own overhead,
    # never an unbounded wait (a sandbox restart after a kill is included).
    assert took < 10, f"{name} took {took:.1f} s"

    # The engine is still serving: a good run of another workflow completes its trigger.
    good = f"fine-{uuid.uuid4().hex[:6]}"
    await driver.define(_workflow(good, "{{ .workflowRun.identifier }}"))
    next_run = await driver.trigger(good, {})
    await driver.wait(
        next_run, lambda s: any(nr.node == "abuse" and nr.in_flight for nr in s.node_runs)
    )
