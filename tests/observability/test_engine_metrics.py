"""The engine's /metrics after a workload: runs and node runs counted once by result,
a redelivered batch counted once, and node runs in flight right after a restart; the
timers', the scheduler's and the trigger matcher's figures.

The real-process tests run on topics of their own (under the session's prefix, so
they are deleted with it) and on this session's own Redis database, so every figure
they read moved only by what they did: the amounts are exact.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import ConsumerRecord
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from switchyard.bridge.credentials import hash_secret
from switchyard.engine import metrics
from switchyard.engine.machine.effects import SetTimer
from switchyard.engine.processor import InboxRecord, Outcome
from switchyard.engine.scheduler import SchedulerService
from switchyard.engine.store import keys
from switchyard.engine.store.plan import timer_commands
from switchyard.engine.store.runs import RunStore
from switchyard.engine.store.slots import partition_tag
from switchyard.engine.store.workflows import WorkflowStore
from switchyard.engine.templates import JqTemplates, TemplateLimits
from switchyard.engine.timers import TimerService
from switchyard.engine.trigger_matcher import TriggerMatcher
from switchyard.schemas import (
    NodeRunUpdated,
    RunTriggered,
    encode,
    node_run_id,
    parse_workflow,
    timer_id,
)
from switchyard.schemas.entities import EntityEvent
from switchyard.schemas.settings import Settings
from switchyard.topics.admin import ensure_topics
from switchyard.topics.partitioning import partition_of
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry
from switchyard.topics.telemetry import metrics as telemetry
from tests.helpers import LocalHandler, private_redis_db, serving, until
from tests.integration.engine_support import make_processor, new_run_id
from tests.observability.processes import Launched, launched
from tests.ports import free_port

pytestmark = pytest.mark.integration

CLIENT_SECRET = "engine-metrics-client-secret"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Answer(LocalHandler):
    def do_POST(self) -> None:
        self.body()
        self.answer(200, {"ok": True})


@pytest.fixture
async def own(settings: Settings, session_tag: str) -> Settings:
    """The session's settings on topics of this test's own and the session's Redis db."""
    prefix = f"{settings.topic_prefix}m{uuid.uuid4().hex[:8]}."
    found = private_redis_db(settings, session_tag).model_copy(update={"topic_prefix": prefix})
    await ensure_topics(found)
    return found


@pytest.fixture
def templates() -> Iterator[JqTemplates]:
    with JqTemplates(TemplateLimits()) as found:
        yield found


@pytest.fixture
def metrics_on() -> Iterator[None]:
    was = telemetry.enabled()
    telemetry.set_enabled(True)
    yield
    telemetry.set_enabled(was)


async def scrape(stack: Launched) -> Samples:
    """Every sample of the engine's /metrics, parsed as Prometheus parses it."""
    async with httpx.AsyncClient() as client:
        response = await client.get(stack.ops_url("engine") + "/metrics")
    assert response.status_code == HTTPStatus.OK, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _partitions(settings: Settings) -> int:
    return TopicRegistry.from_settings(settings).inbox.partitions


def _tags(settings: Settings) -> list[str]:
    """Every inbox partition's hash tag: each keeps its own counters and timers."""
    partitions = _partitions(settings)
    return [partition_tag(p, partitions) for p in range(partitions)]


