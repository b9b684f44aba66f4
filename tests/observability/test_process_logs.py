"""An engine process's log with SWITCHYARD_LOG_FORMAT=json: every line one JSON object,
the lines about a run carrying the run, event type and inbox record they are about,
and a secret that reaches a log line masked."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from switchyard.schemas import RunTriggered, encode
from switchyard.schemas.masking import MASK
from switchyard.schemas.settings import Settings
from switchyard.topics.partitioning import partition_of
from switchyard.topics.producer import EventProducer
from tests.helpers import private_redis_db, until
from tests.integration.engine_support import Driver
from tests.observability.processes import Launched, launched

pytestmark = pytest.mark.integration


def _workflow(identifier: str) -> dict[str, Any]:
    """trigger (an environment input) → work (KAFKA), whose payload reads a secret."""
    return {
        "identifier": identifier,
        "nodes": [
            {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER", "userInputs": {
                "properties": {
                    "environment": {"type": "string", "enum": ["staging", "production"]},
                },
                "required": ["environment"],
            }}},
            {"identifier": "work", "config": {"type": "KAFKA", "payload": {
                "token": '{{ .secrets["x"] }}', "env": "{{ .outputs.trigger.environment }}",
            }}},
        ],
        "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "work"}],
    }  # fmt: skip


def _trigger(workflow: str, run_id: str, environment: str) -> bytes:
    return encode(
        RunTriggered.model_validate({
            "runId": run_id, "workflowIdentifier": workflow,
            "inputs": {"environment": environment},
            "createdBy": "tests@example.com", "triggeredAt": datetime.now(UTC),
        })
    )  # fmt: skip


def _lines(stack: Launched) -> list[Any]:
    text = stack.logs["engine"].read_text(errors="replace")
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


async def _about(stack: Launched, run_id: str, words: str) -> list[dict[str, Any]]:
    return [
        line
        for line in _lines(stack)
        if isinstance(line, dict) and line.get("run_id") == run_id and words in line["message"]
    ]


@pytest.fixture
async def own(topics: Settings, session_tag: str) -> AsyncIterator[tuple[Settings, Driver]]:
    """The session's Redis database with a secret ``x``, and a driver on it. Not db 0:
    it is shared with other sessions, whose leftovers (an outbox of a topic deleted
    since) an engine starting there would try to publish."""
    secret = f"sy-secret-{uuid.uuid4().hex}"
    mine = private_redis_db(topics, session_tag).model_copy(update={"secrets": {"x": secret}})
    redis = aioredis.Redis.from_url(mine.redis_url)
    async with EventProducer(mine) as producer:
        yield mine, Driver(mine, redis, producer)
    await redis.aclose()


async def _send(driver: Driver, run_id: str, value: bytes) -> tuple[int, int]:
    """Produce to the inbox; the record's (partition, offset)."""
    sent: Any = await (await driver.producer.send(driver.registry.inbox.name, run_id, value))
    return sent.partition, sent.offset


async def test_engine_logs_are_json_lines_with_the_record_they_are_about(
    own: tuple[Settings, Driver], tmp_path: Path
) -> None:
    mine, driver = own
    secret = mine.secrets["x"]
    workflow = f"logs-{uuid.uuid4().hex[:8]}"
    await driver.define(_workflow(workflow))
    inbox = driver.registry.inbox.name
    started, refused = (f"wfr_{uuid.uuid4().hex[:16]}" for _ in range(2))

    async with launched(mine, ["engine"], tmp_path, {"SWITCHYARD_LOG_FORMAT": "json"}) as stack:
        # A run that starts (its KAFKA node's payload rendered with the secret), then a
        # second copy of its trigger: the engine logs that it ignored it.
        await _send(driver, started, _trigger(workflow, started, "staging"))
        state = await driver.wait(started, lambda s: "work" in {n.node for n in s.node_runs})
        again = await _send(driver, started, _trigger(workflow, started, "staging"))
        ignored = await until(partial(_about, stack, started, "ignored duplicate_trigger"),
                              within=60)  # fmt: skip
        # A trigger whose input is the secret: refused, and its dead letter's reason,
        # which quotes the input, is logged masked.
        rejected = await _send(driver, refused, _trigger(workflow, refused, secret))
        lettered = await until(partial(_about, stack, refused, "dead letter invalid_inputs"),
                               within=60)  # fmt: skip

    assert state.workflow_identifier == workflow
    lines = _lines(stack)
    assert all(isinstance(line, dict) for line in lines), lines
    assert all(line["process"] == "engine" for line in lines)
    assert any(line["message"].startswith("engine consuming") for line in lines)
    (line,) = ignored
    assert line["level"] == "INFO"
    assert (line["event_type"], line["topic"], line["partition"], line["offset"]) == (
        "RunTriggered", inbox, *again
    )  # fmt: skip
    assert again[0] == partition_of(started, mine.inbox_partitions)
    (letter,) = lettered
    assert letter["level"] == "WARNING"
    assert (letter["event_type"], letter["topic"], letter["partition"], letter["offset"]) == (
        "RunTriggered", inbox, *rejected
    )  # fmt: skip
    assert f"(got '{MASK}')" in letter["message"], letter
    assert secret not in stack.logs["engine"].read_text()
