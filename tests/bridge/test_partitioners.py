"""A run's events meet in its partition whatever the producer's partitioner.

Produced as a new user following docs/kafka.md would, with librdkafka
(confluent-kafka) and its default partitioner (``consistent_random``: CRC32, not
the murmur2 of Java, aiokafka and the bridge), then with keys sent to deliberately
wrong partitions; completions mixed with HTTP PATCHes. Every run must complete
exactly once, with no dead letter: the engine moves strays to their run's partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from switchyard.engine.machine.state import RunState
from switchyard.engine.processor import Outcome
from switchyard.engine.service import EngineService
from switchyard.engine.templates import JqTemplates, TemplateLimits
from switchyard.schemas import NodeRunUpdated, RunTriggered, encode, new_run_id, node_run_id
from switchyard.schemas.settings import Settings
from switchyard.topics.partitioning import partition_of
from switchyard.topics.reader import read_topic
from switchyard.topics.registry import TopicRegistry
from tests.bridge.support import Api, kafka_workflow
from tests.helpers import until

pytestmark = pytest.mark.integration

RUNS = 20
Choose = Callable[[str, int], int | None]  # (run id, home partition) → partition or None


@pytest.fixture(params=["aiokafka", "faust"])
async def engine(request: pytest.FixtureRequest, bridge_settings: Settings) -> AsyncIterator[Any]:
    """The engine on each inbox driver: both must move strays the same way."""
    driver = bridge_settings.model_copy(update={"engine_driver": request.param})
    with JqTemplates(TemplateLimits.from_settings(driver)) as templates:
        async with EngineService(driver, templates) as service:
            yield service


def librdkafka_config(settings: Settings) -> dict[str, Any]:
    """librdkafka's names for how ``settings`` reach the brokers (TLS, SASL)."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "security.protocol": settings.kafka_security_protocol.lower(),
    }
    if settings.kafka_security_protocol.startswith("SASL_"):
        password = settings.kafka_sasl_password
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
        config["sasl.username"] = settings.kafka_sasl_username
        config["sasl.password"] = password.get_secret_value() if password else None
    if settings.kafka_ssl_cafile is not None:
        config["ssl.ca.location"] = str(settings.kafka_ssl_cafile)
    return config