async def _in_flight(redis: aioredis.Redis, settings: Settings, node_type: str) -> int:
    """The stored count of ``node_type``'s node runs in flight: every partition's sum."""
    found = [await redis.hget(keys.node_runs_in_flight(tag), node_type) for tag in _tags(settings)]
    return sum(int(raw or 0) for raw in found)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def definition(identifier: str, url: str, *, condition: bool) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [
        {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER"}},
        {"identifier": "call", "config": {"type": "WEBHOOK", "url": url, "method": "POST"}},
    ]
    connections = [{"sourceIdentifier": "trigger", "targetIdentifier": "call"}]
    if condition:
        nodes.append({"identifier": "check", "config": {"type": "CONDITION", "outlets": [
            {"identifier": "go", "expression": ".outputs.trigger != null"}]}})  # fmt: skip
        connections = [
            {"sourceIdentifier": "trigger", "targetIdentifier": "check"},
            {"sourceIdentifier": "check", "targetIdentifier": "call",
             "sourceOutletIdentifier": "go"},
        ]  # fmt: skip
    return {"identifier": identifier, "nodes": nodes, "connections": connections}


def auth_file(home: Path) -> Path:
    path = home / "auth.json"
    admin = {"clientId": "admin", "clientSecretHash": hash_secret(CLIENT_SECRET),
             "email": "admin@example.com", "role": "Admin", "teams": []}  # fmt: skip
    path.write_bytes(orjson.dumps({"users": [admin], "machines": []}))
    return path


async def finished(api: httpx.AsyncClient, stack: Launched, run_id: str) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        found: dict[str, Any] = (await api.get(f"/v1/workflows/runs/{run_id}")).json()
        return found.get("workflowRun") or {}

    try:
        return await until(run, lambda r: r.get("status") == "COMPLETED", within=45)
    except AssertionError as error:
        logs = "\n".join(f"{n}:\n{stack.log(n)}" for n in ("engine", "executor"))
        raise AssertionError(f"{error}\n{logs}") from None


async def test_a_run_that_succeeds_and_one_that_fails_are_counted_once_by_result(
    own: Settings, tmp_path: Path
) -> None:
    settings = own.model_copy(
        update={"auth_file": auth_file(tmp_path), "token_secret": SecretStr(uuid.uuid4().hex)}
    )
    ok, failing = (f"metrics-{what}-{uuid.uuid4().hex[:8]}" for what in ("ok", "fail"))
    closed = f"http://127.0.0.1:{free_port()}/nobody-listens"
    with serving(Answer) as (url, _):
        async with (
            launched(settings, ["engine", "executor", "bridge"], tmp_path) as stack,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.settings.bridge_port}") as api,
        ):
            credentials = {"clientId": "admin", "clientSecret": CLIENT_SECRET}
            token = (await api.post("/v1/auth/access_token", json=credentials)).json()
            api.headers["Authorization"] = f"Bearer {token['accessToken']}"
            before = await scrape(stack)
            runs = {}
            for identifier, target, condition in ((ok, url, True), (failing, closed, False)):
                body = definition(identifier, target, condition=condition)
                defined = await api.post("/v1/workflows", json=body)
                assert defined.status_code == HTTPStatus.CREATED, defined.text
                triggered = await api.post(f"/v1/workflows/{identifier}/runs", json={})
                assert triggered.status_code == HTTPStatus.CREATED, triggered.text
                runs[identifier] = triggered.json()["workflowRun"]["identifier"]
            assert (await finished(api, stack, runs[ok]))["result"] == "SUCCESS"
            assert (await finished(api, stack, runs[failing]))["result"] == "FAILED"
            after = await scrape(stack)

            # Every assigned inbox partition has a lag figure, nothing left behind.
            async def lags() -> list[float]:
                found = await scrape(stack)
                return [
                    value(found, "switchyard_inbox_lag_records", partition=str(p))
                    for p in range(settings.inbox_partitions)
                    if ("switchyard_inbox_lag_records", frozenset({("partition", str(p))})) in found
                ]

            lag = await until(lags, lambda found: len(found) == settings.inbox_partitions)
            assert sum(lag) == 0

    runs_total, completed = "switchyard_runs_started_total", "switchyard_runs_completed_total"
    for workflow, result in ((ok, "SUCCESS"), (failing, "FAILED")):
        assert moved(before, after, runs_total, workflow=workflow) == 1
        assert moved(before, after, completed, workflow=workflow, result=result) == 1
        other = "FAILED" if result == "SUCCESS" else "SUCCESS"
        assert moved(before, after, completed, workflow=workflow, result=other) == 0
        durations = "switchyard_run_duration_seconds_count"
        assert moved(before, after, durations, workflow=workflow, result=result) == 1
        assert value(after, "switchyard_run_duration_seconds_sum", workflow=workflow,
                     result=result) > 0  # fmt: skip

    started, ended = "switchyard_node_runs_started_total", "switchyard_node_runs_completed_total"
    expected: dict[str, tuple[float, float, float]] = {  # (started, SUCCESS, FAILED)
        "SELF_SERVE_TRIGGER": (2, 2, 0), "CONDITION": (1, 1, 0), "WEBHOOK": (2, 1, 1),
    }  # fmt: skip
    for node_type, (count, succeeded, failed) in expected.items():
        found = (
            moved(before, after, started, node_type=node_type),
            moved(before, after, ended, node_type=node_type, result="SUCCESS"),
            moved(before, after, ended, node_type=node_type, result="FAILED"),
        )
        assert found == (count, succeeded, failed), node_type
        assert moved(before, after, "switchyard_node_run_duration_seconds_count",
                     node_type=node_type, result="SUCCESS") == succeeded  # fmt: skip
    assert moved(before, after, "switchyard_node_runs_in_flight", node_type="WEBHOOK") == 0
    # Two events a run (its trigger, its webhook's report), each applied once.
    records = "switchyard_inbox_records_total"
    assert moved(before, after, records, outcome="applied") == 4
    assert moved(before, after, records, outcome="redelivered") == 0
    assert moved(before, after, "switchyard_engine_apply_seconds_count") >= 1
    assert moved(before, after, "switchyard_outbox_publish_seconds_count") >= 1
    batches = moved(before, after, "switchyard_engine_batch_records_count")
    assert moved(before, after, "switchyard_engine_batch_records_sum") == 4
    assert 1 <= batches <= 4


