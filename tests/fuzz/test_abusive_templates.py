"""Abusive templates in a workflow, through the real engine: each hits one named bound
(time, memory, output size, depth, or jq's own refusal), fails its node with the
sentence the sandbox gives for that bound, and the engine serves the next run."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis

from switchyard.engine.service import EngineService
from switchyard.engine.templates import JqTemplates, TemplateLimits
from switchyard.schemas.settings import Settings
from switchyard.topics.admin import ensure_topics
from switchyard.topics.producer import EventProducer
from tests.integration.engine_support import Driver

pytestmark = pytest.mark.integration

# A time case gets a short limit and the full memory; every other case gets time to
# spare and a smaller memory, so a slow machine can't turn its bound into a timeout
# (``[range(1e8)]`` takes about 1.6 s to fill 128 MB, 0.3 s is far short of it).
TIME = TemplateLimits(timeout_ms=300, max_output_bytes=64 * 1024, memory_mb=256)
ROOMY = TemplateLimits(timeout_ms=10_000, max_output_bytes=64 * 1024, memory_mb=128)

TOOK_TOO_LONG = f"template took longer than {TIME.timeout_ms} ms"
OUT_OF_MEMORY = f"template exceeded the sandbox memory limit of {ROOMY.memory_mb} MB"
TOO_BIG = "template output exceeds 64 KiB"


@dataclass(frozen=True)
class Abuse:
    template: str
    bound: str  # what stops it: time, memory, output size, depth, syntax, jq error
    message: str  # the start of the node's ERROR log after "template failed: "


ABUSE = {
    "infinite recursion": Abuse("{{ def f: f; f }}", "time", TOOK_TOO_LONG),
    "unbounded repeat": Abuse("{{ [repeat(1)] }}", "time", TOOK_TOO_LONG),
    "endless range": Abuse("{{ [range(0; infinite)] | length }}", "time", TOOK_TOO_LONG),
    "until forever": Abuse("{{ 0 | until(false; .) }}", "time", TOOK_TOO_LONG),
    # Each call keeps its argument's closure: jq's stack grows until memory runs out.
    "recursion with an argument": Abuse("{{ def f(x): f(x + 1); f(0) }}", "memory",
                                        OUT_OF_MEMORY),
    "huge range": Abuse("{{ [range(100000000)] }}", "memory", OUT_OF_MEMORY),
    "doubling string": Abuse('{{ reduce range(40) as $i ("x"; . + .) }}', "memory",
                             OUT_OF_MEMORY),
    # 1 MB: a 100 MB string makes jq crash on a failed allocation (SIGSEGV) instead.
    "huge string": Abuse('{{ "x" * 1000000 }}', "output size", TOO_BIG),
    "nesting past the output depth": Abuse(
        "{{ reduce range(300) as $i (0; [.]) }}", "depth",
        "template output nests more than 254 arrays or objects"),
    # Deep enough that jq's recursion overflows the sandbox's stack before any output.
    "deep nesting": Abuse("{{ reduce range(100000) as $i (0; [.]) }}", "depth",
                          "template crashed the jq sandbox (killed by SIGSEGV); "
                          "it may nest too deeply or need more than the sandbox memory "
                          f"limit of {ROOMY.memory_mb} MB"),
    "deep parse": Abuse('{{ ("[" * 100000) | fromjson }}', "depth",
                        "jq error: Exceeds depth limit for parsing"),
    "syntax error": Abuse("{{ .outputs[ }}", "syntax",
                          "jq could not compile the expression: syntax error"),
    "error builtin": Abuse('{{ error("boom") }}', "jq error", "jq error: boom"),
}  # fmt: skip


@pytest.fixture
async def bounded(settings: Settings, name: str) -> Settings:
    limits = TIME if ABUSE[name].bound == "time" else ROOMY
    tuned = settings.model_copy(
        update={
            "template_timeout_ms": limits.timeout_ms,
            "template_max_output_bytes": limits.max_output_bytes,
            "template_memory_mb": limits.memory_mb,
        }
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


def _workflow(identifier: str, template: str) -> dict[str, object]:
    return {"identifier": identifier, "nodes": [
        {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER"}},
        {"identifier": "abuse", "config": {"type": "KAFKA", "payload": {"x": template}}},
    ], "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "abuse"}]}  # fmt: skip


@pytest.mark.usefixtures("engine")
@pytest.mark.parametrize("name", list(ABUSE), ids=[f"{n} ({a.bound})" for n, a in ABUSE.items()])
async def test_an_abusive_template_fails_its_node_for_its_bound(driver: Driver, name: str) -> None:
    abuse = ABUSE[name]
    template = abuse.template
    workflow = f"abuse-{uuid.uuid4().hex[:6]}"
    await driver.define(_workflow(workflow, template))
    run_id = await driver.trigger(workflow, {})
    # A generous deadline, not a speed check: every bound stops its template long before.
    state = await driver.wait(run_id, lambda s: s.status == "COMPLETED", within=60)
    assert state.result == "FAILED"
    node = state.node_run_of("abuse")
    assert node is not None
    assert (node.status, node.result) == ("COMPLETED", "FAILED")
    logs = await driver.runs.logs(run_id, [node.id])
    errors = [entry.log for entry in logs[node.id] if entry.log_level == "ERROR"]
    assert errors, "no ERROR log"
    message = errors[-1]
    # Failed for its bound's reason, in the sandbox's own sentence for it.
    assert message.startswith(f"template failed: {abuse.message}"), (abuse.bound, message)
    assert template.strip("{} ")[:20] in message, message  # names the expression
    assert node.output is not None
    assert node.output["error"]["message"] == message

    # The engine is still serving: a good run of another workflow completes its trigger.
    good = f"fine-{uuid.uuid4().hex[:6]}"
    await driver.define(_workflow(good, "{{ .workflowRun.identifier }}"))
    next_run = await driver.trigger(good, {})
    await driver.wait(
        next_run, lambda s: any(nr.node == "abuse" and nr.in_flight for nr in s.node_runs)
    )