class Librdkafka:
    """confluent-kafka's producer as a user sets it up: only how to reach the brokers
    (so its default partitioner), keyed by run id as docs/kafka.md says."""

    def __init__(self, settings: Settings, topic: str | None = None, **config: Any) -> None:
        self.producer = Producer({**librdkafka_config(settings), **config})
        self.topic = topic or TopicRegistry.from_settings(settings).inbox.name

    async def produce(self, key: str, value: bytes, partition: int | None = None) -> int:
        """Send one record and wait for its delivery; returns the partition it got."""
        delivered: list[Message] = []
        errors: list[KafkaError] = []

        def report(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                errors.append(error)
            delivered.append(message)

        if partition is None:  # the library's partitioner decides
            self.producer.produce(self.topic, value, key.encode(), on_delivery=report)
        else:
            self.producer.produce(
                self.topic, value, key.encode(), partition=partition, on_delivery=report
            )
        await asyncio.to_thread(self.producer.flush, 10)
        assert not errors, errors
        [message] = delivered
        found = message.partition()
        assert isinstance(found, int)
        return found


def _trigger(run_id: str, workflow: str) -> bytes:
    event = RunTriggered(
        run_id=run_id, workflow_identifier=workflow, inputs={"name": run_id[-6:]},
        created_by="librdkafka-user", triggered_at=datetime.now(UTC),
    )  # fmt: skip
    return encode(event)


def _completion(run_id: str) -> bytes:
    event = NodeRunUpdated(
        run_id=run_id, node_run_id=node_run_id(run_id, "work"), status="COMPLETED",
        result="SUCCESS", output={"by": "kafka"}, sent_at=datetime.now(UTC),
    )  # fmt: skip
    return encode(event)


async def _events_of(settings: Settings, run_ids: set[str]) -> Counter[tuple[str, str]]:
    """(run id, kind) → how many run events of that kind the run has. The topic is
    at-least-once with each event's ``seq`` as its id (a batch retried after a Kafka
    error re-publishes its outbox): a copy of the same seq is the same event."""
    topic = TopicRegistry.from_settings(settings).run_events.name
    counts: Counter[tuple[str, str]] = Counter()
    seen: set[tuple[str, int]] = set()
    for record in await read_topic(settings, topic):
        event = orjson.loads(record.value)
        if event["runId"] in run_ids and (event["runId"], event["seq"]) not in seen:
            seen.add((event["runId"], event["seq"]))
            counts[(event["runId"], event["kind"])] += 1
    return counts


async def _dead_letters_of(settings: Settings, run_ids: set[str]) -> list[dict[str, Any]]:
    topic = TopicRegistry.from_settings(settings).dead_letter.name
    letters = [orjson.loads(r.value) for r in await read_topic(settings, topic)]
    return [letter for letter in letters if letter["key"] in run_ids]


async def _every_run_completes_once(
    api: Api, engine: EngineService, settings: Settings, wf_id: str, choose: Choose
) -> int:
    """Trigger RUNS runs with librdkafka, complete half by PATCH and half by Kafka;
    returns how many records sat outside their run's partition."""
    await api.define(kafka_workflow(wf_id))
    kafka = Librdkafka(settings)
    partitions = settings.inbox_partitions
    run_ids = [new_run_id(os.urandom) for _ in range(RUNS)]
    strays = 0
    for run_id in run_ids:
        home = partition_of(run_id, partitions)
        landed = await kafka.produce(run_id, _trigger(run_id, wf_id), choose(run_id, home))
        strays += landed != home
    store = engine.processor.store

    async def state(run_id: str) -> RunState | None:
        return await store.get(run_id)

    for run_id in run_ids:
        await until(partial(state, run_id), lambda s: s is not None, within=30)
    for n, run_id in enumerate(run_ids):
        if n % 2:
            home = partition_of(run_id, partitions)
            landed = await kafka.produce(run_id, _completion(run_id), choose(run_id, home))
            strays += landed != home
        else:
            response = await api.call(
                "PATCH", f"/v1/workflows/nodes/runs/{node_run_id(run_id, 'work')}",
                json={"status": "COMPLETED", "result": "SUCCESS", "output": {"by": "http"}},
            )  # fmt: skip
            assert response.status_code == 200, response.text
    for run_id in run_ids:
        done = await until(
            partial(state, run_id), lambda s: s is not None and s.status == "COMPLETED", within=30
        )
        assert done is not None
        assert done.result == "SUCCESS", run_id

    wanted = set(run_ids)
    events = await until(
        lambda: _events_of(settings, wanted),
        lambda c: all(c[(r, "run.completed")] for r in wanted), within=20,
    )  # fmt: skip
    for run_id in run_ids:
        assert events[(run_id, "run.created")] == 1, run_id
        assert events[(run_id, "run.completed")] == 1, run_id
        assert events[(run_id, "nodeRun.completed")] == 2, run_id  # the trigger and work
    assert await _dead_letters_of(settings, wanted) == []
    return strays


async def test_librdkafka_default_partitioner_loses_no_run(
    api: Api, engine: EngineService, bridge_settings: Settings, wf_id: str
) -> None:
    strays = await _every_run_completes_once(
        api, engine, bridge_settings, wf_id, lambda _run, _home: None
    )
    # CRC32 and murmur2 agree on about one key in twelve: most records were strays,
    # or this test would prove nothing.
    assert strays >= RUNS // 2
    assert engine.processor.outcomes[Outcome.MOVED] >= strays
    print(f"\nlibrdkafka default partitioner: {strays} of {RUNS * 3 // 2} records moved")


async def test_keys_sent_to_the_wrong_partition_on_purpose_lose_no_run(
    api: Api, engine: EngineService, bridge_settings: Settings, wf_id: str
) -> None:
    partitions = bridge_settings.inbox_partitions

    def wrong(run_id: str, home: int) -> int:
        return (home + 1 + int(run_id[-1], 36) % (partitions - 1)) % partitions

    strays = await _every_run_completes_once(api, engine, bridge_settings, wf_id, wrong)
    assert strays == RUNS * 3 // 2  # every trigger and every Kafka completion
    assert engine.processor.outcomes[Outcome.MOVED] >= strays


async def test_librdkafka_murmur2_partitioner_agrees_with_ours(bridge_settings: Settings) -> None:
    """librdkafka's ``murmur2`` partitioner is Kafka's Java default; our partition_of
    must give the same partition for every run id (what the docs tell users to set)."""
    # A topic of its own with the inbox's partition count: the probes are no events.
    partitions = bridge_settings.inbox_partitions
    probe = f"{bridge_settings.topic_prefix}partitioner-probe"
    admin = AdminClient(librdkafka_config(bridge_settings))
    for future in admin.create_topics([NewTopic(probe, partitions, 1)]).values():
        with contextlib.suppress(KafkaException):  # already there from an earlier run
            await asyncio.to_thread(future.result, 10)
    kafka = Librdkafka(bridge_settings, probe, partitioner="murmur2")
    for _ in range(30):
        run_id = new_run_id(os.urandom)
        landed = await kafka.produce(run_id, b"{}")
        assert landed == partition_of(run_id, partitions), run_id