def _trigger(run_id: str, workflow: str) -> bytes:
    return encode(RunTriggered(run_id=run_id, workflow_identifier=workflow, created_by="tests",
                               triggered_at=datetime.now(UTC)))  # fmt: skip


def _complete(run_id: str, node: str, result: str = "SUCCESS") -> bytes:
    return encode(NodeRunUpdated.model_validate({
        "runId": run_id, "nodeRunId": node_run_id(run_id, node), "status": "COMPLETED",
        "result": result, "sentAt": datetime.now(UTC),
    }))  # fmt: skip


async def _define_kafka_step(redis: aioredis.Redis, identifier: str) -> None:
    workflow = parse_workflow({"identifier": identifier, "nodes": [
        {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER"}},
        {"identifier": "work", "config": {"type": "KAFKA", "payload": {"n": 1}}},
    ], "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "work"}]})  # fmt: skip
    await WorkflowStore(redis).save(workflow, create=True, now=datetime.now(UTC))


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.usefixtures("metrics_on")
async def test_a_redelivered_batch_is_not_counted_again(
    topics: Settings, redis: aioredis.Redis, producer: EventProducer, templates: Any
) -> None:
    workflow = f"metrics-once-{uuid.uuid4().hex[:8]}"
    await _define_kafka_step(redis, workflow)
    run_id = new_run_id()
    inbox = TopicRegistry.from_settings(topics).inbox.name
    home = partition_of(run_id, topics.inbox_partitions)
    records = [
        InboxRecord(inbox, home, 300, run_id.encode(), _trigger(run_id, workflow)),
        InboxRecord(inbox, home, 301, run_id.encode(), _complete(run_id, "work", "FAILED")),
    ]
    kafka_failed = _sample("switchyard_node_runs_completed_total", node_type="KAFKA",
                           result="FAILED")  # fmt: skip
    redelivered = _sample("switchyard_inbox_records_total", outcome="redelivered")
    # Two engines handle the batch at once (a rebalance's overlap): both read the run
    # before either applies, so one's plans are refused by the apply script (reply 0).
    twice = await asyncio.gather(
        make_processor(topics, redis, producer, templates).handle(records),
        make_processor(topics, redis, producer, templates).handle(records),
    )
    assert sorted(twice) == [[Outcome.APPLIED] * 2, [Outcome.REDELIVERED] * 2]
    # A restarted engine (nothing in memory) gets the uncommitted batch again.
    await make_processor(topics, redis, producer, templates).handle(records)

    assert _sample("switchyard_runs_started_total", workflow=workflow) == 1
    assert _sample("switchyard_runs_completed_total", workflow=workflow, result="FAILED") == 1
    assert _sample("switchyard_run_duration_seconds_count", workflow=workflow,
                   result="FAILED") == 1  # fmt: skip
    after = _sample("switchyard_node_runs_completed_total", node_type="KAFKA", result="FAILED")
    assert after == kafka_failed + 1
    assert _sample("switchyard_inbox_records_total", outcome="redelivered") == redelivered + 4


async def test_node_runs_in_flight_are_right_after_a_restart(own: Settings, tmp_path: Path) -> None:
    workflow = f"metrics-flight-{uuid.uuid4().hex[:8]}"
    for home in ("first", "second"):
        (tmp_path / home).mkdir()
    redis = aioredis.Redis.from_url(own.redis_url)
    try:
        await _define_kafka_step(redis, workflow)
        truth = await _in_flight(redis, own, "KAFKA")
        run_id = new_run_id()
        async with EventProducer(own) as producer:
            inbox = TopicRegistry.from_settings(own).inbox.name
            async with launched(own, ["engine"], tmp_path / "first") as stack:
                await producer.send_and_wait(inbox, run_id, _trigger(run_id, workflow))

                async def waiting() -> list[str]:
                    state = await RunStore(redis, _partitions(own)).get(run_id)
                    return state.waiting_on if state is not None else []

                await until(waiting, within=30)
                first = await scrape(stack)
            assert value(first, "switchyard_node_runs_in_flight", node_type="KAFKA") == max(
                0, truth + 1
            )
            # Another engine process, nothing of the first in memory.
            async with launched(own, ["engine"], tmp_path / "second") as stack:
                restarted = await scrape(stack)
                assert value(restarted, "switchyard_node_runs_in_flight", node_type="KAFKA") == (
                    max(0, truth + 1)
                )
                await producer.send_and_wait(inbox, run_id, _complete(run_id, "work"))

                async def done() -> bool:
                    state = await RunStore(redis, _partitions(own)).get(run_id)
                    return state is not None and state.is_completed

                await until(done, within=30)
                ended = await scrape(stack)
        assert value(ended, "switchyard_node_runs_in_flight", node_type="KAFKA") == max(0, truth)
        assert await _in_flight(redis, own, "KAFKA") == truth
    finally:
        await redis.aclose()


@pytest.mark.usefixtures("metrics_on")
async def test_timers_fired_are_counted_by_purpose_with_their_delay(own: Settings) -> None:
    redis = aioredis.Redis.from_url(own.redis_url)
    try:
        async with EventProducer(own) as producer:
            service = TimerService(own, redis, producer)
            while await service.fire_due() == 0:  # whatever an earlier session left due
                pass
            run_id = new_run_id()
            armed = SetTimer(
                id="e1", timer_id=timer_id(run_id, None, "run_timeout"), run_id=run_id,
                purpose="run_timeout", due_at=datetime.now(UTC) - timedelta(seconds=2),
            )  # fmt: skip
            async with redis.pipeline(transaction=True) as pipe:
                for command in timer_commands(armed, keys.tag_of(run_id, _partitions(own))):
                    pipe.execute_command(*command)
                await pipe.execute()
            tags = _tags(own)
            await metrics.refresh_timers_armed(redis, tags)
            armed_now = sum([await redis.zcard(keys.timers(tag)) for tag in tags])
            assert armed_now >= 1
            assert _sample("switchyard_timers_armed") == armed_now
            fired = _sample("switchyard_timers_fired_total", purpose="run_timeout")
            delays = _sample("switchyard_timer_fire_delay_seconds_count")
            late = _sample("switchyard_timer_fire_delay_seconds_bucket", le="1.0")
            await service.fire_due()
        assert _sample("switchyard_timers_fired_total", purpose="run_timeout") == fired + 1
        assert _sample("switchyard_timer_fire_delay_seconds_count") == delays + 1
        # Due 2 s ago: not within the 1 s bucket.
        assert _sample("switchyard_timer_fire_delay_seconds_bucket", le="1.0") == late
    finally:
        await redis.aclose()


def _entity_record(topic: str, offset: int, value: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topic, partition=0, offset=offset, timestamp=0, timestamp_type=0, key=b"k",
        value=value, checksum=None, serialized_key_size=1, serialized_value_size=len(value),
        headers=(),
    )  # fmt: skip


@pytest.mark.usefixtures("metrics_on")
async def test_entity_events_are_counted_by_what_they_started(
    own: Settings, templates: JqTemplates
) -> None:
    tag = uuid.uuid4().hex[:8]
    blueprint, workflow = f"service-{tag}", f"metrics-on-event-{tag}"
    redis = aioredis.Redis.from_url(own.redis_url)
    try:
        definition = parse_workflow({"identifier": workflow, "nodes": [
            {"identifier": "trigger", "config": {"type": "EVENT_TRIGGER", "event": {
                "type": "ENTITY_UPDATED", "blueprintIdentifier": blueprint}}},
            {"identifier": "work", "config": {"type": "KAFKA", "payload": {"n": 1}}},
        ], "connections": [
            {"sourceIdentifier": "trigger", "targetIdentifier": "work"},
        ]})  # fmt: skip
        await WorkflowStore(redis).save(definition, create=True, now=datetime.now(UTC))
        topic = TopicRegistry.from_settings(own).entity_events.name
        records = [
            _entity_record(topic, 0, _entity_event(blueprint)),
            _entity_record(topic, 1, _entity_event(f"other-{tag}")),
            _entity_record(topic, 2, b"not an entity event"),
        ]
        outcomes = ("matched", "none", "undecodable")
        before = [_sample("switchyard_trigger_entity_events_total", outcome=o) for o in outcomes]
        letters = _sample("switchyard_dead_letters_total", reason="undecodable")
        async with EventProducer(own) as producer:
            matcher = TriggerMatcher(own, redis, producer, templates)
            try:
                started = await matcher.handle(records)  # as its loop does, without Kafka's
            finally:
                await matcher.consumer.stop()  # built, never started: closed all the same
        assert [t.workflow_identifier for t in started] == [workflow]
        after = [_sample("switchyard_trigger_entity_events_total", outcome=o) for o in outcomes]
        assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]
        assert _sample("switchyard_trigger_runs_started_total", workflow=workflow) == 1
        assert _sample("switchyard_dead_letters_total", reason="undecodable") == letters + 1
    finally:
        await redis.aclose()


def _entity_event(blueprint: str) -> bytes:
    after = {"identifier": "svc-a", "blueprint": blueprint, "properties": {"tier": "gold"}}
    return EntityEvent.model_validate({
        "id": uuid.uuid4().hex, "action": "UPDATE",
        "diff": {"before": {**after, "properties": {"tier": "bronze"}}, "after": after},
        "context": {"blueprintIdentifier": blueprint, "entityIdentifier": "svc-a"},
        "by": "admin@example.com", "at": datetime.now(UTC).isoformat(),
    }).model_dump_json().encode()  # fmt: skip


@pytest.mark.usefixtures("metrics_on")
async def test_schedule_ticks_are_counted_by_workflow(own: Settings) -> None:
    workflow = f"metrics-cron-{uuid.uuid4().hex[:8]}"
    saved = datetime.now(UTC)
    redis = aioredis.Redis.from_url(own.redis_url)
    try:
        definition = parse_workflow({"identifier": workflow, "nodes": [
            {"identifier": "tick", "config": {"type": "SCHEDULE_TRIGGER", "cron": "*/5 * * * *"}},
            {"identifier": "work", "config": {"type": "KAFKA", "payload": {"n": 1}}},
        ], "connections": [
            {"sourceIdentifier": "tick", "targetIdentifier": "work"},
        ]})  # fmt: skip
        await WorkflowStore(redis).save(definition, create=True, now=saved)
        # Twelve minutes on: the tick of 10 to 14 minutes later is due, once.
        later = saved + timedelta(minutes=12)
        delays = _sample("switchyard_schedule_tick_delay_seconds_count")
        async with EventProducer(own) as producer:
            scheduler = SchedulerService(own, redis, producer, clock=lambda: later)
            await scheduler.fire_due()
            await scheduler.fire_due()
        assert _sample("switchyard_schedule_ticks_total", workflow=workflow) == 1
        assert _sample("switchyard_schedule_tick_delay_seconds_count") >= delays + 1
    finally:
        await redis.aclose()
