"""Malformed and hostile events produced straight to the inbox: each lands in the
dead-letter topic with its reason, and the engine goes on serving (a run afterwards
completes). Also what happens at and over the broker's message size limit."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from switchyard.engine.service import EngineService
from switchyard.engine.templates import JqTemplates, TemplateLimits
from switchyard.schemas import NodeRunUpdated, encode, node_run_id
from switchyard.schemas.settings import Settings
from switchyard.topics.admin import ensure_topics
from switchyard.topics.producer import EventProducer
from tests.integration.engine_support import Driver, consume, new_run_id

pytestmark = pytest.mark.integration

OUTPUT_LIMIT = 64 * 1024


@pytest.fixture
async def inbox_settings(settings: Settings) -> Settings:
    tuned = settings.model_copy(update={"node_output_max_bytes": OUTPUT_LIMIT})
    await ensure_topics(tuned)
    return tuned


@pytest.fixture
def templates(inbox_settings: Settings) -> Iterator[JqTemplates]:
    with JqTemplates(TemplateLimits.from_settings(inbox_settings)) as found:
        yield found


@pytest.fixture
async def driver(inbox_settings: Settings) -> AsyncIterator[Driver]:
    client = aioredis.Redis.from_url(inbox_settings.redis_url)
    async with EventProducer(inbox_settings) as producer:
        yield Driver(inbox_settings, client, producer)
    await client.aclose()


@pytest.fixture
async def engine(inbox_settings: Settings, templates: JqTemplates) -> AsyncIterator[EngineService]:
    async with EngineService(inbox_settings, templates) as service:
        yield service


def _kafka_workflow(identifier: str) -> dict[str, Any]:
    return {"identifier": identifier, "nodes": [
        {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER"}},
        {"identifier": "work", "config": {"type": "KAFKA", "payload": {"x": 1}}},
    ], "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "work"}]}  # fmt: skip


def _update(run_id: str, node_run: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": "NodeRunUpdated", "runId": run_id, "nodeRunId": node_run,
        "status": "COMPLETED", "result": "SUCCESS",
        "sentAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"), **fields,
    }  # fmt: skip


async def _waiting(driver: Driver) -> str:
    workflow = f"inbox-{uuid.uuid4().hex[:6]}"
    await driver.define(_kafka_workflow(workflow))
    run_id = await driver.trigger(workflow, {})
    await driver.wait(
        run_id, lambda s: any(nr.node == "work" and nr.in_flight for nr in s.node_runs)
    )
    return run_id


async def _letters(settings: Settings, driver: Driver, keys: list[str]) -> dict[str, Any]:
    wanted = {key.encode() for key in keys}
    found = await consume(
        settings, driver.registry.dead_letter.name, len(keys), lambda r: r.key in wanted, 30
    )
    return {record.key.decode(): orjson.loads(record.value) for record in found}


@pytest.mark.usefixtures("engine")
async def test_malformed_events_are_dead_lettered_with_their_reason(
    driver: Driver, inbox_settings: Settings
) -> None:
    victim = await _waiting(driver)  # a run in progress, whose node run others target
    victim_node_run = node_run_id(victim, "work")
    other = await _waiting(driver)
    unknown = new_run_id()
    poisons: dict[str, tuple[bytes, str, str]] = {}  # key: (value, code, words in the reason)

    def poison(value: bytes, code: str, words: str, key: str | None = None) -> None:
        poisons[key or new_run_id()] = (value, code, words)

    poison(os.urandom(512), "undecodable", "not JSON")
    poison(b"\x00\x01\x02", "undecodable", "not JSON")
    poison(b"", "undecodable", "not JSON")
    poison(b"[1, 2, 3]", "undecodable", "must be a JSON object (got list)")
    poison(b'"RunTriggered"', "undecodable", "must be a JSON object (got str)")
    poison(b"null", "undecodable", "must be a JSON object")
    poison(b'{"type": "Explode"}', "undecodable", "type")
    poison(b"{}", "undecodable", "type")
    poison(orjson.dumps({**_update(unknown, node_run_id(unknown, "work")), "status": 7}),
           "undecodable", "status")  # fmt: skip
    poison(orjson.dumps({**_update(unknown, node_run_id(unknown, "work")), "output": [1]}),
           "undecodable", "output")  # fmt: skip
    poison(orjson.dumps({**_update(unknown, "wfnr_x"), "runId": 42}), "undecodable", "runId")
    poison(orjson.dumps({"type": "RunTriggered", "runId": "wfr_" + "a" * 16,
                         "workflowIdentifier": ["x"], "createdBy": "", "triggeredAt": "soon"}),
           "undecodable", "workflowIdentifier")  # fmt: skip
    poison(orjson.dumps({**_update(victim, victim_node_run), "extra": True}),
           "undecodable", "extra")  # fmt: skip
    # A well-formed event for a run that does not exist.
    poison(encode(NodeRunUpdated.model_validate(_update(unknown, node_run_id(unknown, "work")))),
           "unknown_run", unknown, key=unknown)  # fmt: skip
    # An event for another run's node run, keyed and addressed to `other`.
    poison(encode(NodeRunUpdated.model_validate(_update(other, victim_node_run))),
           "unknown_node_run", victim_node_run, key=other)  # fmt: skip
    for key, (value, _, _) in poisons.items():
        await driver.send(key, value)

    letters = await _letters(inbox_settings, driver, list(poisons))
    for key, (value, code, words) in poisons.items():
        letter = letters[key]
        assert letter["code"] == code, (value[:80], letter)
        assert words in letter["reason"], (value[:80], letter["reason"])
        assert letter["topic"] == driver.registry.inbox.name

    # Nothing was applied: the victim still waits, untouched, and the engine goes on.
    for run_id in (victim, other):
        state = await driver.state(run_id)
        assert state is not None
        assert state.node_run_of("work") is not None
        assert state.status == "IN_PROGRESS"
    assert await driver.state(unknown) is None
    await _completes(driver, victim)


async def _completes(driver: Driver, run_id: str) -> None:
    event = NodeRunUpdated.model_validate(
        _update(run_id, node_run_id(run_id, "work"), output={"done": True})
    )
    await driver.send(run_id, encode(event))
    state = await driver.wait(run_id, lambda s: s.status == "COMPLETED", within=30)
    assert state.result == "SUCCESS"
    assert state.outputs["work"] == {"done": True}


@pytest.mark.usefixtures("engine")
async def test_an_oversized_output_is_refused_with_a_clear_reason(
    driver: Driver, inbox_settings: Settings
) -> None:
    run_id = await _waiting(driver)
    node_run = node_run_id(run_id, "work")
    big = _update(run_id, node_run, output={"blob": "b" * (OUTPUT_LIMIT + 10)})
    await driver.send(run_id, orjson.dumps(big))
    # Near the broker's limit too: the dead letter of a ~1 MB event must still fit.
    near = inbox_settings.kafka_max_message_bytes - 4096
    huge = _update(run_id, node_run, output={"blob": "h" * near})
    huge_bytes = orjson.dumps(huge)
    assert inbox_settings.kafka_max_message_bytes - 8192 < len(huge_bytes)
    await driver.send(run_id, huge_bytes)

    found = await consume(
        inbox_settings, driver.registry.dead_letter.name, 2,
        lambda r: r.key == run_id.encode(), 30,
    )  # fmt: skip
    for letter in (orjson.loads(r.value) for r in found):
        assert letter["code"] == "output_too_large"
        assert f"at most {OUTPUT_LIMIT} bytes" in letter["reason"]
        assert "SWITCHYARD_NODE_OUTPUT_MAX_BYTES" in letter["reason"]
    assert all(len(r.value) < inbox_settings.kafka_max_message_bytes for r in found)
    state = await driver.state(run_id)
    assert state is not None
    assert state.status == "IN_PROGRESS"  # refused, not applied
    await _completes(driver, run_id)


async def test_messages_over_the_size_limit_never_reach_the_inbox(
    driver: Driver, inbox_settings: Settings
) -> None:
    limit = inbox_settings.kafka_max_message_bytes
    run_id = new_run_id()
    with pytest.raises(KafkaError):  # our producer refuses to send it
        await driver.send(run_id, b"x" * (limit + 1))
    # A producer that allows more is refused by the broker (its default ~1 MB).
    raw = AIOKafkaProducer(
        bootstrap_servers=inbox_settings.kafka_bootstrap_servers,
        max_request_size=4 * limit,
        request_timeout_ms=10_000,
    )
    await raw.start()
    try:
        with pytest.raises(KafkaError):
            await raw.send_and_wait(driver.registry.inbox.name, b"y" * (2 * limit), key=b"k")
    finally:
        await raw.stop()


@pytest.mark.usefixtures("engine")
async def test_the_engine_serves_after_a_flood_of_garbage(driver: Driver) -> None:
    for _ in range(200):
        await driver.producer.send(driver.registry.inbox.name, new_run_id(), os.urandom(64))
    run_id = await _waiting(driver)
    await _completes(driver, run_id)
