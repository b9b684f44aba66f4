"""The clients every process builds (``redis_client``, ``kafka_options``) against real
secured servers: a TLS-only, password-protected redis-server and a broker whose client
listener is SASL_SSL with a SCRAM-SHA-512 user. Settings alone get through (the whole
engine too, with either inbox driver); a wrong password, or no TLS, is refused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from redis.exceptions import AuthenticationError, ConnectionError, ResponseError

from switchyard.cli.stack.tls import Certificates, make_certificates
from switchyard.engine.service import EngineService
from switchyard.engine.store.client import redis_client
from switchyard.schemas import NodeRunUpdated, encode, node_run_id
from switchyard.schemas.settings import Settings
from switchyard.topics.admin import ensure_topics
from switchyard.topics.connection import kafka_options
from switchyard.topics.producer import EventProducer
from tests.helpers_cluster import redis_cluster
from tests.helpers_secured import SecuredKafka, SecuredRedis, secured_kafka, secured_redis
from tests.integration.engine_support import Driver

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_redis(certs: Certificates) -> Iterator[SecuredRedis]:
    with secured_redis(certs, password=uuid.uuid4().hex) as server:
        yield server


def _redis_settings(server: SecuredRedis, ca: Path, **changes: object) -> Settings:
    values: dict[str, object] = {
        "redis_url": f"rediss://127.0.0.1:{server.port}/0",
        "redis_password": server.password,
        "redis_ssl_ca_file": ca,
    }
    return Settings(**{**values, **changes})  # type: ignore[arg-type]


async def test_redis_over_tls_with_the_password_round_trips(
    tls_redis: SecuredRedis, certs: Certificates
) -> None:
    client = redis_client(_redis_settings(tls_redis, certs.ca_cert))
    key = f"secured:{uuid.uuid4().hex}"
    try:
        await client.set(key, b"over tls")
        assert await client.get(key) == b"over tls"
    finally:
        await client.aclose()


async def test_redis_password_in_the_url_round_trips(
    tls_redis: SecuredRedis, certs: Certificates
) -> None:
    url = f"rediss://:{tls_redis.password}@127.0.0.1:{tls_redis.port}/0"
    client = redis_client(_redis_settings(tls_redis, certs.ca_cert, redis_url=url,
                                          redis_password=None))  # fmt: skip
    try:
        assert await client.ping() is True
    finally:
        await client.aclose()


async def test_redis_wrong_password_is_refused(
    tls_redis: SecuredRedis, certs: Certificates
) -> None:
    client = redis_client(_redis_settings(tls_redis, certs.ca_cert, redis_password="wrong"))
    try:
        with pytest.raises((AuthenticationError, ResponseError), match=r"(?i)invalid|wrong"):
            await client.ping()
    finally:
        await client.aclose()


async def test_redis_without_tls_is_refused(tls_redis: SecuredRedis) -> None:
    plain = Settings(redis_url=f"redis://127.0.0.1:{tls_redis.port}/0",
                     redis_password=tls_redis.password)  # fmt: skip
    client = redis_client(plain)
    try:
        with pytest.raises(ConnectionError):
            await client.ping()
    finally:
        await client.aclose()


async def test_redis_certificate_of_an_unknown_ca_is_refused(
    tls_redis: SecuredRedis, tmp_path: Path
) -> None:
    other = make_certificates(tmp_path / "other")
    client = redis_client(_redis_settings(tls_redis, other.ca_cert))
    try:
        with pytest.raises(ConnectionError, match=r"(?i)certificate"):
            await client.ping()
    finally:
        await client.aclose()


@pytest.fixture(scope="module")
def sasl_kafka(certs: Certificates) -> Iterator[SecuredKafka]:
    with secured_kafka(certs, user="switchyard", password=uuid.uuid4().hex) as broker:
        yield broker


def _kafka_settings(broker: SecuredKafka, ca: Path, password: str | None = None) -> Settings:
    return Settings(
        kafka_bootstrap_servers=broker.bootstrap,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username=broker.user,
        kafka_sasl_password=password or broker.password,
        kafka_ssl_cafile=ca,
    )


@pytest.mark.slow
async def test_kafka_sasl_ssl_produce_and_consume_round_trip(
    sasl_kafka: SecuredKafka, certs: Certificates
) -> None:
    settings = _kafka_settings(sasl_kafka, certs.ca_cert)
    topic = f"secured-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    async with EventProducer(settings) as producer:
        await producer.send_and_wait(topic, "run-1", b"through SASL_SSL")
    consumer = AIOKafkaConsumer(**kafka_options(settings), auto_offset_reset="earliest")
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        batch = await consumer.getmany(partition, timeout_ms=10_000)
        assert [r.value for r in batch.get(partition, [])] == [b"through SASL_SSL"]
    finally:
        await consumer.stop()


@pytest.mark.slow
async def test_kafka_wrong_password_is_refused(
    sasl_kafka: SecuredKafka, certs: Certificates, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _kafka_settings(sasl_kafka, certs.ca_cert, password="wrong")
    producer = AIOKafkaProducer(**kafka_options(settings))
    try:
        with pytest.raises(KafkaError):
            await producer.start()
    finally:
        await producer.stop()
    # aiokafka reports every bootstrap failure as one error; its log says why this was.
    assert "SaslAuthenticationFailed" in caplog.text


@pytest.fixture(params=["aiokafka", "faust"])
def secured(
    request: pytest.FixtureRequest, sasl_kafka: SecuredKafka, tls_redis: SecuredRedis,
    certs: Certificates,
) -> Settings:  # fmt: skip
    """Settings of both secured servers, once with each inbox driver."""
    kafka = _kafka_settings(sasl_kafka, certs.ca_cert)
    return _redis_settings(
        tls_redis, certs.ca_cert, topic_prefix=f"secured-{uuid.uuid4().hex[:8]}.",
        engine_driver=request.param, run_retention_days=0, engine_ops_port=0,
        **{name: getattr(kafka, name) for name in kafka.model_fields_set},
    )  # fmt: skip


def _one_kafka_node(workflow: str) -> dict[str, Any]:
    return {"identifier": workflow, "nodes": [
        {"identifier": "trigger", "config": {"type": "SELF_SERVE_TRIGGER"}},
        {"identifier": "work", "config": {"type": "KAFKA", "payload": {"x": 1}}},
    ], "connections": [{"sourceIdentifier": "trigger", "targetIdentifier": "work"}]}  # fmt: skip


@pytest.mark.slow
async def test_the_engine_runs_a_workflow_on_secured_servers_from_settings_alone(
    secured: Settings, templates: Any
) -> None:
    await ensure_topics(secured)
    redis = redis_client(secured)
    try:
        async with EventProducer(secured) as producer, EngineService(secured, templates):
            driver = Driver(secured, redis, producer)
            workflow = f"solo-{uuid.uuid4().hex[:6]}"
            await driver.define(_one_kafka_node(workflow))
            run_id = await driver.trigger(workflow, {})
            await driver.wait(run_id, lambda s: s.node_run_of("work") is not None, within=60)
            done = NodeRunUpdated.model_validate({
                "runId": run_id, "nodeRunId": node_run_id(run_id, "work"),
                "status": "COMPLETED", "result": "SUCCESS", "sentAt": datetime.now(UTC),
            })  # fmt: skip
            await driver.send(run_id, encode(done))
            state = await driver.wait(run_id, lambda s: s.status == "COMPLETED", within=60)
            assert state.result == "SUCCESS"
    finally:
        await redis.aclose()


async def test_cluster_flag_reaches_every_master_of_a_real_cluster() -> None:
    with redis_cluster(3) as nodes:
        client = redis_client(Settings(redis_url=nodes[0].url, redis_cluster=True))
        try:
            # Keys spread over the slots of all three masters: MOVED is followed for us.
            keys = [f"secured:{n}:{uuid.uuid4().hex}" for n in range(30)]
            for key in keys:
                await client.set(key, key)
            assert [await client.get(key) for key in keys] == [k.encode() for k in keys]
            cluster: Any = client  # the RedisCluster behind redis_client's cast
            owners = {cluster.get_node_from_key(key).port for key in keys}
            assert owners == {node.port for node in nodes}
        finally:
            await client.aclose()
