"""`switchyard stack up --cluster`: three KRaft brokers and a six-node Redis Cluster on
one machine, brought up once for the module on ports of its own (far from the shared
test stack's 29092/26379 and the default stack's 19092/16379)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from switchyard.cli.main import main
from switchyard.cli.stack import processes
from switchyard.cli.stack.kafka import bootstrap_servers
from switchyard.cli.stack.launcher import Stack, infrastructure
from switchyard.schemas.settings import Settings
from switchyard.topics.producer import EventProducer
from switchyard.topics.registry import TopicRegistry
from tests.conftest import REPO
from tests.helpers import until

pytestmark = pytest.mark.integration

# Fixed (the nodes' ports are consecutive) and below Linux's ephemeral range (32768 on),
# where a client socket in TIME_WAIT could hold one.
KAFKA_PORT = 31092  # brokers on 31092..31094
CONTROLLER_PORT = 31192  # controllers on 31202..31204
REDIS_PORT = 31379  # nodes on 31379..31384, their bus on 32379..32384


def _ports() -> list[int]:
    kafka = [KAFKA_PORT + i for i in range(3)] + [CONTROLLER_PORT + 10 + i for i in range(3)]
    redis_ports = [REDIS_PORT + i for i in range(6)]
    return kafka + redis_ports + [p + 1000 for p in redis_ports]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The cluster, up once (``up --cluster --infra-only``); down at the end of the module."""
    home: Path = tmp_path_factory.mktemp("cluster") / "stack"
    busy = [p for p in _ports() if processes.port_open("127.0.0.1", p)]
    assert not busy, f"ports the cluster test needs are in use: {busy}"
    env = {
        "SWITCHYARD_HOME": str(home),
        "SWITCHYARD_CACHE_HOME": str(REPO / ".switchyard" / "cache"),
        "SWITCHYARD_KAFKA_PORT": str(KAFKA_PORT),
        "SWITCHYARD_KAFKA_CONTROLLER_PORT": str(CONTROLLER_PORT),
        "SWITCHYARD_REDIS_PORT": str(REDIS_PORT),
        "SWITCHYARD_TOPIC_PREFIX": f"cluster-{uuid.uuid4().hex[:6]}.",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        settings = Settings()
        try:
            assert main(["stack", "up", "--cluster", "--infra-only"]) == 0
            yield settings
        finally:
            main(["stack", "down"])


async def _min_isr(admin: AIOKafkaAdminClient, topic: str) -> str | None:
    [response] = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic, {"min.insync.replicas": ""})]
    )
    # (error_code, error_message, type, name, [(name, value, ...), ...]); a broker whose
    # metadata has not caught up with the new topic yet answers "unknown topic".
    [resource] = response.resources
    if resource[0] != 0:
        return None
    return {c[0]: c[1] for c in resource[4]}.get("min.insync.replicas")


