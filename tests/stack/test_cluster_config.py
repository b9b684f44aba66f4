"""What the cluster's brokers and topics are configured with (pure: no processes)."""

from __future__ import annotations

from pathlib import Path

from switchyard.cli.stack.full import environment, local_settings
from switchyard.cli.stack.kafka import (
    KafkaBroker,
    _server_properties,
    bootstrap_servers,
    kafka_nodes,
)
from switchyard.cli.stack.launcher import infrastructure
from switchyard.cli.stack.profile import StackProfile
from switchyard.schemas.settings import Settings
from switchyard.topics.admin import topic_configs
from switchyard.topics.registry import TopicRegistry


def _properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_three_brokers_share_one_quorum_with_their_own_ids_and_ports(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, kafka_port=30092, kafka_controller_port=30093)
    nodes = kafka_nodes(settings, cluster=True)
    assert [(n.node_id, n.port, n.controller_port) for n in nodes] == [
        (1, 30092, 30103),
        (2, 30093, 30104),
        (3, 30094, 30105),
    ]
    assert bootstrap_servers(settings, cluster=True) == (
        "127.0.0.1:30092,127.0.0.1:30093,127.0.0.1:30094"
    )
    props = [_properties(_server_properties(settings, tmp_path, n)) for n in nodes]
    voters = "1@127.0.0.1:30103,2@127.0.0.1:30104,3@127.0.0.1:30105"
    assert {p["controller.quorum.voters"] for p in props} == {voters}
    assert [p["node.id"] for p in props] == ["1", "2", "3"]
    assert props[1]["listeners"] == "PLAINTEXT://127.0.0.1:30093,CONTROLLER://127.0.0.1:30104"
    for p in props:
        assert p["default.replication.factor"] == "3"
        assert p["min.insync.replicas"] == "2"
        assert p["offsets.topic.replication.factor"] == "3"
        assert p["transaction.state.log.replication.factor"] == "3"
        assert p["transaction.state.log.min.isr"] == "2"


def test_the_single_broker_keeps_its_one_copy_and_its_ports(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, kafka_port=30092, kafka_controller_port=30093)
    [node] = kafka_nodes(settings)
    props = _properties(_server_properties(settings, tmp_path, node))
    assert props["controller.quorum.voters"] == "1@127.0.0.1:30093"
    assert props["default.replication.factor"] == "1"
    assert props["offsets.topic.replication.factor"] == "1"
    assert [c.spec.name for c in infrastructure(settings)] == ["redis", "kafka"]


def test_cluster_brokers_get_small_heaps_unless_one_is_asked_for(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    cluster = [KafkaBroker(settings, n) for n in kafka_nodes(settings, cluster=True)]
    assert [b._heap() for b in cluster] == ["256m"] * 3
    assert KafkaBroker(settings)._heap() == "512m"
    asked = Settings(home=tmp_path, kafka_heap="384m")
    assert KafkaBroker(asked, kafka_nodes(asked, cluster=True)[0])._heap() == "384m"
    names = [c.spec.name for c in infrastructure(settings, cluster=True)]
    assert names == [f"redis-{i}" for i in range(1, 7)] + ["kafka-1", "kafka-2", "kafka-3"]


def test_min_insync_replicas_2_is_a_topic_config_from_three_copies_on() -> None:
    inbox = TopicRegistry.from_settings(Settings()).inbox
    assert "min.insync.replicas" not in topic_configs(inbox, 1)
    assert topic_configs(inbox, 3)["min.insync.replicas"] == "2"
    assert topic_configs(inbox, 3)["retention.ms"] == str(inbox.retention_ms)


def test_the_cluster_stack_waits_for_a_replica_unless_told_otherwise(tmp_path: Path) -> None:
    cluster = StackProfile(cluster=True)
    local = local_settings(Settings(home=tmp_path), cluster)
    assert (local.redis_cluster, local.redis_wait_replicas) == (True, 1)
    assert local.topic_replication_factor == 3
    # Asked for explicitly (as SWITCHYARD_REDIS_WAIT_REPLICAS would): kept, even 0.
    assert (
        local_settings(Settings(home=tmp_path, redis_wait_replicas=0), cluster).redis_wait_replicas
        == 0
    )
    assert local_settings(Settings(home=tmp_path), StackProfile()).redis_wait_replicas == 0


def test_the_stack_gives_its_executor_a_static_member_id_of_its_home(tmp_path: Path) -> None:
    """A restarted executor takes its partitions back at once instead of after its dead
    session times out: one stable instance id per stack home, unless set."""
    first = local_settings(Settings(home=tmp_path / "a"))
    assert first.executor_instance_id is not None
    assert first.executor_instance_id.startswith("executor-")
    assert local_settings(Settings(home=tmp_path / "a")).executor_instance_id == (
        first.executor_instance_id
    )
    assert local_settings(Settings(home=tmp_path / "b")).executor_instance_id != (
        first.executor_instance_id
    )
    mine = local_settings(Settings(home=tmp_path / "a", executor_instance_id="mine"))
    assert mine.executor_instance_id == "mine"
    assert environment(first)["SWITCHYARD_EXECUTOR_INSTANCE_ID"] == first.executor_instance_id