def _describe(bootstrap: str, topic: str) -> tuple[dict[str, object], list[dict[str, object]], str]:
    async def describe() -> tuple[dict[str, object], list[dict[str, object]], str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            described = await admin.describe_cluster()
            topics = await until(
                lambda: admin.describe_topics([topic]), lambda d: d[0]["error_code"] == 0
            )
            min_isr = await until(lambda: _min_isr(admin, topic), lambda v: v is not None)
        finally:
            await admin.close()
        assert min_isr is not None
        return described, topics, min_isr

    return asyncio.run(describe())


def test_three_brokers_and_topics_with_three_copies_and_two_in_sync(cluster: Settings) -> None:
    bootstrap = bootstrap_servers(cluster, cluster=True)
    inbox = TopicRegistry.from_settings(cluster).inbox.name
    described, topics, min_isr = _describe(bootstrap, inbox)

    brokers = described["brokers"]
    assert isinstance(brokers, list)
    assert sorted(b["node_id"] for b in brokers) == [1, 2, 3]
    assert sorted(b["port"] for b in brokers) == [KAFKA_PORT, KAFKA_PORT + 1, KAFKA_PORT + 2]
    [topic] = topics
    partitions = topic["partitions"]
    assert isinstance(partitions, list)
    assert len(partitions) == cluster.inbox_partitions
    assert all(sorted(p["replicas"]) == [1, 2, 3] for p in partitions), partitions
    assert min_isr == "2"


def test_a_produce_with_acks_all_succeeds_on_the_cluster(cluster: Settings) -> None:
    settings = cluster.model_copy(
        update={"kafka_bootstrap_servers": bootstrap_servers(cluster, cluster=True)}
    )
    topic = TopicRegistry.from_settings(settings).inbox.name

    async def produce() -> None:
        producer = EventProducer(settings)
        await producer.start()
        try:
            await producer.send_and_wait(topic, f"wfr_{uuid.uuid4().hex}", b'{"type":"probe"}')
        finally:
            await producer.stop()

    asyncio.run(produce())  # raises unless two of the three copies took it


def test_redis_cluster_is_ok_with_three_masters_each_with_a_replica(cluster: Settings) -> None:
    client = redis.Redis(host="127.0.0.1", port=REDIS_PORT, decode_responses=True)
    try:
        info = client.cluster("INFO")
        nodes = client.cluster("NODES")
    finally:
        client.close()
    assert info["cluster_state"] == "ok"
    assert int(info["cluster_known_nodes"]) == 6
    assert int(info["cluster_size"]) == 3
    masters = {v["node_id"] for v in nodes.values() if "master" in v["flags"]}
    replicas_of = [v["master_id"] for v in nodes.values() if "slave" in v["flags"]]
    assert len(masters) == 3
    assert sorted(replicas_of) == sorted(masters)  # one replica for each master


def test_status_names_each_node_and_a_second_up_leaves_the_cluster_alone(
    cluster: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["stack", "status"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    for i in range(1, 4):
        assert f"node {i}, in metadata" in lines[f"kafka-{i}"]
        assert f"127.0.0.1:{KAFKA_PORT + i - 1}" in lines[f"kafka-{i}"]
    roles = [lines[f"redis-{i}"] for i in range(1, 7)]
    assert sum("  master" in line for line in roles) == 3
    assert sum("  replica of :" in line for line in roles) == 3

    before = {s.name: s.pid for s in Stack(cluster, infrastructure(cluster, True)).status()}
    assert main(["stack", "up", "--cluster", "--infra-only"]) == 0
    out = capsys.readouterr().out
    assert "redis cluster: already formed" in out
    assert "kafka-3: already running" in out
    after = {s.name: s.pid for s in Stack(cluster, infrastructure(cluster, True)).status()}
    assert after == before


def test_up_without_cluster_is_refused_while_the_cluster_runs(
    cluster: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stack", "up", "--infra-only"]) == 2
    assert "a cluster stack with 1 engine(s) runs in" in capsys.readouterr().err


def test_zz_down_stops_every_node_and_the_cluster_comes_back_as_it_was(
    cluster: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """Last in the module (pytest keeps file order): the fixture's own down is then a no-op."""
    stack = Stack(cluster, infrastructure(cluster, True))
    pids = [s.pid for s in stack.status()]
    assert len(pids) == 9
    assert all(pids)
    assert main(["stack", "down"]) == 0
    assert [s.pid for s in stack.status()] == [None] * 9
    assert not any(processes.is_alive(pid) for pid in pids if pid)
    assert not [p for p in _ports() if processes.port_open("127.0.0.1", p)]

    # Restarted nodes rejoin from their nodes.conf and storage: nothing is formed again.
    capsys.readouterr()
    assert main(["stack", "up", "--cluster", "--infra-only"]) == 0
    assert "redis cluster: already formed" in capsys.readouterr().out
    client = redis.Redis(host="127.0.0.1", port=REDIS_PORT + 5, decode_responses=True)
    try:
        info = client.cluster("INFO")
    finally:
        client.close()
    assert (info["cluster_state"], int(info["cluster_known_nodes"])) == ("ok", 6)
    assert main(["stack", "down"]) == 0
    assert not any(s.pid for s in stack.status())
